"""Shared geometry of face regions (pure numpy, no model needed).

Two rules that add a forehead to a set of face landmarks, both a half ellipse over the
brows drawn in the face's own frame:

* ``forehead_points`` — the REFERENCE rule for the original's 81-point hull (dlib's 68
  iBUG points + 13 forehead points reaching the hairline). The real 81-point model is
  user-supplied and absent here, so this rule on dlib's 68 points stands in for its
  region when we measure how well another cut agrees with the original's
  (``benchmark.region_agreement``).
* ``mesh_forehead_points`` — the rule of the ``mediapipe-forehead`` cut: the same kind of
  arc, built only from MediaPipe face-mesh anchors, so that the mesh's hull (which stops
  at mid-forehead) reaches the hairline like the original's.

Frame: image pixels, x right, y down. "Up" is the face's own up: perpendicular to the
line between the two temple/ear anchors, pointing away from the chin — so the rules turn
with in-plane head roll and scale with the face.
"""

from __future__ import annotations

import numpy as np

from benchmark.pipeline.common.mediapipe_mesh import MESH_POINTS

FOREHEAD_POINTS = 13  # as the original's model: points 69-81 of dlib-81

# MediaPipe face-mesh anchors (indices into its 468 points). Each is the mesh point
# nearest, on average over ~2,000 kept LFW-dev crops, to the dlib-68 point that the
# reference rule uses (iBUG numbers, from 1): 127 ↔ 1 and 356 ↔ 17 (the face outline
# at the top of the ear, image-left and image-right), 168 ↔ 28 (nose bridge between the
# eyes), 4 ↔ 31 (nose tip); the brows' centre is the mean of MediaPipe's 20 eyebrow
# points (dlib's 10 brow points lie between their upper and lower rows; the two centres
# differ by < 2 % of the face width).
MESH_LEFT_TEMPLE = 127
MESH_RIGHT_TEMPLE = 356
MESH_NOSE_BRIDGE = 168
MESH_NOSE_TIP = 4
MESH_BROWS = (
    *(46, 52, 53, 55, 63, 65, 66, 70, 105, 107),  # image-left brow
    *(276, 282, 283, 285, 293, 295, 296, 300, 334, 336),  # image-right brow
)

# Constants of the mesh rule: the arc is FOREHEAD_WIDTH × half the temple-to-temple
# distance wide (each side) and FOREHEAD_HEIGHT × the nose length (bridge → tip) high.
# They are the reference rule's own constants, kept because measurement confirms them:
# over a grid of width 0.80-1.10 × height 1.00-1.60 (steps 0.05), the mean IoU with the
# reference hull on the 2,872 measured kept LFW-dev crops peaks at height 1.30 and width
# 0.95 or 1.00 (0.9362 vs 0.9363, a tie; the two halves of a split by identity pick one
# each); ±0.1 in height costs 0.004-0.007. The grid is re-run and stored by
# ``python -m benchmark.region_agreement`` (benchmark/specs/region_agreement.json).
# Calibrated on region agreement only, never on a recognition result.
FOREHEAD_WIDTH = 0.95
FOREHEAD_HEIGHT = 1.3


def forehead_arc(
    centre: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    height: float,
    width_factor: float,
    n: int = FOREHEAD_POINTS,
) -> np.ndarray:
    """``n × 2`` points of a half ellipse over ``centre``, from the left side to the right.

    Its axes are the face's own: "across" along ``left → right`` (semi-axis
    ``width_factor`` × half that distance) and "up" perpendicular to it, towards smaller
    y for an upright face (semi-axis ``height``). Both rules share it, so they differ
    only in their anchors.
    """
    across = np.asarray(right, np.float64) - np.asarray(left, np.float64)
    half_width = np.linalg.norm(across) / 2
    if not half_width > 0:
        raise ValueError("degenerate face: the two side anchors coincide")
    across = across / (2 * half_width)
    up = np.array([across[1], -across[0]])  # image y points down
    angle = np.linspace(np.pi, 0.0, n)
    return (
        np.asarray(centre, np.float64)
        + np.outer(np.cos(angle), across) * width_factor * half_width
        + np.outer(np.sin(angle), up) * height
    )


def forehead_points(p68: np.ndarray) -> np.ndarray:
    """13 synthetic forehead points: a half ellipse over the brows, temple to temple.

    The reference rule for the original's 81-point hull, used to measure agreement (and
    to label the test's stand-in 81-point predictor). Its width is the jaw's (points
    1-17), its height 1.3 nose lengths (28 → 31), tilted with the face. Only a stand-in
    for the real model's hand-labelled forehead points.
    """
    p68 = np.asarray(p68, np.float64)
    return forehead_arc(
        centre=p68[17:27].mean(axis=0),
        left=p68[0],
        right=p68[16],
        height=1.3 * np.linalg.norm(p68[27] - p68[30]),
        width_factor=0.95,
    )


def reference_81_like_hull(p68: np.ndarray) -> np.ndarray:
    """The 81 points whose convex hull is the reference region: dlib's 68 + the 13 of
    ``forehead_points`` (the original's point layout, forehead last)."""
    p68 = np.asarray(p68, np.float64)[:, :2]
    if p68.shape != (68, 2):
        raise ValueError(f"expected dlib's 68 (x, y) points, got shape {p68.shape}")
    return np.vstack([p68, forehead_points(p68)])


def _mesh_xy(mesh: np.ndarray) -> np.ndarray:
    points = np.asarray(mesh, np.float64)
    if points.ndim != 2 or points.shape[0] < MESH_POINTS or points.shape[1] not in (2, 3):
        raise ValueError(f"expected MediaPipe's 468 mesh points (x, y[, z]), got {points.shape}")
    return points[:MESH_POINTS, :2]


def mesh_forehead_points(
    mesh: np.ndarray,
    width_factor: float = FOREHEAD_WIDTH,
    height_factor: float = FOREHEAD_HEIGHT,
) -> np.ndarray:
    """13 forehead points up to the hairline, from the face mesh alone.

    A half ellipse centred on the brows (mean of the 20 eyebrow points), its width
    ``width_factor`` × the temple-to-temple half distance (127 ↔ 356) each side, its
    height ``height_factor`` × the nose length (bridge 168 → tip 4), tilted with the
    temple line. Only x, y are used: the region is cut in the image plane.
    """
    xy = _mesh_xy(mesh)
    return forehead_arc(
        centre=xy[list(MESH_BROWS)].mean(axis=0),
        left=xy[MESH_LEFT_TEMPLE],
        right=xy[MESH_RIGHT_TEMPLE],
        height=height_factor * np.linalg.norm(xy[MESH_NOSE_BRIDGE] - xy[MESH_NOSE_TIP]),
        width_factor=width_factor,
    )


def mesh_forehead_polygon(
    mesh: np.ndarray,
    width_factor: float = FOREHEAD_WIDTH,
    height_factor: float = FOREHEAD_HEIGHT,
) -> np.ndarray:
    """``481 × 2`` points whose convex hull is the ``mediapipe-forehead`` region: the 468
    mesh points and the 13 of ``mesh_forehead_points``."""
    xy = _mesh_xy(mesh)
    return np.vstack([xy, mesh_forehead_points(xy, width_factor, height_factor)])
