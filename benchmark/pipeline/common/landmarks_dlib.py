"""dlib face landmarks, shared by the dlib-based mask backends.

One class, used by the ``sfm-eos`` reconstructor (dlib's 68-point iBUG model) and by the
``dlib81-hull`` cut (the 81-point model of the original: iBUG 68 + 13 forehead points):
dlib's HOG frontal face detector (upsampled once, as the original) finds the face and a
``dlib.shape_predictor`` places the points.

Exactly one face must be found. The original's dlib cut failed open (it wrote the
unmasked photo when dlib found no face or several); here both cases raise
``MaskFailure`` so the stage records a failure and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.errors import AssetError, DmbenchError, MaskFailure
from benchmark.pipeline.backend import LoadsOnFirstUse


def as_uint8_image(image: np.ndarray) -> np.ndarray:
    """A C-contiguous H×W×3 (RGB) or H×W uint8 array, as dlib needs; ValueError otherwise."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"expected an H×W×3 RGB or H×W grey image, got shape {array.shape}")
    if min(array.shape[:2]) == 0:
        raise ValueError(f"empty image of shape {array.shape}")
    return np.ascontiguousarray(array)


class DlibLandmarker(LoadsOnFirstUse):
    """Landmarks of the one face in an image: dlib HOG detector + a shape predictor, both
    loaded on first use.

    ``n_points``, when given, is checked against the predictor file (a 68-point file
    placed where the 81-point one belongs is an asset error, not a silent change of
    the cut).
    """

    def __init__(
        self, predictor_path: Path | str, *, n_points: int | None = None, upsample: int = 1
    ) -> None:
        try:
            import dlib  # noqa: F401  (there now; its models load on first use)
        except ImportError as exc:
            raise DmbenchError(
                f"dlib landmarks need the dlib package ({exc}): "
                "pip install 'dlib-bin==20.0.1.post1'"
            ) from exc

        self.predictor_path = Path(predictor_path)
        self.upsample = upsample
        self._expected_points = n_points

    models = ("_predictor", "_detector", "n_points")

    def load_models(self) -> None:
        import dlib

        try:
            self._predictor = dlib.shape_predictor(str(self.predictor_path))
        except RuntimeError as exc:
            raise AssetError(
                f"{self.predictor_path}: not a readable dlib shape predictor ({exc})"
            ) from exc
        self._detector = dlib.get_frontal_face_detector()
        # shape_predictor does not expose its part count: run it once on a dummy box.
        probe = self._predictor(np.zeros((16, 16), np.uint8), dlib.rectangle(0, 0, 15, 15))
        self.n_points = int(probe.num_parts)
        if self._expected_points is not None and self.n_points != self._expected_points:
            raise AssetError(
                f"{self.predictor_path}: a {self.n_points}-point shape predictor, "
                f"expected {self._expected_points} points"
            )

    def faces(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Every face box dlib's HOG detector finds, as (left, top, right, bottom)."""
        rects = self._detector(as_uint8_image(image), self.upsample)
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]

    def landmarks_in(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """``n_points × 2`` positions of the face in ``box`` (left, top, right, bottom): the
        predictor alone, with no detection (it always answers)."""
        import dlib

        left, top, right, bottom = (round(v) for v in box)
        shape = self._predictor(as_uint8_image(image), dlib.rectangle(left, top, right, bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def landmarks(self, image: np.ndarray) -> np.ndarray:
        """``n_points × 2`` float64 (x, y) pixel positions of the ONE face in the image.

        Raises MaskFailure when dlib finds no face or more than one.
        """
        image = as_uint8_image(image)
        rects = self._detector(image, self.upsample)
        if len(rects) == 0:
            raise MaskFailure("no face found by dlib")
        if len(rects) > 1:
            raise MaskFailure(f"{len(rects)} faces found by dlib")
        shape = self._predictor(image, rects[0])
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
