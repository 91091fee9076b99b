"""No claim can pass vacuously: empty results, a scenario that scored nobody, a run where
every mask failed, or an n below the claim's minimum. Findings are monitored by size.

The verdicts are computed from synthetic results here (the rows a study writes), and once
from a real run on LFW-dev photos in which every mask fails.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace

import pytest

from benchmark.claims import judge, minimum_n, verdict_for
from benchmark.errors import DmbenchError
from benchmark.specs import load_claims, load_profiles
from benchmark.study import StudyResults

CLAIMS = load_claims()
SOURCE = "mediapipe-mesh+numpy+mediapipe-hull"


def _row(scenario: str, embedder: str, n: int, hits: int, family: str = "Mask2Mask") -> dict:
    rank1 = hits / n if n else 0.0
    return {
        "scenario": scenario,
        "family": family,
        "embedder": embedder,
        "query_source": "prep" if scenario == "Face2Face" else SOURCE,
        "database_source": "prep" if scenario.endswith("2Face") else SOURCE,
        "cross_mask": False,
        "alignment": "self",
        "n": n,
        "pairs": n,
        "gallery": n,
        "rank1": rank1,
        "rank1_ci": (0.0, 1.0),
        "rank1_all": rank1,
        "chance": 1 / n if n else 0.0,
        "query_failures": 0,
        "database_failures": 0,
    }


def _results(n: int, hits: dict[str, int], embedder: str = "sface") -> StudyResults:
    """Results with every scenario the claims read, n identities, ``hits`` per scenario."""
    scenarios = ("Face2Face", "Overlay2Face", "Overlay2Overlay", "MaskOnly2MaskOnly")
    rows = [_row(s, embedder, n, hits.get(s, 0)) for s in scenarios]
    identities = [f"id{i}" for i in range(n)]
    hit_lists = {}
    for row in rows:
        key = f"{embedder}|{row['scenario']}|{row['query_source']}|{row['database_source']}"
        count = hits.get(row["scenario"], 0)
        hit_lists[key] = {ident: int(i < count) for i, ident in enumerate(identities)}
    config = {
        "profile": {"seed": 42, "identities": 555, "embedders": [embedder]},
        "mask_sources": [SOURCE],
    }
    return StudyResults("lfw", config, rows, {}, {}, {}, {}, hit_lists)


def _outcome(claim, results, default_run=True, key="sface"):
    source = SOURCE if claim.per_source else None
    verdict = verdict_for(claim, results, "sface", source)
    return judge(claim, verdict, default_run, key)


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.profile == "lfw"], ids=lambda c: c.id)
def test_no_claim_passes_on_empty_results(claim) -> None:
    empty = StudyResults(
        "lfw", {"profile": {"seed": 42}, "mask_sources": [SOURCE]}, [], {}, {}, {}, {}
    )
    for default_run in (True, False):
        assert _outcome(claim, empty, default_run).outcome == "fail"


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.profile == "lfw"], ids=lambda c: c.id)
def test_no_claim_passes_when_its_scenario_scored_nobody(claim) -> None:
    for default_run in (True, False):
        assert _outcome(claim, _results(0, {}), default_run).outcome == "fail"


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.profile == "lfw"], ids=lambda c: c.id)
def test_below_the_minimum_n_fails_the_default_run_and_is_not_judged_in_a_reduced_one(
    claim,
) -> None:
    n = claim.min_n - 1
    if n < 1:
        pytest.skip("minimum n of 1")
    # Results that would satisfy any direction: everyone found, nobody in Mask2Face.
    results = _results(n, {"Face2Face": n, "Overlay2Overlay": n, "MaskOnly2MaskOnly": n})
    assert _outcome(claim, results, default_run=True).outcome == "fail"
    assert _outcome(claim, results, default_run=False).outcome == "skip"


def test_claims_are_judged_for_real_at_their_minimum_n() -> None:
    by_id = {c.id: c for c in CLAIMS}
    works = by_id["lfw_face2face_embedder_works"]
    n = works.min_n
    assert _outcome(works, _results(n, {"Face2Face": n}), default_run=False).outcome == "pass"
    assert _outcome(works, _results(n, {"Face2Face": 2}), default_run=False).outcome == "fail"
    above = by_id["lfw_mask2mask_above_chance"]
    n = above.min_n
    assert _outcome(above, _results(n, {"Overlay2Overlay": 0})).outcome == "fail"
    assert _outcome(above, _results(n, {"Overlay2Overlay": 10})).outcome == "pass"


def test_at_chance_is_an_equivalence_test_not_absence_of_evidence() -> None:
    """dlib's Overlay2Face on the disjoint identities: 1.6 % (9 of 555), binomial p = 0.019.
    A non-rejection test would not even have held; an interval that merely contains chance
    would have. The equivalence test says: not shown to be at chance."""
    claim = next(c for c in CLAIMS if c.id == "lfw_mask2face_at_chance")
    claim = replace(claim, known_failures={})  # the test alone, without the recorded finding
    assert _outcome(claim, _results(555, {"Overlay2Face": 9})).outcome == "fail"
    assert _outcome(claim, _results(555, {"Overlay2Face": 1})).outcome == "pass"
    # Three hits at n = 270 (the old default run's n) is too few identities to show it.
    assert claim.min_n > 270


def test_a_gallery_of_one_is_no_verdict_at_chance_and_no_crash() -> None:
    """n = 1: chance is 100 %, so chance + margin lies above every rate; the claim fails
    with that said (it raised a ValueError out of `dmbench reproduce` before)."""
    claim = next(c for c in CLAIMS if c.id == "lfw_mask2face_at_chance")
    verdict = verdict_for(claim, _results(1, {"Overlay2Face": 1}), "sface")
    assert not verdict.holds and "gallery is too small" in verdict.measured


def test_findings_are_monitored_by_size_not_only_by_sign() -> None:
    claim = next(c for c in CLAIMS if c.id == "lfw_mask2face_at_chance")
    finding = {"value": 0.20, "tolerance": 0.04, "n": 555, "measured": "20 % of 555"}
    recorded = replace(claim, known_failures={"sface": finding})
    assert _outcome(recorded, _results(555, {"Overlay2Face": 111})).outcome == "xfail"  # 20 %
    moved = _outcome(recorded, _results(555, {"Overlay2Face": 55})).outcome  # 9.9 %
    assert moved == "fail"
    now_holds = _outcome(recorded, _results(555, {"Overlay2Face": 0}))
    assert now_holds.outcome == "fail" and "moved" in now_holds.message
    # The band is stated at the finding's n and widens as 1/sqrt(n) on smaller runs: 15 %
    # is outside it at n = 555 and inside it at n = 139.
    wide = replace(recorded, min_n=100)
    assert _outcome(wide, _results(555, {"Overlay2Face": 83}), False).outcome == "fail"
    assert _outcome(wide, _results(139, {"Overlay2Face": 21}), False).outcome == "xfail"


def test_the_minimum_n_is_the_stated_power_calculation() -> None:
    for claim in CLAIMS:
        assert minimum_n(claim) == claim.min_n


@pytest.mark.integration
def test_no_claim_passes_on_a_run_where_every_mask_failed(
    lfw, store, tmp_path, monkeypatch
) -> None:
    """A real run on 4 LFW-dev identities whose masks all fail (fail-closed): nobody is
    valid, and the study stops with an error that says why instead of results with n = 0
    (on which every claim would fail: ``test_no_claim_passes_on_empty_results``)."""
    import benchmark.pipeline.mask.stage as mask_module
    from benchmark.pipeline.mask.types import MaskFailure
    from benchmark.study import StudyOptions, run_study

    data = tmp_path / "lfw4"
    for identity in lfw.identities()[:4]:
        shutil.copytree(lfw.root / "images" / identity, data / "images" / identity)

    def always_fails(*args, **kwargs):
        raise MaskFailure("test: this mask always fails")

    monkeypatch.setattr(mask_module, "check_output", always_fails)
    profile = load_profiles()["lfw"]
    options = StudyOptions(data=str(data), identities=3, use_cache=False, progress=False)
    with pytest.raises(DmbenchError, match="no identity can be scored") as info:
        run_study(profile, tmp_path / "run", options, store)
    failed_masks = int(re.search(r"(\d+) had failed masks", str(info.value))[1])
    assert failed_masks > 0, str(info.value)
    assert not (tmp_path / "run" / "results.json").exists()


def test_number_digests_see_every_number_but_not_timings_or_the_data_folder() -> None:
    """What test_recorded_run_numbers compares: one changed rank-1 changes the
    scenarios' digest; timings, the environment and where the data lay do not count."""
    base = _results(555, {"Face2Face": 546})
    digests = base.number_digests()
    moved = replace(base, timings={"prep_s": 1.0}, environment={"python": "9.9"})
    moved.config = {**base.config, "data": "/elsewhere"}
    assert moved.number_digests() == digests
    changed = replace(base, scenarios=[dict(row) for row in base.scenarios])
    changed.scenarios[0]["rank1"] += 1e-12
    after = changed.number_digests()
    assert after["scenarios"] != digests["scenarios"]
    assert {k: v for k, v in after.items() if k != "scenarios"} == {
        k: v for k, v in digests.items() if k != "scenarios"
    }
