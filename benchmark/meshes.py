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


def read_ply(path: Path | str) -> Mesh:
    """Vertices and triangles of a binary little-endian PLY (the layout of FLAME_sample.ply).

    Only what FLAME's files use: one ``vertex`` element of float x, y, z first, then a
    ``face`` element of ``uchar`` counts and ``int`` indices, every face a triangle.
    """
    from benchmark.errors import DmbenchError

    data = Path(path).read_bytes()
    marker = b"end_header\n"
    if not data.startswith(b"ply\n") or marker not in data:
        raise DmbenchError(f"{path}: not a PLY file")
    end = data.index(marker) + len(marker)
    header = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise DmbenchError(f"{path}: only binary little-endian PLY is read")
    counts = {
        line.split()[1]: int(line.split()[2]) for line in header if line.startswith("element")
    }
    nv, nf = counts.get("vertex", 0), counts.get("face", 0)
    face_dtype = np.dtype([("n", "u1"), ("idx", "<i4", (3,))])
    if len(data) < end + nv * 12 + nf * face_dtype.itemsize:
        raise DmbenchError(f"{path}: truncated PLY ({nv} vertices, {nf} faces announced)")
    vertices = np.frombuffer(data, dtype="<f4", count=nv * 3, offset=end).reshape(nv, 3)
    faces = np.frombuffer(data, dtype=face_dtype, count=nf, offset=end + nv * 12)
    if not (faces["n"] == 3).all():
        raise DmbenchError(f"{path}: PLY faces that are not triangles")
    return Mesh(vertices.astype(np.float64), faces["idx"].astype(np.int64))
