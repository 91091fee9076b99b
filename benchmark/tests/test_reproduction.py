"""Two levels of "reproduced": exact digests on the recording's CPU class and lock, the
tolerance check elsewhere (a simulated other CPU here), and `dmbench compare`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark import reproduction
from benchmark.cli import main
from benchmark.machine import cpu_class, cpu_facts, lock_status
from benchmark.reproduction import RunNumbers, check, compare
from benchmark.tests.test_claims_logic import _results

# A CPU of another vendor and instruction set than any machine this suite runs on.
OTHER_CPU = {
    "machine": "x86_64",
    "vendor": "AuthenticAMD",
    "family": "25",
    "model": "17",
    "model_name": "AMD EPYC (simulated)",
    "simd": ["avx", "avx2", "fma", "sse", "sse2"],
}
N = 555
# Hits that put every lfw claim where the default run put them (SFace's Overlay2Face is a
# recorded finding: 32 of 555, inside its band).
HITS = {"Face2Face": 546, "Overlay2Face": 32, "Overlay2Overlay": 78, "MaskOnly2MaskOnly": 40}


def _numbers(hits: dict[str, int] = HITS, flip: dict[str, list[int]] | None = None):
    """RunNumbers of synthetic results; ``flip``: per scenario, identities whose hit flips."""
    results = _results(N, hits)
    for scenario, identities in (flip or {}).items():
        row = next(r for r in results.scenarios if r["scenario"] == scenario)
        per_identity = results.hits_of(row)
        for i in identities:
            per_identity[f"id{i}"] = 1 - per_identity[f"id{i}"]
        row["rank1"] = sum(per_identity.values()) / row["n"]
    return RunNumbers.of(results)


def _record(folder: Path, numbers: RunNumbers, cpu: dict) -> None:
    lock = lock_status(reproduction.NUMBERS_LOCK)
    data = {
        "about": {"what": "a test's recording"},
        "environment": {
            "lock": {"lock": lock.get("lock"), "sha256": lock.get("sha256")},
            "cpu": cpu,
            "cpu_class": cpu_class(cpu),
        },
        "numbers": numbers.to_json(),
    }
    (folder / f"run_numbers_{numbers.identities}.json").write_text(json.dumps(data))


@pytest.fixture
def here_is_locked() -> None:
    if not reproduction.is_locked(lock_status(reproduction.NUMBERS_LOCK)):
        pytest.skip("the exact level needs the locked install (nox -s tests installs it)")


def test_the_recording_s_cpu_and_lock_stay_exact(tmp_path: Path, here_is_locked) -> None:
    _record(tmp_path, _numbers(), cpu_facts())
    assert check(_numbers(), tmp_path).outcome == "exact"
    # One identity's hit moved: here, where the digests were recorded, that is a failure,
    # however small, never a fallback to the tolerance.
    moved = check(_numbers(flip={"Overlay2Overlay": [100]}), tmp_path)
    assert moved.outcome == "fail", moved.message
    assert "where they must be exact" in moved.message and "id100" in moved.message


def test_another_cpu_falls_back_to_the_tolerance_and_names_the_identities(
    tmp_path: Path, here_is_locked
) -> None:
    _record(tmp_path, _numbers(), OTHER_CPU)
    one = check(_numbers(flip={"Overlay2Overlay": [100]}), tmp_path)
    assert one.outcome == "tolerance", one.message
    assert "exact digests do not apply here" in one.message
    assert "AMD EPYC (simulated)" in one.message
    assert "reproduced within tolerance (1 identities differ: id100" in one.message
    # Two hits in one row: beyond ±1 hit.
    two = check(_numbers(flip={"Overlay2Overlay": [100, 101]}), tmp_path)
    assert two.outcome == "fail" and "beyond tolerance" in two.message
    # Two identities trading a hit leave the rank-1 equal: within, and both are named.
    swap = _numbers(flip={"Face2Face": [0, 554]})
    assert check(swap, tmp_path).outcome == "tolerance"
    assert check(swap, tmp_path).comparison.identities == ["id0", "id554"]


def test_a_recorded_finding_may_move_within_its_band_but_no_verdict_may_change(
    tmp_path: Path, here_is_locked
) -> None:
    _record(tmp_path, _numbers(), OTHER_CPU)
    # SFace Overlay2Face is a finding (5.8 %, band ±2.6 points): 5 more hits stay in it.
    in_band = _numbers(flip={"Overlay2Face": list(range(40, 45))})
    result = check(in_band, tmp_path)
    assert result.outcome == "tolerance", result.message
    # Mask2Face at chance: one hit of 555 holds, 40 do not: the verdict changes.
    recorded = _numbers({**HITS, "Overlay2Face": 1})
    _record(tmp_path, recorded, OTHER_CPU)
    changed = check(_numbers({**HITS, "Overlay2Face": 40}), tmp_path)
    assert changed.outcome == "fail" and changed.comparison.verdicts, changed.message


def test_a_size_without_recorded_numbers_says_so(tmp_path: Path) -> None:
    _record(tmp_path, _numbers(), OTHER_CPU)
    other = RunNumbers(**{**_numbers().to_json(), "identities": 100})
    result = check(other, tmp_path)
    assert result.outcome == "none"
    assert "no recorded numbers for lfw at n = 100" in result.message
    assert "recorded: lfw n = 555" in result.message


def test_the_recorded_files_are_complete_and_consistent() -> None:
    """Each recording: its digests, rows, per-identity hits and verdicts agree."""
    found = reproduction.recordings()
    assert {r.numbers.identities for r in found} >= {60, 555}
    for recording in found:
        numbers = recording.numbers
        assert set(numbers.digests) >= {"config", "scenarios", "hits", "counts"}
        assert recording.lock.get("sha256") and recording.cpu.get("simd")
        for key, row in numbers.rows.items():
            if key in numbers.per_identity:
                assert sum(numbers.per_identity[key].values()) == row["hits"], key
        assert numbers.verdicts and set(numbers.verdicts.values()) <= {
            "pass",
            "fail",
            "xfail",
            "skip",
        }
        assert "fail" not in numbers.verdicts.values(), recording.path


def test_compare_lists_every_difference_and_exits_beyond_tolerance(tmp_path: Path) -> None:
    a, b = _numbers(), _numbers(flip={"Overlay2Overlay": [300]})
    comparison = compare(a, b)
    assert not comparison.exact and comparison.within_tolerance
    assert [r["row"].split("|")[1] for r in comparison.rows] == ["Overlay2Overlay"]
    assert "| 78/555 (14.1 %) | 79/555 (14.2 %) | +1 |" in comparison.table()
    assert compare(a, a).exact


@pytest.mark.integration
def test_dmbench_compare_on_two_results_files(small_study, tmp_path: Path, capsys) -> None:
    """Two real results files (they are checked against their schema first): the same
    run, and the run with three more Overlay2Overlay hits on one row."""
    import copy

    from benchmark.study import hits_key

    _, out = small_study
    base = json.loads((out / "results.json").read_text())
    moved = copy.deepcopy(base)
    row = next(
        r
        for r in moved["scenarios"]
        if r["scenario"] == "Overlay2Overlay" and r["n"] - round(r["rank1"] * r["n"]) >= 3
    )
    hits = moved["hits"][hits_key(row)]
    for identity in [i for i, hit in hits.items() if not hit][:3]:
        hits[identity] = 1
    row["rank1"] = (round(row["rank1"] * row["n"]) + 3) / row["n"]
    paths = []
    for name, data in (("a", base), ("b", moved)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        paths.append(str(path))
    assert main(["compare", paths[0], paths[0]]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    assert main(["compare", *paths]) == 1
    out = capsys.readouterr().out
    assert "NOT reproduced" in out and "Overlay2Overlay" in out and "+3" in out
