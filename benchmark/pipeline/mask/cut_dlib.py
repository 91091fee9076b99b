"""``dlib81-hull`` cut: the original's face region, the convex hull of dlib's 81 landmarks.

The original mask stage ran dlib's 81-point shape predictor (iBUG 68 + 13 forehead
points, codeniko/shape_predictor_81_face_landmarks) on the ORIGINAL crop and replaced
the pixels inside the convex hull of those points with the render. The mesh plays no
part in the region. Unlike the original, no face or several faces is a ``MaskFailure``
(fail closed), never the unmasked photo.

The model file is user-supplied (asset ``dlib-81``); without it the constructor raises
the store's ``AssetError``, whose message says how to obtain it.
"""

from __future__ import annotations

import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import check_device
from benchmark.errors import DeviceError
from benchmark.pipeline.common.landmarks_dlib import DlibLandmarker
from benchmark.pipeline.mask.types import CUTS, FaceCut, FaceMesh, hull_region

DLIB_81 = "shape_predictor_81_face_landmarks.dat"


@CUTS.register("dlib81-hull")
class Dlib81HullCut(FaceCut):
    """Convex hull of dlib's 81 face landmarks (68 + forehead) found on the crop. CPU only."""

    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU

    assets = ("dlib-81",)

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        if check_device(device) != "cpu":
            raise DeviceError("the dlib81-hull cut runs on the CPU only; use --device cpu")
        self._landmarker = DlibLandmarker(store.file("dlib-81", DLIB_81), n_points=81)

    def landmarks(self, crop: np.ndarray) -> np.ndarray:
        """The 81 (x, y) points of the one face; MaskFailure if none or several."""
        return self._landmarker.landmarks(crop)

    def region(self, crop: np.ndarray, mesh: FaceMesh | None = None) -> np.ndarray:
        """Boolean H×W region: the convex hull of the 81 landmarks (the mesh is not used)."""
        return hull_region(self.landmarks(crop), crop.shape[:2])
