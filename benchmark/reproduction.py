"""Was a run reproduced? Two levels, against numbers recorded in ``fixtures/``.

* **exact**: every digest of results.json's numbers (``StudyResults.number_digests``) equals
  the recording's. It is the check on the environment the numbers were recorded in: the
  same lock and the same CPU class (``benchmark.machine``). There, any difference fails.
* **within tolerance**: elsewhere (another CPU, an unlocked install) floats change in the
  last bits, and with them mask pixels and near-ties in a ranking. Then every claim's
  verdict must be identical, and every rank-1 must lie within ``HIT_TOLERANCE`` hit of the
  recorded one, or, for a row a recorded finding measures, inside that finding's band
  (``claims.finding_band``; its verdict, xfail within the band, must stay too). The
  recording holds each row's per-identity hits, so the check names the identities that
  changed.

``compare(a, b)`` is the same comparison between any two runs (``dmbench compare``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.machine import cpu_class, cpu_facts, is_locked, lock_status
from benchmark.settings import fixtures_dir

HIT_TOLERANCE = 1  # hits a row's rank-1 may move on another CPU class or install
RECORDING_GLOB = "run_numbers_*.json"
# The lock whose pins exact digests hold for: the embedded default's packages. Every other
# lock is resolved within the same versions, so the test suite's environment (`all`) and
# `nox -s reproduce`'s (`default`) both match it.
NUMBERS_LOCK = "default"


def row_key(row: dict[str, Any]) -> str:
    """A scenario row's name (its key in results.json's ``hits``)."""
    from benchmark.study import hits_key

    return hits_key(row)


@dataclass(frozen=True)
class RunNumbers:
    """What a run measured, in the shape both checks read: digests, each scenario row's
    hits and n, the per-identity hits behind them, the claims' verdicts and the bands of
    the recorded findings."""

    profile: str
    identities: int  # the number of valid identities the run asked for
    seed: int
    digests: dict[str, str]
    rows: dict[str, dict[str, Any]]  # row key → {"hits", "n", "rank1"}
    per_identity: dict[str, dict[str, int]]  # row key → {identity: hits}
    verdicts: dict[str, str]  # "claim [case]" → pass | fail | xfail | skip
    finding_bands: dict[str, list[float]] = field(default_factory=dict)  # row key → [lo, hi]

    @classmethod
    def of(cls, results: Any) -> RunNumbers:
        from benchmark.claims import claim_judgements, finding_band, source_of

        rows = {}
        for row in [*results.scenarios, *getattr(results, "adaptive", [])]:
            key = row_key(row) + (f"|{row['attacker']}" if "attacker" in row else "")
            rows[key] = {
                "hits": round(row["rank1"] * row["n"]),
                "n": row["n"],
                "rank1": row["rank1"],
            }
        verdicts, bands = {}, {}
        for claim, case, verdict, judgement in claim_judgements(results):
            verdicts[f"{claim.id} [{case}]"] = judgement.outcome
            finding = claim.known_failures.get(case)
            scenario = claim.params.get("scenario")
            if finding and scenario and verdict.n:
                embedder = case.split("/")[0]
                source = source_of(results, case.split("/")[1]) if "/" in case else None
                try:
                    row = results.find(scenario, embedder, source)
                except KeyError:
                    continue
                bands[row_key(row)] = list(finding_band(finding, verdict.n))
        return cls(
            profile=results.profile,
            identities=int(results.config["profile"]["identities"]),
            seed=int(results.config["profile"]["seed"]),
            digests=results.number_digests(),
            rows=rows,
            per_identity={k: dict(v) for k, v in results.hits.items()},
            verdicts=verdicts,
            finding_bands=bands,
        )

    def to_json(self) -> dict[str, Any]:
        """As stored: the per-identity hits as one string per row over one sorted list of
        identities (a digit per identity, "." where the row did not score it)."""
        names = sorted({i for hits in self.per_identity.values() for i in hits})
        if any(not 0 <= h <= 9 for hits in self.per_identity.values() for h in hits.values()):
            return dict(self.__dict__)  # hits beyond one digit: kept as they are
        rows = {
            key: "".join(str(hits[i]) if i in hits else "." for i in names)
            for key, hits in self.per_identity.items()
        }
        return dict(self.__dict__) | {"per_identity": {"identities": names, "rows": rows}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunNumbers:
        per_identity = data["per_identity"]
        if set(per_identity) == {"identities", "rows"} and isinstance(per_identity["rows"], dict):
            names = per_identity["identities"]
            per_identity = {
                key: {i: int(c) for i, c in zip(names, text, strict=True) if c != "."}
                for key, text in per_identity["rows"].items()
            }
        return cls(**(data | {"per_identity": per_identity}))


@dataclass
class Comparison:
    """How run ``b`` differs from ``a``: digests, rows (hits), identities and verdicts."""

    digests: dict[str, tuple[str | None, str | None]]  # parts that differ
    rows: list[dict[str, Any]]  # rows whose hits or n differ
    verdicts: dict[str, tuple[str | None, str | None]]
    identities: list[str]  # identities whose hits differ in any row

    @property
    def exact(self) -> bool:
        return not self.digests and not self.rows and not self.verdicts

    @property
    def within_tolerance(self) -> bool:
        return not self.verdicts and all(r["within"] for r in self.rows)

    def summary(self) -> str:
        if self.exact:
            return "reproduced exactly (every digest equal)"
        shown = ", ".join(self.identities[:8]) + (" ..." if len(self.identities) > 8 else "")
        who = f"{len(self.identities)} identities differ" + (f": {shown}" if shown else "")
        if self.within_tolerance:
            return f"reproduced within tolerance ({who}; parts {', '.join(self.digests)})"
        beyond = [r["row"] for r in self.rows if not r["within"]]
        return (
            f"NOT reproduced: {len(self.verdicts)} verdicts changed "
            f"{sorted(self.verdicts)}, {len(beyond)} rows beyond tolerance {beyond} ({who})"
        )

    def table(self) -> str:
        """Markdown: every figure that differs, both values, the identities that changed."""
        lines = [self.summary(), ""]
        if self.digests:
            lines += ["| part | A | B |", "|---|---|---|"]
            lines += [f"| {k} | {a or '—'} | {b or '—'} |" for k, (a, b) in self.digests.items()]
            lines.append("")
        if self.rows:
            lines += [
                "| row | A hits/n | B hits/n | Δ hits | within | identities changed |",
                "|---|---|---|---|---|---|",
            ]
            for r in self.rows:
                who = ", ".join(r["identities"][:6]) + (" ..." if len(r["identities"]) > 6 else "")
                lines.append(
                    f"| {r['row']} | {r['a']} | {r['b']} | {r['delta']:+d} | "
                    f"{'yes' if r['within'] else 'NO'} ({r['tolerance']}) | {who or '—'} |"
                )
            lines.append("")
        if self.verdicts:
            lines += ["| claim | A | B |", "|---|---|---|"]
            lines += [f"| {k} | {a or '—'} | {b or '—'} |" for k, (a, b) in self.verdicts.items()]
            lines.append("")
        return "\n".join(lines)


def _fmt(row: dict[str, Any] | None) -> str:
    return "—" if row is None else f"{row['hits']}/{row['n']} ({100 * row['rank1']:.1f} %)"


def compare(a: RunNumbers, b: RunNumbers) -> Comparison:
    """Run ``b`` against run ``a`` (``a``: the recording, where there is one)."""
    parts = sorted(set(a.digests) | set(b.digests))
    digests = {
        p: (a.digests.get(p), b.digests.get(p))
        for p in parts
        if a.digests.get(p) != b.digests.get(p)
    }
    rows, changed = [], set()
    for key in sorted(set(a.rows) | set(b.rows)):
        ra, rb = a.rows.get(key), b.rows.get(key)
        ia, ib = a.per_identity.get(key, {}), b.per_identity.get(key, {})
        who = sorted(i for i in set(ia) | set(ib) if ia.get(i) != ib.get(i))
        if ra == rb and not who:
            continue
        changed |= set(who)
        if ra is None or rb is None:
            rows.append(
                {
                    "row": key,
                    "a": _fmt(ra),
                    "b": _fmt(rb),
                    "delta": 0,
                    "within": False,
                    "tolerance": "row missing",
                    "identities": who,
                }
            )
            continue
        delta = rb["hits"] - ra["hits"]
        band = a.finding_bands.get(key)
        in_band = band is not None and band[0] <= rb["rank1"] <= band[1]
        within = rb["n"] == ra["n"] and (abs(delta) <= HIT_TOLERANCE or in_band)
        tolerance = f"±{HIT_TOLERANCE} hit" + (
            f" or the finding's band {100 * band[0]:.1f}–{100 * band[1]:.1f} %" if band else ""
        )
        if rb["n"] != ra["n"]:
            tolerance = "n differs"
        rows.append(
            {
                "row": key,
                "a": _fmt(ra),
                "b": _fmt(rb),
                "delta": delta,
                "within": within,
                "tolerance": tolerance,
                "identities": who,
            }
        )
    claims = sorted(set(a.verdicts) | set(b.verdicts))
    verdicts = {
        c: (a.verdicts.get(c), b.verdicts.get(c))
        for c in claims
        if a.verdicts.get(c) != b.verdicts.get(c)
    }
    return Comparison(digests, rows, verdicts, sorted(changed))


@dataclass(frozen=True)
class Recording:
    """Numbers recorded from a cold run, with the environment they are exact for."""

    path: Path
    numbers: RunNumbers
    lock: dict[str, Any]  # {"lock": name, "sha256": ...}
    cpu: dict[str, Any]
    about: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Recording:
        data = json.loads(path.read_text())
        return cls(
            path,
            RunNumbers.from_json(data["numbers"]),
            data["environment"]["lock"],
            data["environment"]["cpu"],
            data["about"],
        )

    def same_environment(self) -> tuple[bool, str]:
        """Whether this machine and install are those the digests were recorded on."""
        here_lock, here_cpu = lock_status(NUMBERS_LOCK), cpu_facts()
        why = []
        if cpu_class(here_cpu) != cpu_class(self.cpu):
            why.append(
                f"CPU {cpu_class(here_cpu)} ({here_cpu.get('model_name', '?')}), "
                f"recorded on {cpu_class(self.cpu)} ({self.cpu.get('model_name', '?')})"
            )
        if not is_locked(here_lock):
            why.append(
                f"not the locked install ({here_lock.get('why') or here_lock.get('differ')})"
            )
        elif here_lock.get("sha256") != self.lock.get("sha256"):
            why.append(
                f"lock {here_lock['lock']} {here_lock['sha256'][:12]}, recorded with "
                f"{self.lock.get('lock')} {str(self.lock.get('sha256'))[:12]}"
            )
        return not why, "; ".join(why)


def recordings(folder: Path | None = None) -> list[Recording]:
    return [Recording.load(p) for p in sorted((folder or fixtures_dir()).glob(RECORDING_GLOB))]


def recording_for(numbers: RunNumbers, folder: Path | None = None) -> Recording | None:
    """The recording of a run of the same profile, size and seed, if there is one: the one
    made on this CPU class and lock where several are, else on this CPU class, else the
    first (floats differ between CPU classes, so each class may have its own recording)."""
    same_run = [
        recording
        for recording in recordings(folder)
        if (recording.numbers.profile, recording.numbers.identities, recording.numbers.seed)
        == (numbers.profile, numbers.identities, numbers.seed)
    ]
    here_cpu = cpu_class(cpu_facts())
    exact = [recording for recording in same_run if recording.same_environment()[0]]
    this_cpu = [recording for recording in same_run if cpu_class(recording.cpu) == here_cpu]
    return (exact or this_cpu or same_run or [None])[0]


@dataclass(frozen=True)
class Check:
    outcome: str  # exact | tolerance | fail | none
    message: str
    comparison: Comparison | None = None


def check(numbers: RunNumbers, folder: Path | None = None) -> Check:
    """A run against its recording: exact where the environment is the recording's, the
    tolerance check elsewhere; ``none`` (said plainly) where nothing was recorded."""
    recording = recording_for(numbers, folder)
    if recording is None:
        sizes = ", ".join(
            f"{r.numbers.profile} n = {r.numbers.identities}" for r in recordings(folder)
        )
        return Check(
            "none",
            f"no recorded numbers for {numbers.profile} at n = "
            f"{numbers.identities} (seed {numbers.seed}): nothing to check this run "
            f"against (recorded: {sizes or 'none'})",
        )
    comparison = compare(recording.numbers, numbers)
    name = recording.path.name
    if comparison.exact:
        return Check("exact", f"{name}: reproduced exactly (every digest equal)", comparison)
    same, why = recording.same_environment()
    if same:
        return Check(
            "fail",
            f"{name}: the digests of {sorted(comparison.digests)} differ on the "
            f"CPU class and lock they were recorded with, where they must be exact.\n"
            + comparison.table(),
            comparison,
        )
    if comparison.within_tolerance:
        return Check(
            "tolerance",
            f"{name}: exact digests do not apply here ({why}); {comparison.summary()}",
            comparison,
        )
    return Check(
        "fail",
        f"{name}: another environment ({why}), and beyond tolerance.\n" + comparison.table(),
        comparison,
    )


def record(results: Any, path: Path, about: dict[str, Any]) -> Path:
    """Write a recording of ``results`` (a cold run) with this machine's lock and CPU."""
    lock = lock_status(NUMBERS_LOCK)
    if not is_locked(lock):
        raise ValueError(f"record from a locked install only: {lock}")
    data = {
        "about": about,
        "environment": {
            "lock": {"lock": lock["lock"], "sha256": lock["sha256"]},
            "cpu": cpu_facts(),
            "cpu_class": cpu_class(cpu_facts()),
            "packages": results.environment.get("packages", {}),
        },
        "numbers": RunNumbers.of(results).to_json(),
    }
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmark.reproduction record RESULTS.json OUT.json --commit C --note N``:
    re-record numbers from a cold run (the commit's message says why they moved)."""
    import argparse

    from benchmark.study import load_results

    parser = argparse.ArgumentParser(prog="python -m benchmark.reproduction")
    parser.add_argument("action", choices=["record"])
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--note", required=True, help="how the run was made (cold, where)")
    args = parser.parse_args(argv)
    results = load_results(args.results)
    about = {
        "what": "Numbers of a cold run of `dmbench reproduce` (benchmark/reproduction.py): "
        "exact for the lock and CPU class below, within tolerance elsewhere.",
        "commit": results.git_commit or "unknown",
        "outcome": results.counts["draw"]["outcome"],
        "note": args.note,
    }
    print(record(results, args.out, about))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
