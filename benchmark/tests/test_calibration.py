"""The one-face rule calibrated per detector (benchmark/calibration.py, specs/detectors.toml).

Synthetic score lists check the grid search and the agreement figures; the stored TOML is
checked for form and for prep actually using it; a real-data check runs both detectors on
the lfw20 photos.
"""

from __future__ import annotations

import json
import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.calibration import (
    ORIGINAL_RULE,
    REFERENCE_DETECTOR,
    OneFaceRule,
    calibrate,
    cohen_kappa,
    collect_scores,
    compare,
    grid_search,
    load_detector_rules,
    main,
    one_face_keeps,
    top_two,
)
from benchmark.datasets import Frame
from benchmark.pipeline.prep.rules import DETECTORS_TOML, check_calibrated_model, rule_for
from benchmark.pipeline.prep.stage import PrepParams, PrepStage
from benchmark.pipeline.prep.types import Detection, FaceDetector, Pose, PoseEstimator


def _grid_photos() -> list[list[float]]:
    """Score lists between every pair of grid points, so each grid step changes a decision."""
    photos: list[list[float]] = []
    for b in range(50, 100):
        best = b / 100 + 0.005
        photos.append([best])
        photos += [[best, o / 100 + 0.005] for o in range(4, b)]
    return photos


@pytest.mark.parametrize("truth", [(0.8, 0.3), (0.72, 0.41), (0.9, 0.1), (0.55, 0.05)])
def test_grid_search_recovers_known_thresholds(truth: tuple[float, float]) -> None:
    best, second = top_two(_grid_photos())
    reference = one_face_keeps(best, second, OneFaceRule(*truth))
    found = grid_search(best, second, reference)
    assert found == OneFaceRule(*truth)
    assert compare(one_face_keeps(best, second, found), reference).agreement == 1.0


def test_grid_search_ties_go_to_the_pair_nearest_the_originals() -> None:
    # Every photo has a clear face (0.95); the reference keeps those whose second face
    # scores 0.3 and drops those at 0.6: any min_best_score in 0.50..0.94 with any
    # other_face_score in 0.31..0.60 agrees fully. Nearest to (0.9, 0.1): (0.90, 0.31).
    best, second = top_two([[0.95, 0.3], [0.95, 0.6]] * 5)
    reference = np.array([True, False] * 5)
    assert grid_search(best, second, reference) == OneFaceRule(0.9, 0.31)


def test_grid_search_reproduces_any_grid_rule_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    lists = [sorted(rng.uniform(0.05, 1.0, rng.integers(0, 4)), reverse=True) for _ in range(500)]
    best, second = top_two(lists)
    for truth in (OneFaceRule(0.6, 0.2), OneFaceRule(0.93, 0.5)):
        reference = one_face_keeps(best, second, truth)
        found = grid_search(best, second, reference)
        assert compare(one_face_keeps(best, second, found), reference).agreement == 1.0


def test_one_face_decision_on_hand_examples() -> None:
    lists = [[], [0.9], [0.95], [0.95, 0.1], [0.95, 0.0999], [0.95, 0.5, 0.2]]
    best, second = top_two(lists)
    assert best[0] == -math.inf and second[1] == -math.inf
    assert one_face_keeps(best, second, ORIGINAL_RULE).tolist() == [
        False,  # no detection is a drop
        False,  # best must be strictly above 0.9
        True,
        False,  # a second face at exactly 0.1 counts
        True,
        False,
    ]
    assert one_face_keeps(best, second, OneFaceRule(0.9, 0.6)).tolist()[-1]
    with pytest.raises(ValueError):
        one_face_keeps(best, second, OneFaceRule(0.5, 0.6))


