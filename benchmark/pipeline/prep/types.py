"""The prep stage's vocabulary: what a detector and a pose backend return, the protocols
they implement and the registries that find them by name. Backends import this, never the
runner (``stage.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from benchmark.pipeline.backend import Backend
from benchmark.pipeline.registry import BackendPath, Registry


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Pose:
    yaw: float  # + : nose towards the image's left (the PFLD formula's sign)
    pitch: float  # + : looking down
    roll: float  # + : clockwise on screen (the image-left eye higher)


class FaceDetector(Backend, Protocol):
    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """All faces with score ≥ a low floor (≤ 0.1), best first."""


class PoseEstimator(Backend, Protocol):
    def estimate(self, rgb: np.ndarray, box_xywh: tuple[int, int, int, int]) -> Pose | None:
        """Head pose of the face in the box, or None when no landmarks can be found."""


DETECTORS: Registry[FaceDetector] = Registry(
    "prep.detector",
    {
        "yunet": "benchmark.pipeline.prep.detectors:YuNet",
        "retinaface-caffe": "benchmark.pipeline.prep.detectors:RetinaFaceCaffe",
    },
    default="yunet",
    protocol=FaceDetector,
)
POSES: Registry[PoseEstimator] = Registry(
    "prep.pose",
    {
        "mediapipe-mesh": "benchmark.pipeline.prep.pose:MediaPipeMeshPose",
        "pfld": BackendPath("benchmark.pipeline.prep.pose:PfldPose", extra="pfld"),
    },
    default="mediapipe-mesh",
    protocol=PoseEstimator,
)


@dataclass(frozen=True)
class Selection:
    """The database and query frame drawn for one session (``selection.csv``)."""

    identity: str
    session: str
    database: str  # frame uid
    query: str  # frame uid (the same frame when a session has a single photo)
