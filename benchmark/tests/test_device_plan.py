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


def test_one_backend_of_a_role_can_be_kept_on_the_cpu() -> None:
    plan = DevicePlan.parse("cuda,detector=cpu,embedder:dlib-resnet-onnx=cpu")
    devices = device_map(load_profiles()["lfw"], plan)
    assert devices["recognize.embedder:sface"] == "cuda"
    assert devices["recognize.embedder:dlib-resnet-onnx"] == "cpu"
    assert devices["prep.detector:yunet"] == "cpu"
    assert devices["mask.reconstruct:sfm-eos"] == "cpu"  # CPU-only by design


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
    import cv2

    from benchmark.pipeline.prep.stage import PrepStage
    from benchmark.pipeline.prep.types import POSES

    if hasattr(cv2, "cuda") and cv2.cuda.getCudaEnabledDeviceCount():
        pytest.skip("this OpenCV has CUDA")

    with pytest.raises(DeviceError, match="detector=cpu"):
        PrepStage.from_names("yunet", store=store, device=DevicePlan.parse("cuda"))
    stage = PrepStage.from_names(
        "yunet", "mediapipe-mesh", store=store, device=DevicePlan.parse("cuda,detector=cpu")
    )
    assert stage.backend == "yunet+mediapipe-mesh"
    assert POSES.device_of("mediapipe-mesh", DevicePlan.parse("cuda")) == "cpu"  # CPU-only


class _Session:
    def __init__(self, providers: list[str]) -> None:
        self.providers = providers

    def get_providers(self) -> list[str]:
        return self.providers


def test_an_onnxruntime_session_that_fell_back_to_the_cpu_is_refused() -> None:
    """onnxruntime-gpu builds a CPU-only session when CUDA libraries fail to load."""
    from benchmark.device import check_session_device

    check_session_device(_Session(["CPUExecutionProvider"]), "cpu", "x")
    check_session_device(_Session(["CUDAExecutionProvider", "CPUExecutionProvider"]), "cuda", "x")
    with pytest.raises(DeviceError, match="CPUExecutionProvider only"):
        check_session_device(_Session(["CPUExecutionProvider"]), "cuda", "sface")


def test_a_role_given_twice_is_an_error() -> None:
    with pytest.raises(DeviceError, match="twice"):
        DevicePlan.parse("cuda,detector=cpu,detector=cuda")