def test_agreement_and_kappa_on_a_hand_example() -> None:
    candidate = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    reference = np.array([1, 1, 0, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    result = compare(candidate, reference)
    # observed 8/10; chance 0.4 * 0.4 + 0.6 * 0.6 = 0.52; kappa (0.8 - 0.52) / 0.48
    assert result.agreement == pytest.approx(0.8)
    assert result.kappa == pytest.approx(0.28 / 0.48)
    assert result.confusion == ((3, 1), (1, 5))
    assert (result.keep_candidate, result.keep_reference, result.photos) == (4, 4, 10)
    assert cohen_kappa(reference, reference) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(np.ones(4, bool), np.ones(4, bool)))  # chance = 1


# -- the stored thresholds ---------------------------------------------------------------
@pytest.fixture(scope="module")
def stored() -> dict:
    with open(DETECTORS_TOML, "rb") as handle:
        return tomllib.load(handle)


def test_stored_detectors_toml_is_well_formed(stored: dict) -> None:
    assert stored[REFERENCE_DETECTOR]["min_best_score"] == 0.9
    assert stored[REFERENCE_DETECTOR]["other_face_score"] == 0.1
    for table in stored.values():
        assert 0 < table["other_face_score"] <= table["min_best_score"] < 1
    yunet = stored["yunet"]
    assert yunet["calibrated_against"] == "retinaface-caffe at 0.9/0.1"
    assert yunet["agreement_after"] >= yunet["agreement_before"]
    assert yunet["kappa_after"] >= yunet["kappa_before"]
    assert yunet["holdout_agreement_after"] >= yunet["holdout_agreement_before"]
    assert 0 < yunet["holdout_photos"] < yunet["photos"]
    for when in ("before", "after"):
        (a, b), (c, d) = yunet[f"confusion_{when}"]
        assert a + b + c + d == yunet["photos"]
        assert a + b == yunet[f"keep_{when}"] and a + c == yunet["keep_reference"]
        assert (a + d) / yunet["photos"] == pytest.approx(yunet[f"agreement_{when}"], abs=1e-4)
    assert "python -m benchmark.calibration" in yunet["command"]
    assert load_detector_rules()["yunet"] == OneFaceRule(
        yunet["min_best_score"], yunet["other_face_score"]
    )


def test_prep_uses_the_detectors_stored_thresholds(store, stored: dict) -> None:
    yunet = PrepStage.from_names("yunet", store=store)
    assert (yunet.params.min_best_score, yunet.params.other_face_score) == (
        stored["yunet"]["min_best_score"],
        stored["yunet"]["other_face_score"],
    )
    original = PrepStage.from_names("yunet", store=store, params=PrepParams(0.9, 0.1))
    assert original.key("x" * 64) != yunet.key("x" * 64)  # the numbers are in the key
    if store.available("retinaface-caffe"):
        caffe = PrepStage.from_names("retinaface-caffe", store=store)
        assert (caffe.params.min_best_score, caffe.params.other_face_score) == (0.9, 0.1)


def test_explicit_thresholds_override_the_stored_ones(store, stored: dict) -> None:
    both = PrepStage.from_names("yunet", store=store, params=PrepParams(0.9, 0.1)).params
    assert (both.min_best_score, both.other_face_score) == (0.9, 0.1)
    one = PrepParams(min_best_score=0.5, reference_quirks=True).for_detector("yunet")
    assert one.min_best_score == 0.5 and one.reference_quirks
    assert one.other_face_score == stored["yunet"]["other_face_score"]
    assert PrepParams().for_detector("no-such-detector") == PrepParams(0.9, 0.1)
    assert rule_for("no-such-detector") == ORIGINAL_RULE


class _FixedDetector(FaceDetector):
    """A detector with no stored entry, returning fixed scores."""

    name = "fixed-scores"
    assets = ()

    def __init__(self) -> None:
        self.scores: list[float] = []

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return [Detection((10.0, 10.0, 40.0, 40.0), s) for s in self.scores]


class _Frontal(PoseEstimator):
    name = "frontal"
    assets = ()

    def estimate(self, rgb: np.ndarray, box_xywh: tuple[int, int, int, int]) -> Pose:
        return Pose(0.0, 0.0, 0.0)


def test_prep_decides_as_the_calibration_models_it(tmp_path: Path) -> None:
    """PrepStage's one-face decision equals ``one_face_keeps`` (0.9 / 0.1 with no entry)."""
    photo = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (128, 100, 90)).save(photo)
    detector = _FixedDetector()
    stage = PrepStage(detector, _Frontal())
    assert (stage.params.min_best_score, stage.params.other_face_score) == ORIGINAL_RULE
    lists = [[], [0.9], [0.95], [0.95, 0.1], [0.95, 0.0999], [0.99, 0.4, 0.3]]
    expected = one_face_keeps(*top_two(lists), ORIGINAL_RULE)
    for scores, keep in zip(lists, expected, strict=True):
        detector.scores = scores
        result = stage.run_frame(Frame("a", "0", 0, photo, "a.png"))
        assert (result.status == "kept") == keep, (scores, result.reason)


