"""--device plans: a default, per-role exceptions, CPU-only backends, never a silent fallback."""

from __future__ import annotations

import pytest

from benchmark.device import DevicePlan
from benchmark.errors import DeviceError
from benchmark.specs import load_profiles
from benchmark.study import device_map


def test_parse_and_print() -> None:
    assert DevicePlan.parse("cpu") == DevicePlan("cpu", {})
    plan = DevicePlan.parse("cuda, detector=cpu ,embedder=cuda")
    assert plan == DevicePlan("cuda", {"detector": "cpu", "embedder": "cuda"})
    assert DevicePlan.parse(str(plan)) == plan
    for bad in ("", "tpu", "cuda,nose=cpu", "cuda,cpu", "cuda,detector=tpu"):
        with pytest.raises(DeviceError):
            DevicePlan.parse(bad)


def test_paper_profile_under_cuda_keeps_cpu_only_backends_on_the_cpu() -> None:
    devices = device_map(load_profiles()["paper"], DevicePlan.parse("cuda,detector=cpu"))
    assert devices == {
        "prep.detector:retinaface-caffe": "cpu",  # asked for
        "prep.pose:pfld": "cuda",
        "mask.reconstruct:ringnet": "cuda",
        "mask.render:numpy": "cpu",  # no GPU code
        "mask.cut:dlib81-hull": "cpu",  # no GPU code
        "recognize.embedder:insightface-buffalo-l": "cuda",
    }


def test_cuda_where_it_cannot_load_is_an_error_not_a_cpu_run(store) -> None:
    """YuNet through PyPI's OpenCV has no CUDA: a cuda plan refuses, naming the way out."""
    from benchmark.pipeline.prep import PrepStage

    with pytest.raises(DeviceError, match="detector=cpu"):
        PrepStage.from_names("yunet", store=store, device=DevicePlan.parse("cuda"))
    stage = PrepStage.from_names(
        "yunet", "mediapipe-mesh", store=store, device=DevicePlan.parse("cuda,detector=cpu")
    )
    assert stage.backend  # MediaPipe pose is CPU-only: the plan put it there
