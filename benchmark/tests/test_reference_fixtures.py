"""dmbench's defaults are the original pipeline's settings (fixtures/reference_prep.toml)."""

from __future__ import annotations

import tomllib

import pytest

from benchmark.pipeline.prep.detectors import RetinaFaceCaffe
from benchmark.pipeline.prep.stage import PrepParams
from benchmark.settings import fixtures_dir


@pytest.fixture(scope="module")
def reference() -> dict:
    with open(fixtures_dir() / "reference_prep.toml", "rb") as handle:
        return tomllib.load(handle)


def test_prep_defaults_are_the_originals(reference: dict) -> None:
    # The one-face thresholds are per detector (benchmark/specs/detectors.toml); the
    # original's detector, and any detector without an entry, gets the original's.
    for detector in ("retinaface-caffe", "no-such-detector"):
        params = PrepParams().for_detector(detector)
        assert params.min_best_score == reference["one_face_rule"]["min_best_score"]
        assert params.other_face_score == reference["one_face_rule"]["other_face_score"]
    params = PrepParams()
    assert params.max_yaw == reference["pose_filter"]["max_yaw"]
    assert params.max_pitch == reference["pose_filter"]["max_pitch"]
    assert params.margin == reference["crop"]["margin"]
    assert params.crop_size == reference["crop"]["size"]
    assert params.seed == reference["selection"]["seed"]


def test_caffe_detector_preprocessing_is_the_originals(reference: dict) -> None:
    assert RetinaFaceCaffe.target_area == reference["detector"]["input_area"]
    assert list(RetinaFaceCaffe.mean_bgr) == reference["detector"]["mean_bgr"]
    assert RetinaFaceCaffe.output_blob == reference["detector"]["output_blob"]
