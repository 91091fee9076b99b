"""``sfm-eos`` reconstructor: the Surrey Face Model fitted by eos to dlib's 68 landmarks.

An identity-aware 3D morphable model in place of RingNet (whose checkpoint needs a
registration): dlib's iBUG-68 landmarks on the crop → ``eos.fitting.fit_shape_and_pose``
(pose, 63 identity shape coefficients, 6 expression blendshapes, jaw contour refit) with
the shape-only Surrey Face Model (3,448 vertices, 6,736 triangles) → the fitted mesh in
the crop's pixel frame.

eos-py 1.5.0 API used (checked against the installed wheel):

* ``eos.morphablemodel.load_model(path)`` loads the shape-only model;
  ``load_blendshapes(path)`` its expression blendshapes, combined with
  ``MorphableModel(shape_model, blendshapes, color_model=PcaModel())``;
* ``eos.core.LandmarkMapper(ibug_to_sfm.txt)`` (``get_mappings()``: ibug id → vertex id,
  both strings, ibug ids 1-based), ``eos.core.Landmark(name, float32 (2,) point)``;
* ``eos.morphablemodel.load_edge_topology(json)``, ``eos.fitting.ContourLandmarks.load
  (ibug_to_sfm.txt)``, ``eos.fitting.ModelContour.load(sfm_model_contours.json)``;
* ``eos.fitting.fit_shape_and_pose(model, landmarks, mapper, width, height, edge_topology,
  contour_landmarks, model_contour, num_iterations=5, ...)`` returns ``(mesh,
  rendering_parameters, shape_coefficients, blendshape_coefficients)``; ``mesh.vertices``
  are the fitted shape in model space (y up, the face looking along +z);
* ``RenderingParameters.get_modelview()`` (rotation + translation, no scale) and
  ``get_projection()`` (an OpenGL orthographic frustum, ``z_ndc = -z_eye``); eos maps NDC
  to pixels with a y flip (``eos.fitting.get_3x4_affine_camera_matrix`` drops z, so the
  projection below is done here, with the same x/y result).

Depth: eye space looks along −z, so ``z_eye`` grows towards the camera; scaled by the
frustum's pixels per model unit it is the convention's ``z`` (larger is nearer).
The SFM triangle list is counter-clockwise seen from the front in the model's y-up
frame, which is the convention of ``mask_types``; the constructor checks this on the
mean shape and reverses the winding if a model file ever disagrees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import check_device
from benchmark.errors import DeviceError, DmbenchError
from benchmark.pipeline.backend import LoadsOnFirstUse
from benchmark.pipeline.common.landmarks_dlib import DlibLandmarker, as_uint8_image
from benchmark.pipeline.mask.types import (
    RECONSTRUCTORS,
    FaceMesh,
    MaskFailure,
    Reconstructor,
)

SFM_SHAPE = "sfm_shape_3448.bin"
SFM_BLENDSHAPES = "expression_blendshapes_3448.bin"
SFM_LANDMARK_MAP = "ibug_to_sfm.txt"
SFM_EDGE_TOPOLOGY = "sfm_3448_edge_topology.json"
SFM_CONTOURS = "sfm_model_contours.json"
DLIB_68 = "models/shape_predictor_68_face_landmarks.dat"


def front_facing_winding(model_vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Triangles reordered, if needed, to be counter-clockwise seen from +z in a y-up frame.

    Decided once for the whole list from the summed normals of a frontal shape (the
    model's mean face looks along +z).
    """
    a, b, c = (model_vertices[triangles[:, k]] for k in range(3))
    normal_z = np.cross(b - a, c - a)[:, 2].sum()
    return triangles if normal_z > 0 else triangles[:, [0, 2, 1]]


def project_to_crop(
    model_vertices: np.ndarray, rendering_parameters: Any, width: int, height: int
) -> np.ndarray:
    """Model-space vertices → the crop frame of ``mask_types`` (x right, y down, z nearer)."""
    modelview = np.asarray(rendering_parameters.get_modelview(), dtype=np.float64)
    projection = np.asarray(rendering_parameters.get_projection(), dtype=np.float64)
    homogeneous = np.c_[model_vertices, np.ones(len(model_vertices))]
    eye = homogeneous @ modelview.T  # OpenGL eye space: camera at origin looking along -z
    ndc = eye @ projection.T  # orthographic: w stays 1
    px_per_unit = projection[0, 0] * width / 2.0
    return np.column_stack(
        [
            (ndc[:, 0] + 1.0) * width / 2.0,
            (1.0 - ndc[:, 1]) * height / 2.0,
            eye[:, 2] * px_per_unit,
        ]
    )


@dataclass(frozen=True)
class SfmFit:
    """Everything one fit produced (``reconstruct`` keeps the ``FaceMesh`` part)."""

    mesh: FaceMesh
    model_vertices: np.ndarray  # V x 3 fitted shape in model space (y up, +z towards viewer)
    rendering_parameters: Any  # eos.fitting.RenderingParameters
    seconds_landmarks: float
    seconds_fit: float


