"""An example dmbench anonymizer plug-in: the face oval posterized.

The protocol: a callable takes a read-only 224×224×3 uint8 RGB crop (dmbench's prep crop:
the face upright and centred) and returns the anonymized image, same shape and dtype,
and the boolean region it changed (or the image alone: the region is then dmbench's face
cut). To refuse a crop, raise ``benchmark.errors.MaskFailure(reason)``.

This one replaces an oval over the face with the mean of each 8 × 8 px block, rounded to
8 levels per channel: eyes, nose and mouth dissolve, skin tone and hair stay. It needs
nothing but numpy and does not import dmbench.
"""

import numpy as np

BLOCK_PX = 8
LEVELS = 8
# The oval of a dmbench prep crop (224 px): the face's centre and half-axes, in pixels.
CENTRE_X, CENTRE_Y, HALF_WIDTH, HALF_HEIGHT = 112.0, 118.0, 56.0, 72.0

version = "1"  # recorded with every result; change it when the output changes


def face_oval(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    scale = width / 224.0
    inside = ((cols + 0.5 - CENTRE_X * scale) / (HALF_WIDTH * scale)) ** 2 + (
        (rows + 0.5 - CENTRE_Y * scale) / (HALF_HEIGHT * scale)
    ) ** 2
    return inside <= 1.0


def posterize(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = crop.shape[:2]
    blocks = crop.astype(np.float32)
    out = crop.copy()
    step = 256 // LEVELS
    for top in range(0, height, BLOCK_PX):
        for left in range(0, width, BLOCK_PX):
            tile = blocks[top : top + BLOCK_PX, left : left + BLOCK_PX].reshape(-1, 3)
            level = np.floor(tile.mean(axis=0) / step) * step + step // 2
            out[top : top + BLOCK_PX, left : left + BLOCK_PX] = level.astype(np.uint8)
    region = face_oval(height, width)
    return np.where(region[..., None], out, crop), region
