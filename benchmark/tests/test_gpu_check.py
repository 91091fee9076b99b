"""The GPU check script classifies every path; on a CPU-only machine each refuses loudly."""

from __future__ import annotations

import json

import pytest

from benchmark import gpu_check


def test_every_heavy_backend_has_a_check() -> None:
    names = " ".join(gpu_check.CHECKS)
    heavy = ("pfld", "ringnet (", "ringnet-onnx", "sface", "insightface-buffalo-l", "yunet")
    for backend in (*heavy, "dlib-resnet-onnx"):
        assert backend in names


def test_statuses_and_exit_code(capsys, monkeypatch) -> None:
    def broken() -> dict:
        raise RuntimeError("kernel launch failed")

    def slow_gpu() -> dict:
        return {"ok": False, "max_abs_diff": 1.0}

    monkeypatch.setattr(
        gpu_check,
        "CHECKS",
        {"opencv dnn": gpu_check.check_opencv_dnn, "broken": broken, "parity": slow_gpu},
    )
    import cv2

    if cv2.cuda.getCudaEnabledDeviceCount() if hasattr(cv2, "cuda") else 0:
        pytest.skip("this OpenCV has CUDA: the refusal cannot be observed")
    assert gpu_check.main(["--only", "opencv"]) == 0  # refused: the promised behaviour
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["status"] == "refused" and "CUDA" in row["why"]
    assert gpu_check.main(["--only", "opencv", "--strict"]) == 1
    assert gpu_check.main(["--only", "opencv", "--strict", "--allow-refused", "opencv"]) == 0
    assert gpu_check.main(["--only", "broken"]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == "failed"
    assert gpu_check.main(["--only", "parity"]) == 1
