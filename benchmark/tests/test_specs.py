"""The scenario table, the profiles and the claims are data; these tests check the data."""

from __future__ import annotations

from benchmark.claims import KINDS, POWER_TARGET, minimum_n, power
from benchmark.specs import IMAGE_VARIANTS, load_claims, load_profiles, load_scenarios


def test_every_x2face_scenario_really_uses_faces_in_the_database() -> None:
    scenarios = load_scenarios()
    assert len({s.name for s in scenarios}) == len(scenarios) == 7
    for s in scenarios:
        assert s.query in IMAGE_VARIANTS and s.database in IMAGE_VARIANTS
        assert s.name.endswith("2Face") == (s.database == "face")
        if s.family == "Mask2Face":
            assert s.database == "face" and s.query != "face"
        if s.family == "Mask2Mask":
            assert s.database == s.query != "face"
        if s.family == "Face2Face":
            assert s.query == s.database == "face"


def test_reference_quirk_reproduces_the_originals_loaded_files() -> None:
    black = next(s for s in load_scenarios() if s.name == "MaskOnlyBlack2Face")
    assert black.variants() == ("mask_only_black", "face")
    assert black.variants(reference_quirks=True) == ("mask_only_black", "mask_only_black")
    for s in load_scenarios():
        if s.name != "MaskOnlyBlack2Face":
            assert s.variants(True) == s.variants(False)


def test_profiles_name_registered_backends() -> None:
    from benchmark.pipeline.mask.types import CONTROLS, CUTS, RECONSTRUCTORS, RENDERERS
    from benchmark.pipeline.prep.types import DETECTORS, POSES
    from benchmark.pipeline.recognize.pairing import IDENTITY_RULES, PROTOCOLS
    from benchmark.pipeline.recognize.types import EMBEDDERS

    for profile in load_profiles().values():
        assert profile.detector in DETECTORS.names() and profile.pose in POSES.names()
        assert profile.render in RENDERERS.names() and profile.cut in CUTS.names()
        assert profile.protocol in PROTOCOLS
        assert profile.identity_rule in IDENTITY_RULES
        for name in profile.reconstruct:
            assert name in RECONSTRUCTORS.names()
        for name in profile.controls:
            assert name in CONTROLS.names()
        for name in profile.embedders:
            assert name in EMBEDDERS.names()
    assert load_profiles()["lfw"].protocol == "cross-session"  # one photo per LFW session
    assert "blank" in load_profiles()["lfw"].controls  # every reconstruction beside a control


def test_paper_profiles_are_the_original_and_the_original_corrected() -> None:
    profiles = load_profiles()
    paper, fixed = profiles["paper"], profiles["paper-fixed"]
    assert paper.reference_quirks and not fixed.reference_quirks
    skip = ("name", "description", "extra")
    same = {k: v for k, v in paper.__dict__.items() if k not in skip}
    other = {k: v for k, v in fixed.__dict__.items() if k not in skip}
    assert same | {"reference_quirks": False} == other
    assert fixed.extra == paper.extra | {"claims_from": "paper"}  # read against the paper's


def test_claims_cite_bound_and_reason() -> None:
    scenarios = {s.name for s in load_scenarios()}
    profiles = load_profiles()
    for claim in load_claims():
        assert claim.profile in profiles
        assert claim.citation and len(claim.reasoning) > 80
        for key in ("scenario", "better", "worse"):
            if key in claim.params:
                assert claim.params[key] in scenarios
    kinds = {c.kind for c in load_claims()}
    assert {"at_chance", "above_chance", "difference_positive"} <= kinds
    assert kinds <= set(KINDS)


def test_every_claims_minimum_n_is_its_power_calculation() -> None:
    """min_n in the TOML is what the stated alternative gives, and the reasoning says it."""
    for claim in load_claims():
        assert claim.min_n == minimum_n(claim), claim.id
        assert power(claim, claim.min_n) >= POWER_TARGET, claim.id
        assert f"{claim.min_n}" in claim.reasoning.replace(",", ""), claim.id
        for finding in claim.known_failures.values():
            assert {"value", "tolerance", "n", "measured"} <= set(finding), claim.id
            assert finding["n"] >= claim.min_n and 0 < finding["tolerance"] < 0.5, claim.id


def test_the_paper_claims_use_the_papers_numbers() -> None:
    claims = {c.id: c for c in load_claims()}
    mask2mask = claims["paper_mask2mask_52_percent"].params
    assert (mask2mask["paper_hits"], mask2mask["paper_n"]) == (289, 555)  # 52.1 % of 555
    assert claims["paper_mask2face_at_most_0_52_percent"].params["max"] == 0.0052  # Yang et al.
    per_source = [c for c in load_claims() if c.per_source]
    assert any(c.params["scenario"] == "MaskOnly2MaskOnly" for c in per_source)
