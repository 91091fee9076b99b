"""Choosing where models run. Asking for CUDA where it does not load is an error."""

from __future__ import annotations

from benchmark.errors import DeviceError

DEVICES = ("cpu", "cuda")


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise DeviceError(f"unknown device '{device}'; use one of {', '.join(DEVICES)}")
    return device


def onnx_providers(device: str) -> list[str]:
    """Explicit onnxruntime providers; CUDA must really be there when asked for."""
    import onnxruntime as ort

    check_device(device)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise DeviceError(
            "device 'cuda' requested but onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(available)}). Install onnxruntime-gpu instead of "
            "onnxruntime (pip install 'dmbench[gpu]' in a fresh environment)."
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def opencv_dnn_target(device: str) -> tuple[int, int]:
    """(backend, target) for cv2.dnn; CUDA needs an OpenCV built with CUDA."""
    import cv2

    check_device(device)
    if device == "cpu":
        return cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_CPU
    count = 0
    try:
        count = cv2.cuda.getCudaEnabledDeviceCount()
    except (AttributeError, cv2.error):
        count = 0
    if count == 0:
        raise DeviceError(
            "device 'cuda' requested for an OpenCV dnn model, but this OpenCV build has no "
            "CUDA support (the PyPI wheels never do). Run this backend with --device cpu, "
            "or build OpenCV with CUDA."
        )
    return cv2.dnn.DNN_BACKEND_CUDA, cv2.dnn.DNN_TARGET_CUDA
