"""Controls: the face region filled with no reconstruction at all.

A mask that re-identifies people may do so through its render or through what it leaves
visible: hair, ears, the face's outline, the background. A control replaces the same
region (the same cut, on the same crop) with something that carries no facial geometry,
and is scored in every scenario beside the mask. Its rank-1 is what the surroundings and
the silhouette of the region give on their own; only the mask's excess over it can be
credited to the render.

* ``blank`` — one flat grey: the original's albedo 0.65 (166/255), no shading, no shape.
* ``blur`` — a Gaussian blur of the photo, σ = 8 px on the 224-px crop (the face is
  about 100 px wide there: eyes and mouth dissolve, skin tone and outline stay).
* ``pixelate`` — the mean of each 16 × 16 px block of the photo (14 × 14 blocks per crop).
* ``blackout`` — black.

Every control writes the stage's three outputs and passes the same fail-closed guard as a
mask (an output that still equals the photo inside the region is refused).
"""

from __future__ import annotations

import numpy as np

from benchmark.assets import AssetStore
from benchmark.pipeline.mask.types import CONTROLS, Control

BLANK_GREY = 0.65  # the original renderer's albedo (REFERENCE.md), as a flat fill
BLUR_SIGMA_PX = 8.0
PIXEL_BLOCK_PX = 16


class _Control(Control):
    """What every control shares: no assets, a constructor like any backend's."""

    def __init__(self, store: AssetStore | None = None, device: str = "cpu") -> None:
        del store, device  # nothing to load


@CONTROLS.register("blank", default=True)
class BlankControl(_Control):
    def settings(self) -> dict:
        return {"grey": BLANK_GREY}

    def paint(self, crop: np.ndarray, region: np.ndarray) -> np.ndarray:
        return np.full(crop.shape, BLANK_GREY, np.float32)


@CONTROLS.register("blur")
class BlurControl(_Control):
    def settings(self) -> dict:
        return {"sigma_px": BLUR_SIGMA_PX}

    def paint(self, crop: np.ndarray, region: np.ndarray) -> np.ndarray:
        import cv2

        blurred = cv2.GaussianBlur(crop, (0, 0), BLUR_SIGMA_PX, borderType=cv2.BORDER_REFLECT)
        return blurred.astype(np.float32) / 255.0


@CONTROLS.register("pixelate")
class PixelateControl(_Control):
    def settings(self) -> dict:
        return {"block_px": PIXEL_BLOCK_PX}

    def paint(self, crop: np.ndarray, region: np.ndarray) -> np.ndarray:
        height, width = crop.shape[:2]
        block = PIXEL_BLOCK_PX
        out = np.empty(crop.shape, np.float32)
        for top in range(0, height, block):
            for left in range(0, width, block):
                tile = crop[top : top + block, left : left + block]
                out[top : top + block, left : left + block] = tile.reshape(-1, 3).mean(axis=0)
        return out / 255.0


@CONTROLS.register("blackout")
class BlackoutControl(_Control):
    def paint(self, crop: np.ndarray, region: np.ndarray) -> np.ndarray:
        return np.zeros(crop.shape, np.float32)
