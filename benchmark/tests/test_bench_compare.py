"""Timing regression reports: medians normalised by the machine-speed probe, compared to
the baseline in the repository; a deliberately slowed benchmark fails the report."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.bench_compare import BASELINE, PROBE, compare, main, normalised


def _run(folder: Path, name: str, medians: dict[str, float]) -> Path:
    path = folder / f"{name}.json"
    benchmarks = [
        {"fullname": f"benchmark/tests/test_x.py::{k}", "stats": {"median": v}}
        for k, v in medians.items()
    ]
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return path


def _baseline(folder: Path, normalised_medians: dict[str, float]) -> Path:
    path = folder / "baseline.json"
    path.write_text(json.dumps({"threshold": 1.5, "normalised": normalised_medians}))
    return path


def test_a_slower_machine_is_not_a_slower_program(tmp_path: Path) -> None:
    """Everything twice as slow, the probe too: no regression."""
    baseline = _baseline(tmp_path, {"a": 10.0, "b": 2.0})
    run = _run(tmp_path, "0001_slow_machine", {PROBE: 0.002, "a": 0.020, "b": 0.004})
    assert normalised(run)[0] == {"a": 10.0, "b": 2.0}
    report = tmp_path / "report"
    assert main([str(run), "--baseline", str(baseline), "--report", str(report)]) == 0
    rows = json.loads((report / "bench_report.json").read_text())["rows"]
    assert {r["name"]: r["verdict"] for r in rows} == {"a": "ok", "b": "ok"}


def test_a_deliberately_slowed_benchmark_fails_the_report(tmp_path: Path, capsys) -> None:
    baseline = _baseline(tmp_path, {"a": 10.0, "b": 2.0, "gone": 1.0})
    run = _run(tmp_path, "0002_slowed", {PROBE: 0.001, "a": 0.030, "b": 0.002, "new": 0.1})
    report = tmp_path / "report"
    assert main([str(run), "--baseline", str(baseline), "--report", str(report)]) == 1
    text = (report / "bench_report.md").read_text()
    assert "| `a` | 10.000 | 30.000 | 3.00× | SLOWER |" in text
    assert "1 regression(s)**: a" in text and "| `b` | 2.000 | 2.000 | 1.00× | ok |" in text
    assert "SLOWER" in capsys.readouterr().out
    verdicts = {r.name: r.verdict for r in compare({"x": 1.0}, {"x": 0.5}, 1.5)}
    assert verdicts == {"x": "faster"}
    rows = {
        r["name"]: r["verdict"]
        for r in json.loads((report / "bench_report.json").read_text())["rows"]
    }
    assert rows["new"] == "new" and rows["gone"] == "gone"


def test_a_run_without_the_probe_is_refused(tmp_path: Path, capsys) -> None:
    run = _run(tmp_path, "0003_no_probe", {"a": 0.01})
    assert main([str(run), "--baseline", str(_baseline(tmp_path, {"a": 1.0}))]) == 2
    assert "machine speed unknown" in capsys.readouterr().err


def test_the_baseline_in_the_repository_is_well_formed() -> None:
    data = json.loads(BASELINE.read_text())
    assert data["threshold"] > 1 and data["probe_median_s"] > 0
    assert data["normalised"] and all(v > 0 for v in data["normalised"].values())
    assert PROBE not in data["normalised"]


def test_adding_new_benchmarks_keeps_every_recorded_one(tmp_path: Path, capsys) -> None:
    """``--add-new`` records what the baseline lacks (here ``c``) at its normalised median,
    and leaves ``a`` as recorded although this run measured it slower."""
    baseline = _baseline(tmp_path, {"a": 10.0})
    run = _run(tmp_path, "0001_new", {PROBE: 0.001, "a": 0.050, "c": 0.004})
    assert main([str(run), "--baseline", str(baseline), "--add-new"]) == 0
    assert json.loads(baseline.read_text())["normalised"] == {"a": 10.0, "c": 4.0}
    assert json.loads(baseline.read_text())["threshold"] == 1.5
    assert "1 new benchmarks added (c)" in capsys.readouterr().out
