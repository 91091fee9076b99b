"""Small mesh readers shared by the pose and mask stages (no third-party mesh library)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # V x 3 float64
    triangles: np.ndarray  # F x 3 int (0-based)


def read_obj(path: Path | str) -> Mesh:
    """Vertices and triangular faces of a Wavefront OBJ (``f a/b/c ...`` indices are 1-based)."""
    vertices, faces = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(v) for v in parts[1:4]])
        elif parts[0] == "f":
            idx = [int(p.split("/")[0]) - 1 for p in parts[1:]]
            for k in range(1, len(idx) - 1):  # fan-triangulate polygons
                faces.append([idx[0], idx[k], idx[k + 1]])
    return Mesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64))
