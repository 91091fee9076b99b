"""Timing regressions that can fail: a pytest-benchmark run against the baseline kept in
the repository (``benchmark/specs/bench_baseline.json``).

Absolute times from two machines mean little, so every median is divided by the median of
a machine-speed probe measured in the same run (``test_bench_machine_probe``: a fixed
single-threaded workload of hashing, compression and array arithmetic). A benchmark whose
normalised median is more than ``threshold`` times the baseline's is a regression: the
report (Markdown and JSON) says so, and the command exits 1.

    python -m benchmark.bench_compare RUN.json|.benchmarks [--report DIR] [--threshold X]
    python -m benchmark.bench_compare RUN.json --update-baseline   # after a deliberate change
    python -m benchmark.bench_compare RUN.json --add-new   # record new benchmarks only
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmark.settings import PACKAGE_ROOT

BASELINE = PACKAGE_ROOT / "specs" / "bench_baseline.json"
PROBE = "test_bench_machine_probe"
# A stage 50 % slower than the baseline on the same machine speed is a regression; noise
# between runs of one machine stays well within this (medians, several rounds each).
THRESHOLD = 1.5


@dataclass(frozen=True)
class Row:
    name: str
    baseline: float | None  # normalised median (median / probe median)
    now: float | None
    ratio: float | None  # now / baseline: > 1 slower
    verdict: str  # ok | faster | SLOWER | new | gone


def latest_run(path: Path) -> Path:
    """``path`` itself, or the newest saved run in a pytest-benchmark storage folder."""
    if path.is_file():
        return path
    runs = sorted(path.rglob("*.json"), key=lambda p: p.name)
    if not runs:
        raise FileNotFoundError(f"no saved benchmark run in {path}")
    return runs[-1]


def short_name(fullname: str) -> str:
    return fullname.split("::", 1)[-1]


def normalised(run: Path) -> tuple[dict[str, float], float]:
    """Each benchmark's median divided by the probe's median, and the probe's median."""
    data = json.loads(run.read_text())
    medians = {short_name(b["fullname"]): b["stats"]["median"] for b in data["benchmarks"]}
    probe = medians.pop(PROBE, None)
    if not probe:
        raise ValueError(f"{run}: no {PROBE} in this run: machine speed unknown")
    return {name: median / probe for name, median in medians.items()}, probe


def compare(baseline: dict[str, float], now: dict[str, float], threshold: float) -> list[Row]:
    rows = []
    for name in sorted(set(baseline) | set(now)):
        old, new = baseline.get(name), now.get(name)
        if old is None or new is None:
            rows.append(Row(name, old, new, None, "new" if old is None else "gone"))
            continue
        ratio = new / old
        verdict = "SLOWER" if ratio > threshold else "faster" if ratio < 1 / threshold else "ok"
        rows.append(Row(name, old, new, ratio, verdict))
    return rows


def markdown(rows: list[Row], threshold: float, probe_s: float, run: Path) -> str:
    lines = [
        f"# Benchmark regression report ({run.name})",
        "",
        f"Medians divided by the machine-speed probe's median ({1000 * probe_s:.2f} ms in "
        f"this run), against `{BASELINE.name}`. A ratio above {threshold:g} is a regression.",
        "",
        "| benchmark | baseline | now | ratio | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        cells = [f"{v:.3f}" if v is not None else "–" for v in (row.baseline, row.now)]
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else "–"
        lines.append(f"| `{row.name}` | {cells[0]} | {cells[1]} | {ratio} | {row.verdict} |")
    slower = [r.name for r in rows if r.verdict == "SLOWER"]
    lines += ["", f"**{len(slower)} regression(s)**" + (f": {', '.join(slower)}" if slower else "")]
    return "\n".join(lines) + "\n"


def load_baseline(path: Path = BASELINE) -> dict:
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.bench_compare")
    parser.add_argument("run", nargs="?", default=".benchmarks", help="run JSON or storage")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--threshold", type=float, default=None, help=f"default {THRESHOLD}")
    parser.add_argument("--report", type=Path, default=Path("bench_report"), help="folder")
    parser.add_argument("--update-baseline", action="store_true")
    parser.add_argument(
        "--add-new",
        action="store_true",
        help="record the run's benchmarks the baseline lacks, keep every other entry",
    )
    args = parser.parse_args(argv)
    try:
        run = latest_run(Path(args.run))
        now, probe_s = normalised(run)
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench_compare: {exc}", file=sys.stderr)
        return 2
    if args.add_new:
        baseline = load_baseline(args.baseline)
        new = {k: v for k, v in now.items() if k not in baseline["normalised"]}
        baseline["normalised"] = dict(sorted((baseline["normalised"] | new).items()))
        args.baseline.write_text(json.dumps(baseline, indent=2) + "\n")
        print(f"baseline: {len(new)} new benchmarks added ({', '.join(sorted(new)) or 'none'})")
        return 0
    if args.update_baseline:
        record = {
            "what": "Normalised medians (median / machine-speed probe median) of the "
            "pytest-benchmark stage benchmarks; `nox -s bench` fails when one is more than "
            "`threshold` times its value here. Update only for a deliberate change, and say why "
            "in the commit.",
            "recorded": datetime.date.today().isoformat(),
            "probe_median_s": probe_s,
            "threshold": args.threshold or THRESHOLD,
            "normalised": dict(sorted(now.items())),
        }
        args.baseline.write_text(json.dumps(record, indent=2) + "\n")
        print(f"baseline written: {args.baseline} ({len(now)} benchmarks)")
        return 0
    baseline = load_baseline(args.baseline)
    threshold = args.threshold or float(baseline.get("threshold", THRESHOLD))
    rows = compare(baseline["normalised"], now, threshold)
    report = markdown(rows, threshold, probe_s, run)
    args.report.mkdir(parents=True, exist_ok=True)
    (args.report / "bench_report.md").write_text(report)
    payload = {
        "run": str(run),
        "probe_median_s": probe_s,
        "threshold": threshold,
        "rows": [asdict(r) for r in rows],
    }
    (args.report / "bench_report.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(report, end="")
    return 1 if any(r.verdict == "SLOWER" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