def test_run_json_records_the_thresholds_used(lfw20, default_prep, stored, tmp_path) -> None:
    from benchmark.pipeline.prep.stage import run_prep

    one = lfw20.subset(1, seed=1)
    run_prep(one, tmp_path / "run", default_prep, progress=False)
    params = json.loads((tmp_path / "run" / "run.json").read_text())["params"]
    assert params["min_best_score"] == stored["yunet"]["min_best_score"]
    assert params["other_face_score"] == stored["yunet"]["other_face_score"]


# -- real photos -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lfw20_scores(lfw20, store):
    if not store.available(REFERENCE_DETECTOR):
        pytest.skip("retinaface-caffe weights are not available locally")
    return (
        collect_scores(lfw20, "yunet", store),
        collect_scores(lfw20, REFERENCE_DETECTOR, store),
    )


@pytest.mark.integration
def test_calibration_on_lfw20_does_not_lose_agreement(lfw20, lfw20_scores) -> None:
    yunet, caffe = lfw20_scores
    assert len(yunet.scores) == len(lfw20.frames) and not yunet.excluded
    cal = calibrate(lfw20, yunet, caffe)
    assert cal.before.photos == len(lfw20.frames) and cal.excluded == 0
    assert cal.after.agreement >= cal.before.agreement
    assert cal.holdout_before.photos + cal.holdout_after.photos > 0
    assert cal.before.keep_reference == cal.after.keep_reference
    # The thresholds stored from all LFW-dev photos also do no worse on these 20 identities.
    rels = [f.rel for f in lfw20.frames]
    ref_keep = one_face_keeps(*top_two([caffe.scores[r] for r in rels]), ORIGINAL_RULE)
    best, second = top_two([yunet.scores[r] for r in rels])
    stored_rule = compare(one_face_keeps(best, second, rule_for("yunet")), ref_keep)
    assert stored_rule.agreement >= cal.before.agreement


@pytest.mark.integration
def test_calibration_command_writes_a_loadable_toml(lfw20, lfw20_scores, tmp_path) -> None:
    folder = tmp_path / "lfw" / "images"
    for frame in lfw20.subset(3, seed=0).frames:
        (folder / frame.identity).mkdir(parents=True, exist_ok=True)
        shutil.copy(frame.path, folder / frame.identity / frame.path.name)
    out = tmp_path / "detectors.toml"
    assert main(["--dataset", str(tmp_path / "lfw"), "--out", str(out)]) == 0
    rules = load_detector_rules(out)
    assert rules[REFERENCE_DETECTOR] == ORIGINAL_RULE and "yunet" in rules
    with open(out, "rb") as handle:
        assert tomllib.load(handle)["yunet"]["photos"] > 0


def test_a_detector_model_other_than_the_calibrated_one_is_refused(store) -> None:
    """Thresholds belong to the model they were measured on; a swapped file must not run
    with them silently (explicit thresholds still may)."""
    from benchmark.errors import DmbenchError

    genuine = store.sha256_of("yunet")
    check_calibrated_model("yunet", genuine)  # the model the TOML was calibrated on
    other = {name: "0" * 64 for name in genuine}
    with pytest.raises(DmbenchError, match="recalibrate"):
        check_calibrated_model("yunet", other)
    check_calibrated_model("no-such-detector", other)  # nothing calibrated: nothing to check
