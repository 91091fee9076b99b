"""Embedded default mask backends built on MediaPipe's face mesh.

* reconstruct ``mediapipe-mesh``: the 468 mesh points with MediaPipe's 898-triangle
  canonical topology (a manifest asset). A tracking mesh, not an identity model: it
  follows the face's outline and proportions, which is exactly what the study shows
  to leak identity.
* cut ``mediapipe-hull``: the convex hull of all 468 points, forehead included (the
  analogue of the original's dlib-81 hull).
"""

from __future__ import annotations

import numpy as np

from benchmark.assets import AssetStore
from benchmark.meshes import read_obj
from benchmark.pipeline.mask_types import (
    CUTS,
    RECONSTRUCTORS,
    FaceMesh,
    MaskFailure,
    hull_region,
)
from benchmark.pipeline.mediapipe_mesh import ASSETS as MEDIAPIPE_ASSETS
from benchmark.pipeline.mediapipe_mesh import MediaPipeFaceMesh


def _one_face(mesh: MediaPipeFaceMesh, crop: np.ndarray) -> np.ndarray:
    faces = mesh.faces(crop)
    if not faces:
        raise MaskFailure("no face found by the MediaPipe face mesh")
    if len(faces) > 1:
        raise MaskFailure(f"{len(faces)} faces found by the MediaPipe face mesh")
    return faces[0]


@RECONSTRUCTORS.register("mediapipe-mesh", default=True)
class MediaPipeMeshReconstructor:
    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU
    name = "mediapipe-mesh"
    assets = (*MEDIAPIPE_ASSETS, "mediapipe-canonical-mesh")

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        # max_faces=2 so that a second face is seen and the crop fails closed.
        self.mesh = MediaPipeFaceMesh(store, device, max_faces=2)
        self.triangles = read_obj(store.file("mediapipe-canonical-mesh")).triangles

    def reconstruct(self, crop: np.ndarray) -> FaceMesh:
        points = _one_face(self.mesh, crop)
        mesh = FaceMesh(points, self.triangles, landmarks=points[:, :2])
        mesh.validate(crop.shape[0])
        return mesh


@CUTS.register("mediapipe-hull", default=True)
class MediaPipeHullCut:
    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU
    name = "mediapipe-hull"
    assets = MEDIAPIPE_ASSETS

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        self.mesh = MediaPipeFaceMesh(store, device, max_faces=2)

    def region(self, crop: np.ndarray, mesh: FaceMesh) -> np.ndarray:
        """Hull of the face mesh found on the original crop (not of the reconstruction)."""
        return hull_region(_one_face(self.mesh, crop), crop.shape[:2])
