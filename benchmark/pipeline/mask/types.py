"""Types and protocols of the mask stage, shared by every mask backend.

The mask stage has three swappable roles:

* **reconstruct** — a 224×224 RGB crop → a ``FaceMesh`` in the crop's pixel frame;
* **render** — a ``FaceMesh`` → a shaded grey image and the pixels it covers;
* **cut** — the crop (and its mesh) → the boolean face region that the render replaces.

Coordinate convention of ``FaceMesh.vertices`` (one for all backends, so RingNet's
weak-perspective output, MediaPipe's landmarks and an eos fit all map to it):
``x`` = column in pixels (right), ``y`` = row in pixels (down), ``z`` = depth in the same
pixel units, **larger z is nearer the camera**. The camera is orthographic, looking
along −z. Triangles are listed counter-clockwise as seen by the camera *in a y-up
frame* (i.e. clockwise on screen, where y points down), so the outward normal of a
front-facing triangle has a positive z component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from benchmark.errors import MaskFailure
from benchmark.pipeline.backend import Backend
from benchmark.pipeline.registry import BackendPath, Registry


@dataclass(frozen=True)
class FaceMesh:
    vertices: np.ndarray  # V x 3 float64, crop pixel frame (see module docstring)
    triangles: np.ndarray  # F x 3 int64
    landmarks: np.ndarray | None = None  # K x 2 image points the reconstructor used, if any
    info: dict = field(default_factory=dict)  # backend facts worth recording (fit error, ...)

    def validate(self, size: int) -> None:
        """Raise MaskFailure for meshes no renderer should draw (degenerate or off-image)."""
        v, t = self.vertices, self.triangles
        if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
            raise MaskFailure(f"degenerate mesh: vertices of shape {v.shape}")
        if t.ndim != 2 or t.shape[1] != 3 or len(t) == 0:
            raise MaskFailure(f"degenerate mesh: triangles of shape {t.shape}")
        if not np.isfinite(v).all():
            raise MaskFailure("degenerate mesh: non-finite vertices")
        if t.min() < 0 or t.max() >= len(v):
            raise MaskFailure("degenerate mesh: triangle index out of range")
        extent = np.ptp(v[:, :2], axis=0)
        if extent.min() < 4.0:
            raise MaskFailure(f"degenerate mesh: projected extent {extent.round(2)} px")
        inside = ((v[:, 0] >= 0) & (v[:, 0] < size) & (v[:, 1] >= 0) & (v[:, 1] < size)).mean()
        if inside < 0.5:
            raise MaskFailure(f"mesh mostly outside the crop ({inside:.0%} of vertices inside)")


@dataclass(frozen=True)
class Rendering:
    image: np.ndarray  # H x W x 3 float32 in [0, 1], background white
    coverage: np.ndarray  # H x W bool: pixels covered by the mesh


class Reconstructor(Backend, Protocol):
    def reconstruct(self, crop: np.ndarray) -> FaceMesh:
        """Mesh of the one face in a 224×224 RGB uint8 crop; MaskFailure if none or several."""

    def reconstruct_batch(self, crops: list[np.ndarray]) -> list[FaceMesh | MaskFailure]:
        """Meshes of several crops, each crop's MaskFailure in its place. By default one
        crop at a time; a backend whose model takes batches (RingNet) overrides it. Any
        other exception is a crash, which the stage retries crop by crop and never caches."""
        out: list[FaceMesh | MaskFailure] = []
        for crop in crops:
            try:
                out.append(self.reconstruct(crop))
            except MaskFailure as exc:
                out.append(exc)
        return out


class Renderer(Backend, Protocol):
    def render(self, mesh: FaceMesh, size: int) -> Rendering:
        """Shaded grey render of ``mesh`` on white, ``size × size``, orthographic."""


class Control(Backend, Protocol):
    """A control: the same face region filled without any reconstruction.

    It answers "how much identity do the surroundings and the region's silhouette carry
    on their own?": scored like a mask, a control's rank-1 is the floor a mask must beat
    before its render can be said to leak identity.
    """

    cpu_only = True  # a fill needs no GPU

    def paint(self, crop: np.ndarray, region: np.ndarray) -> np.ndarray:
        """H×W×3 float32 image in [0, 1] whose pixels inside ``region`` replace the photo's."""


class FaceCut(Backend, Protocol):
    def region(self, crop: np.ndarray, mesh: FaceMesh) -> np.ndarray:
        """Boolean H×W face region of the crop; MaskFailure if it cannot be found."""


def hull_region(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the filled convex hull of 2-D pixel points (every hull cut's
    region); an empty hull is a MaskFailure."""
    import cv2

    hull = cv2.convexHull(np.round(np.asarray(points)[:, :2]).astype(np.int32))
    region = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(region, hull, 1)
    if not region.any():
        raise MaskFailure("empty face region")
    return region.astype(bool)


RECONSTRUCTORS: Registry[Reconstructor] = Registry(
    "mask.reconstruct",
    {
        "mediapipe-mesh": "benchmark.pipeline.mask.mediapipe_fit:MediaPipeMeshReconstructor",
        "sfm-eos": "benchmark.pipeline.mask.sfm_eos:SfmEosReconstructor",
        "ringnet": BackendPath(
            "benchmark.pipeline.mask.ringnet:RingNetReconstructor", extra="ringnet"
        ),
        "ringnet-onnx": "benchmark.pipeline.mask.ringnet:RingNetOnnxReconstructor",
    },
    default="mediapipe-mesh",
    protocol=Reconstructor,
)
RENDERERS: Registry[Renderer] = Registry(
    "mask.render",
    {
        "numpy": "benchmark.pipeline.mask.render:NumpyRenderer",
        "opendr": BackendPath("benchmark.pipeline.mask.render:OpenDRRenderer", extra="opendr"),
    },
    default="numpy",
    protocol=Renderer,
)
CUTS: Registry[FaceCut] = Registry(
    "mask.cut",
    {
        "mediapipe-forehead": "benchmark.pipeline.mask.mediapipe_fit:MediaPipeForeheadCut",
        "mediapipe-hull": "benchmark.pipeline.mask.mediapipe_fit:MediaPipeHullCut",
        "dlib81-hull": "benchmark.pipeline.mask.cut_dlib:Dlib81HullCut",
    },
    default="mediapipe-forehead",
    protocol=FaceCut,
)
CONTROLS: Registry[Control] = Registry(
    "mask.control",
    {
        "blank": "benchmark.pipeline.mask.controls:BlankControl",
        "blur": "benchmark.pipeline.mask.controls:BlurControl",
        "pixelate": "benchmark.pipeline.mask.controls:PixelateControl",
        "blackout": "benchmark.pipeline.mask.controls:BlackoutControl",
    },
    default="blank",
    protocol=Control,
)
