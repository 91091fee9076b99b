"""Box and crop geometry of the prep stage, as the original computes it.

Shared by every detector and pose backend so that the only thing a backend changes
is the model, never the arithmetic. Conventions follow the original pipeline
(computationalprivacy/unmask, ``filter_images.py`` and ``ypr_helper_functions.py``):

* the detector's best box becomes
  ``(x, y, w, h) = (int(l), int(t), int(r - l + 1), int(b - t + 1))``;
* the pose step makes it square (side ``int(max(w, h))``, same centre) and clips it to
  the image, giving ``(x1, x2, y1, y2)``;
* the prep crop enlarges that clipped box by ``margin × half its size`` on every side,
  truncates to int, clips, and resizes to 224×224.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SquareBox:
    """A square around the face; ``clipped`` is the part inside the image."""

    x1: float
    y1: float
    size: int
    clipped: tuple[float, float, float, float]  # (x1, x2, y1, y2) as the original returns it
    width: int  # of the image
    height: int

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """Zero padding (top, bottom, left, right), truncated with int() as upstream."""
        return (
            int(max(0.0, -self.y1)),
            int(max(0.0, self.y1 + self.size - self.height)),
            int(max(0.0, -self.x1)),
            int(max(0.0, self.x1 + self.size - self.width)),
        )

    @property
    def needs_padding(self) -> bool:
        """Where the original crashed and dropped the frame: its square leaves the image by
        any amount, even under a pixel (it then called copyMakeBorder with float paddings)."""
        return (
            self.x1 < 0
            or self.y1 < 0
            or self.x1 + self.size > self.width
            or self.y1 + self.size > self.height
        )

    @property
    def region(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) in image pixels that the padded patch covers."""
        top, bottom, left, right = self.pads
        cx1, cx2, cy1, cy2 = (int(v) for v in self.clipped)
        return cx1 - left, cy1 - top, cx2 + right, cy2 + bottom


def detection_to_xywh(box_xyxy: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Pixel box → the original's integer (x, y, w, h) with its +1 on width and height."""
    left, top, right, bottom = box_xyxy
    return int(left), int(top), int(right - left + 1), int(bottom - top + 1)


def square_box(
    box_xywh: tuple[int, int, int, int], width: int, height: int, scale: float = 1.0
) -> SquareBox:
    """Square of side ``int(max(w, h) * scale)`` on the box centre, plus its clipped part."""
    x, y, w, h = box_xywh
    size = int(max(w, h) * scale)
    cx, cy = x + w / 2, y + h / 2
    x1, y1 = cx - size / 2, cy - size / 2
    x2, y2 = x1 + size, y1 + size
    clipped = (max(0.0, x1), min(float(width), x2), max(0.0, y1), min(float(height), y2))
    return SquareBox(x1=x1, y1=y1, size=size, clipped=clipped, width=width, height=height)


def square_patch(image: np.ndarray, square: SquareBox, out_size: int) -> np.ndarray:
    """The square region, zero padded where it leaves the image, resized to ``out_size``.

    Clipped edges and paddings are truncated with ``int()`` as in the original's
    ``get_ypr`` (so the region can be one pixel short of square before the resize).
    The original passed the paddings as floats to ``copyMakeBorder``, which raises,
    so it silently dropped every frame that needs padding; we pad (see
    ``SquareBox.needs_padding`` to reproduce the drop).
    """
    cx1, cx2, cy1, cy2 = (int(v) for v in square.clipped)
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(f"square {square} does not overlap the image")
    patch = image[cy1:cy2, cx1:cx2]
    top, bottom, left, right = square.pads
    if top or bottom or left or right:
        pad = ((top, bottom), (left, right)) + ((0, 0),) * (patch.ndim - 2)
        patch = np.pad(patch, pad)
    return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


def prep_crop_box(
    clipped: tuple[float, float, float, float], width: int, height: int, margin: float = 1.5
) -> tuple[int, int, int, int]:
    """Enlarge the clipped square by ``margin × half size`` per side; clip. (x1, y1, x2, y2)."""
    x1, x2, y1, y2 = clipped
    x_margin = margin * (x2 - x1) / 2
    y_margin = margin * (y2 - y1) / 2
    return (
        max(0, int(x1 - x_margin)),
        max(0, int(y1 - y_margin)),
        min(width, int(x2 + x_margin)),
        min(height, int(y2 + y_margin)),
    )


def crop_resize(
    image: np.ndarray, box_xyxy: tuple[int, int, int, int], size: int = 224
) -> np.ndarray:
    """Cut the box out and resize it to ``size × size`` (bilinear, as cv2.resize's default)."""
    x1, y1, x2, y2 = box_xyxy
    patch = image[y1:y2, x1:x2]
    if patch.size == 0:
        raise ValueError(f"empty crop box {box_xyxy}")
    return cv2.resize(patch, (size, size))