@RECONSTRUCTORS.register("sfm-eos")
class SfmEosReconstructor(LoadsOnFirstUse, Reconstructor):
    """Surrey Face Model (shape + expressions) fitted by eos to dlib's 68 landmarks. CPU only."""

    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU

    assets = ("sfm", "dlib-face-recognition-models")

    def __init__(
        self,
        store: AssetStore,
        device: str = "cpu",
        landmarks: str = "dlib",
        iterations: int = 5,
    ) -> None:
        if check_device(device) != "cpu":
            raise DeviceError(
                "the sfm-eos reconstructor runs on the CPU only (dlib's HOG detector and "
                "eos have no GPU path); use --device cpu"
            )
        if landmarks != "dlib":
            raise DmbenchError(
                f"sfm-eos: unknown landmark source '{landmarks}'; the only one is 'dlib'"
            )
        try:
            import eos
        except ImportError as exc:
            raise DmbenchError(
                f"the sfm-eos reconstructor needs eos-py ({exc}): pip install 'eos-py==1.5.0'"
            ) from exc

        self._eos = eos
        self.iterations = int(iterations)
        self._sfm = {
            rel: str(store.file("sfm", rel))
            for rel in (
                SFM_SHAPE,
                SFM_BLENDSHAPES,
                SFM_LANDMARK_MAP,
                SFM_EDGE_TOPOLOGY,
                SFM_CONTOURS,
            )
        }
        self._landmarker = DlibLandmarker(
            store.file("dlib-face-recognition-models", DLIB_68), n_points=68
        )

    models = (
        "_model",
        "_mapper",
        "_edge_topology",
        "_contour_landmarks",
        "_model_contour",
        "mean_shape",
        "triangles",
        "landmark_vertices",
    )

    def load_models(self) -> None:
        eos, sfm = self._eos, self._sfm
        shape_only = eos.morphablemodel.load_model(sfm[SFM_SHAPE])
        shape_model = shape_only.get_shape_model()
        self._model = eos.morphablemodel.MorphableModel(
            shape_model,
            eos.morphablemodel.load_blendshapes(sfm[SFM_BLENDSHAPES]),
            color_model=eos.morphablemodel.PcaModel(),
        )
        self._mapper = eos.core.LandmarkMapper(sfm[SFM_LANDMARK_MAP])
        self._edge_topology = eos.morphablemodel.load_edge_topology(sfm[SFM_EDGE_TOPOLOGY])
        self._contour_landmarks = eos.fitting.ContourLandmarks.load(sfm[SFM_LANDMARK_MAP])
        self._model_contour = eos.fitting.ModelContour.load(sfm[SFM_CONTOURS])
        self.mean_shape = np.asarray(shape_model.get_mean(), dtype=np.float64).reshape(-1, 3)
        self.triangles = front_facing_winding(
            self.mean_shape, np.asarray(shape_model.get_triangle_list(), dtype=np.int64)
        )
        self.triangles.setflags(write=False)  # shared by every mesh this backend returns
        # Fixed iBUG-68 → SFM vertex correspondences (0-based landmark index → vertex);
        # the jaw contour (iBUG 1-8, 10-17) is matched dynamically by the fit.
        self.landmark_vertices = {
            int(ibug) - 1: int(vertex) for ibug, vertex in self._mapper.get_mappings().items()
        }

    def fit(self, crop: np.ndarray) -> SfmFit:
        """Landmarks + eos fit of the one face in ``crop``; MaskFailure if none or several."""
        crop = as_uint8_image(crop)
        if crop.ndim != 3:
            raise ValueError(f"expected an H×W×3 RGB crop, got shape {crop.shape}")
        height, width = crop.shape[:2]
        if height != width:
            raise ValueError(f"expected a square crop, got {width}×{height}")
        eos = self._eos
        start = time.perf_counter()
        points = self._landmarker.landmarks(crop)
        found = time.perf_counter()
        landmarks = [
            eos.core.Landmark(str(i + 1), point.astype(np.float32))
            for i, point in enumerate(points)
        ]
        try:
            eos_mesh, params, shape_coefficients, expression_coefficients = (
                eos.fitting.fit_shape_and_pose(
                    self._model,
                    landmarks,
                    self._mapper,
                    width,
                    height,
                    self._edge_topology,
                    self._contour_landmarks,
                    self._model_contour,
                    num_iterations=self.iterations,
                )
            )
        except (RuntimeError, ValueError) as exc:  # degenerate landmarks: fail closed
            raise MaskFailure(f"eos fit failed: {exc}") from exc
        fitted = time.perf_counter()
        model_vertices = np.asarray(eos_mesh.vertices, dtype=np.float64)
        vertices = project_to_crop(model_vertices, params, width, height)
        index = np.array(sorted(self.landmark_vertices))
        residual = vertices[[self.landmark_vertices[i] for i in index], :2] - points[index]
        projection = np.asarray(params.get_projection(), dtype=np.float64)
        px_per_mm = projection[0, 0] * width / 2.0  # SFM vertices are in millimetres
        mesh = FaceMesh(
            vertices=vertices,
            triangles=self.triangles,
            landmarks=points,
            info={
                "landmarks": "dlib-68",
                "shape_coefficients": [float(c) for c in shape_coefficients],
                "expression_coefficients": [float(c) for c in expression_coefficients],
                "yaw_pitch_roll_deg": [float(a) for a in params.get_yaw_pitch_roll()],
                "px_per_model_unit": float(px_per_mm),
                # For the renderer's lights: the original's camera (f = 50000 px at 224 px)
                # at the distance that gives this scale, in metres (as RingNet's tz).
                "camera_distance": float(50000.0 * width / 224.0 / (1000.0 * px_per_mm)),
                "landmark_error_px": float(np.linalg.norm(residual, axis=1).mean()),
                "iterations": self.iterations,
            },
        )
        mesh.validate(width)
        return SfmFit(mesh, model_vertices, params, found - start, fitted - found)

    def reconstruct(self, crop: np.ndarray) -> FaceMesh:
        """The fitted SFM mesh of the one face in a square RGB uint8 crop (e.g. 224×224)."""
        return self.fit(crop).mesh
