"""MediaPipe 0.10.21's bundled face mesh, shared by the prep pose and the mask stage.

Landmarks come back in image pixels: x right, y down, and z in the same pixel scale
with LARGER z NEARER the camera (MediaPipe's own z is negative towards the camera, so
it is negated here once for every user).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict

import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import check_device
from benchmark.errors import DeviceError
from benchmark.pipeline.backend import LoadsOnFirstUse

MESH_POINTS = 468
ASSETS = ("mediapipe-face-models",)
REMEMBERED = 4096  # images whose faces a process keeps (≈ 11 KB of points each)
_SEEN: OrderedDict[tuple, tuple[np.ndarray, ...]] = OrderedDict()  # every instance's


class MediaPipeFaceMesh(LoadsOnFirstUse):
    """A verified, CPU-only MediaPipe FaceMesh in static-image mode, imported and built on
    first use (MediaPipe's import, which pulls in TensorFlow where it is installed, takes
    seconds that a warm run need not spend).

    Static-image mode has no tracking state, so one image always gives the same faces:
    they are remembered per process (by the image's sha256 and the mesh's settings), and
    the mask stage's reconstructor and every cut over the same crop run the mesh once.
    """

    def __init__(
        self,
        store: AssetStore,
        device: str = "cpu",
        max_faces: int = 1,
        min_detection_confidence: float = 0.3,
    ) -> None:
        if check_device(device) == "cuda":
            raise DeviceError(
                "MediaPipe's Python wheel runs the face mesh on the CPU only; "
                "use --device cpu for MediaPipe backends"
            )
        store.directory("mediapipe-face-models")  # verifies the bundled weights' sha256
        self._settings = (max_faces, min_detection_confidence)

    models = ("_mesh",)

    def load_models(self) -> None:
        # MediaPipe's C++ and TFLite log lines would drown the progress bar.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import mediapipe as mp

        max_faces, min_detection_confidence = self._settings
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
        )

    def faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """One (468, 3) array per face found, in the pixel frame described above."""
        pixels = np.ascontiguousarray(rgb)
        key = (self._settings, pixels.shape, hashlib.sha256(pixels).digest())
        seen = _SEEN.get(key)
        if seen is None:
            seen = _SEEN[key] = tuple(self._run(pixels))
            if len(_SEEN) > REMEMBERED:
                _SEEN.popitem(last=False)
        else:
            _SEEN.move_to_end(key)
        return [points.copy() for points in seen]

    def _run(self, rgb: np.ndarray) -> list[np.ndarray]:
        height, width = rgb.shape[:2]
        found = self._mesh.process(np.ascontiguousarray(rgb))
        out = []
        for face in found.multi_face_landmarks or []:
            points = np.array([(p.x, p.y, p.z) for p in face.landmark[:MESH_POINTS]])
            out.append(points * np.array([width, height, -width]))
        return out
