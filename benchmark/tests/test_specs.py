"""The scenario table, the profiles and the claims are data; these tests check the data."""

from __future__ import annotations

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
    from benchmark.pipeline.mask import load_backends
    from benchmark.pipeline.mask_types import CUTS, RECONSTRUCTORS, RENDERERS
    from benchmark.pipeline.prep import DETECTORS, POSES
    from benchmark.pipeline.prep_detectors import YuNet  # noqa: F401 - registers
    from benchmark.pipeline.prep_pose import MediaPipeMeshPose  # noqa: F401
    from benchmark.pipeline.recognize import load_embedders
    from benchmark.pipeline.recognize_types import EMBEDDERS
    from benchmark.protocols import IDENTITY_RULES, PROTOCOLS

    load_backends()
    load_embedders()
    for profile in load_profiles().values():
        assert profile.detector in DETECTORS.names() and profile.pose in POSES.names()
        assert profile.render in RENDERERS.names() and profile.cut in CUTS.names()
        assert profile.protocol in PROTOCOLS
        assert profile.identity_rule in IDENTITY_RULES
        for name in profile.reconstruct:
            assert name in RECONSTRUCTORS.names()
        for name in profile.embedders:
            assert name in EMBEDDERS.names()
    assert load_profiles()["lfw"].protocol == "cross-session"  # one photo per LFW session


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
