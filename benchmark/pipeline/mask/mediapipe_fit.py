"""Embedded default mask backends built on MediaPipe's face mesh.

* reconstruct ``mediapipe-mesh``: the 468 mesh points with MediaPipe's 898-triangle
  canonical topology (a manifest asset). A tracking mesh, not an identity model: it
  follows the face's outline and proportions, which is exactly what the study shows
  to leak identity.
* cut ``mediapipe-hull``: the convex hull of all 468 points. The mesh stops at
  mid-forehead, so this region is lower than the original's dlib-81 hull (which reaches
  the hairline).
* cut ``mediapipe-forehead``: the same hull extended up the forehead to the hairline by
  the mesh-only rule of ``face_region.mesh_forehead_points`` — the analogue of the
  original's dlib-81 hull (agreement with its reference rule:
  ``benchmark/specs/region_agreement.json``).

Both cuts look for the face on the ORIGINAL crop (not on the reconstruction) and fail
closed: no face or two faces is a ``MaskFailure``.
"""

from __future__ import annotations

import numpy as np

from benchmark.assets import AssetStore
from benchmark.meshes import read_obj
from benchmark.pipeline.common.mediapipe_mesh import ASSETS as MEDIAPIPE_ASSETS
from benchmark.pipeline.common.mediapipe_mesh import MediaPipeFaceMesh
from benchmark.pipeline.mask import face_region
from benchmark.pipeline.mask.face_region import mesh_forehead_polygon
from benchmark.pipeline.mask.types import (
    CUTS,
    RECONSTRUCTORS,
    FaceCut,
    FaceMesh,
    MaskFailure,
    Reconstructor,
    hull_region,
)


def _one_face(mesh: MediaPipeFaceMesh, crop: np.ndarray) -> np.ndarray:
    faces = mesh.faces(crop)
    if not faces:
        raise MaskFailure("no face found by the MediaPipe face mesh")
    if len(faces) > 1:
        raise MaskFailure(f"{len(faces)} faces found by the MediaPipe face mesh")
    return faces[0]


@RECONSTRUCTORS.register("mediapipe-mesh", default=True)
class MediaPipeMeshReconstructor(Reconstructor):
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


class _MeshHullCut(FaceCut):
    """A cut that is the convex hull of points derived from the one face mesh on the crop.

    Shared by the MediaPipe cuts so that finding "the one face" (and failing closed)
    is written once; a subclass only says which points span the region.
    """

    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU
    assets = MEDIAPIPE_ASSETS

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        # max_faces=2 so that a second face is seen and the crop fails closed.
        self.mesh = MediaPipeFaceMesh(store, device, max_faces=2)

    def hull_points(self, mesh_points: np.ndarray) -> np.ndarray:
        """The 2-D points whose convex hull is the region, from the 468 × 3 mesh points."""
        raise NotImplementedError

    def points(self, crop: np.ndarray) -> np.ndarray:
        """The hull's points for the one face on ``crop``; MaskFailure if none or several."""
        return self.hull_points(_one_face(self.mesh, crop))

    def region(self, crop: np.ndarray, mesh: FaceMesh | None = None) -> np.ndarray:
        """Hull of the face mesh found on the original crop (not of the reconstruction)."""
        return hull_region(self.points(crop), crop.shape[:2])


@CUTS.register("mediapipe-hull")
class MediaPipeHullCut(_MeshHullCut):
    """Convex hull of the 468 mesh points (stops at mid-forehead)."""

    name = "mediapipe-hull"

    def hull_points(self, mesh_points: np.ndarray) -> np.ndarray:
        return mesh_points[:, :2]


@CUTS.register("mediapipe-forehead", default=True)
class MediaPipeForeheadCut(_MeshHullCut):
    """Convex hull of the 468 mesh points + a forehead arc to the hairline (the analogue of
    the original's dlib-81 hull; rule and constants in ``face_region``)."""

    name = "mediapipe-forehead"

    def settings(self) -> dict:
        """The rule's constants (they key the mask cache: a new rule is a new region)."""
        return {
            "width": face_region.FOREHEAD_WIDTH,
            "height": face_region.FOREHEAD_HEIGHT,
            "points": face_region.FOREHEAD_POINTS,
        }

    def hull_points(self, mesh_points: np.ndarray) -> np.ndarray:
        return mesh_forehead_polygon(mesh_points)
