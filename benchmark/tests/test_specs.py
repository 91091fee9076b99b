"""The scenario table, the profiles and the claims are data; these tests check the data."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(
    ("file", "table", "line"),
    [
        ("profiles.toml", "profile", 'detectr = "yunet"'),
        ("scenarios.toml", "scenario", 'familly = "Mask2Face"'),
        ("claims.toml", "claim", "min_m = 3"),
    ],
)
def test_an_unknown_toml_key_is_an_error_naming_file_and_key(
    tmp_path, monkeypatch, file: str, table: str, line: str
) -> None:
    import shutil

    import benchmark.specs as specs
    from benchmark.errors import DmbenchError

    folder = tmp_path / "specs"
    shutil.copytree(specs.SPEC_DIR, folder)
    text = (folder / file).read_text()
    (folder / file).write_text(text.replace(f"[[{table}]]\n", f"[[{table}]]\n{line}\n", 1))
    monkeypatch.setattr(specs, "SPEC_DIR", folder)
    loader = {"profile": load_profiles, "scenario": load_scenarios, "claim": load_claims}[table]
    with pytest.raises(DmbenchError, match=rf"{file}.*unknown key\(s\) {line.split()[0]}"):
        loader()


def test_required_assets_are_derived_from_the_backends() -> None:
    from benchmark.assets import AssetStore
    from benchmark.study import required_assets

    store, profiles = AssetStore(), load_profiles()
    original = {"retinaface-caffe", "pfld", "ringnet", "flame-sample", "dlib-81"}
    for name in ("paper", "paper-fixed"):  # what the profiles used to list by hand
        assert set(required_assets(profiles[name], store)) == original | {
            "youtube-faces",
            "insightface-buffalo-l",
        }
    assert set(required_assets(profiles["lfw"], store)) == {
        "lfw",
        "yunet",
        "mediapipe-face-models",
        "mediapipe-canonical-mesh",
        "sfm",
        "dlib-face-recognition-models",
        "sface",
    }
