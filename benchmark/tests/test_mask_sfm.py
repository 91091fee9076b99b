"""The ``sfm-eos`` reconstructor (Surrey Face Model fitted by eos to dlib's 68 landmarks)
on real LFW crops: fit quality, the coordinate and winding convention of ``mask_types``,
and failing closed on crops without exactly one face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmark.errors import AssetError, DeviceError, DmbenchError
from benchmark.pipeline.mask.types import RECONSTRUCTORS, FaceMesh, MaskFailure

pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
eos = pytest.importorskip("eos", reason="eos-py is not installed (pip install eos-py==1.5.0)")

from benchmark.pipeline.mask.sfm_eos import (  # noqa: E402
    SfmEosReconstructor,
    SfmFit,
    front_facing_winding,
)

N_CROPS = 6
SIZE = 224
IBUG_NOSE_TIP = 30  # 0-based iBUG index (point 31)
IBUG_EYE_OUTER = (36, 45)  # right, left eye outer corners (points 37, 46)
IBUG_MOUTH_CORNER = (48, 54)  # right, left mouth corners (points 49, 55)


@pytest.fixture(scope="module")
def reconstructor(store) -> SfmEosReconstructor:
    try:
        return SfmEosReconstructor(store)
    except AssetError as exc:
        pytest.skip(f"sfm-eos assets are not available: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def crops(kept_crops) -> list[np.ndarray]:
    """Real 224×224 prep crops of lfw20 (frames the default prep keeps)."""
    if len(kept_crops) < N_CROPS:
        pytest.skip(f"only {len(kept_crops)} kept crops in lfw20")
    return kept_crops[:N_CROPS]


@pytest.fixture(scope="module")
def fits(reconstructor, crops) -> list[SfmFit]:
    return [reconstructor.fit(crop) for crop in crops]


def _y_up_normals(mesh: FaceMesh) -> np.ndarray:
    """Triangle normals in the y-up frame (x, -y, z) where the convention states winding."""
    v = mesh.vertices * np.array([1.0, -1.0, 1.0])
    a, b, c = (v[mesh.triangles[:, k]] for k in range(3))
    return np.cross(b - a, c - a)


def _visible_triangles(mesh: FaceMesh, size: int = SIZE) -> np.ndarray:
    """Indices of triangles seen by the camera, by painter's algorithm (far → near by z).

    Independent of winding: a triangle is front-facing here because nothing nearer
    covers it, not because of the sign of its normal.
    """
    ids = np.zeros((size, size), np.int32)
    centre_z = mesh.vertices[mesh.triangles, 2].mean(axis=1)
    for t in np.argsort(centre_z):  # farthest first, nearer ones overwrite
        polygon = np.round(mesh.vertices[mesh.triangles[t], :2]).astype(np.int32)
        cv2.fillConvexPoly(ids, polygon, int(t) + 1)
    return np.unique(ids[ids > 0]) - 1


def _cheek_vertices(reconstructor: SfmEosReconstructor) -> list[int]:
    """SFM vertices on the cheeks: nearest (in x, y of the mean shape) to the midpoint of
    each eye's outer corner and the mouth corner on the same side (iBUG → SFM map)."""
    mean, lv = reconstructor.mean_shape, reconstructor.landmark_vertices
    cheeks = []
    for eye, mouth in zip(IBUG_EYE_OUTER, IBUG_MOUTH_CORNER, strict=True):
        target = (mean[lv[eye], :2] + mean[lv[mouth], :2]) / 2
        cheeks.append(int(np.argmin(np.linalg.norm(mean[:, :2] - target, axis=1))))
    return cheeks


def test_registered_and_assets_in_manifest(store) -> None:
    assert RECONSTRUCTORS.cls("sfm-eos") is SfmEosReconstructor
    for name in SfmEosReconstructor.assets:
        assert store[name].name == name


def test_cuda_and_unknown_landmarks_are_refused(store) -> None:
    with pytest.raises(DeviceError, match="CPU only"):
        SfmEosReconstructor(store, device="cuda")
    with pytest.raises(DmbenchError, match="landmark source"):
        SfmEosReconstructor(store, landmarks="mediapipe")


def test_fit_succeeds_on_real_crops(reconstructor, crops, fits) -> None:
    for crop, fit in zip(crops, fits, strict=True):
        mesh = fit.mesh
        assert mesh.vertices.shape == (3448, 3) and mesh.vertices.dtype == np.float64
        assert mesh.triangles.shape == (6736, 3) and mesh.triangles.dtype == np.int64
        assert mesh.triangles.min() == 0 and mesh.triangles.max() == 3447
        mesh.validate(SIZE)
        xy = mesh.vertices[:, :2]
        inside = ((xy >= 0) & (xy < SIZE)).all(axis=1).mean()
        assert inside > 0.95, f"only {inside:.0%} of the vertices inside the crop"
        # The face fills a plausible part of the prep crop (its box is about 0.4 of the side).
        width = np.ptp(xy[:, 0])
        assert 0.25 * SIZE < width < 0.8 * SIZE
        coefficients = mesh.info["shape_coefficients"]
        assert len(coefficients) == 63 and all(isinstance(c, float) for c in coefficients)
        assert np.isfinite(coefficients).all() and np.abs(coefficients).max() > 0
        assert len(mesh.info["expression_coefficients"]) == 6
        # SFM is in mm: ≈ 0.56 px/mm here, i.e. a camera ≈ 90 m away at f = 50000 px, the
        # original renderer's geometry for a face of this size.
        assert 40 < mesh.info["camera_distance"] < 200
        # FaceMesh.landmarks are dlib's 68 points on this very crop.
        np.testing.assert_array_equal(mesh.landmarks, reconstructor._landmarker.landmarks(crop))
        assert fit.seconds_landmarks > 0 and fit.seconds_fit > 0
    # Different people get different identity coefficients.
    first, second = (np.array(f.mesh.info["shape_coefficients"]) for f in fits[:2])
    assert np.linalg.norm(first - second) > 0.1


def test_reconstruct_returns_the_fitted_mesh(reconstructor, crops, fits) -> None:
    mesh = reconstructor.reconstruct(crops[0])
    np.testing.assert_allclose(mesh.vertices, fits[0].mesh.vertices)  # deterministic
    np.testing.assert_array_equal(mesh.triangles, fits[0].mesh.triangles)


def test_projection_matches_eos_camera_and_is_rigid(fits) -> None:
    """x, y equal eos's own model → screen camera; z is in the same pixel units."""
    for fit in fits:
        camera = np.asarray(
            eos.fitting.get_3x4_affine_camera_matrix(fit.rendering_parameters, SIZE, SIZE),
            dtype=np.float64,
        )
        model = np.c_[fit.model_vertices, np.ones(len(fit.model_vertices))]
        np.testing.assert_allclose(fit.mesh.vertices[:, :2], (model @ camera.T)[:, :2], atol=1e-3)
        # y-up crop frame = scale · proper rotation · model + translation.
        y_up = fit.mesh.vertices * np.array([1.0, -1.0, 1.0])
        linear, *_ = np.linalg.lstsq(model, y_up, rcond=None)
        residual = model @ linear - y_up
        assert np.abs(residual).max() < 1e-3
        scale = fit.mesh.info["px_per_model_unit"]
        rotation = linear[:3].T / scale
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-4)
        assert np.linalg.det(rotation) > 0


def test_model_landmarks_land_on_dlib_landmarks(reconstructor, fits) -> None:
    """Projected SFM landmark vertices vs dlib's points (the 50 fixed iBUG ↔ SFM pairs;
    the jaw contour is matched dynamically by eos and is left out).

    Measured on the 6 crops: about 1.9 px mean (≈ 4 % of the outer-eye-corner distance,
    about 48 px in these crops). A 63-component PCA shape regularised by eos (λ = 30)
    cannot follow every landmark exactly, and dlib's own points jitter by 1-2 px at this
    scale, so the bound is 3.5 px per crop and a normalised error (mean / outer
    interocular distance) under 8 % — a wrong pose, scale or y flip gives tens of pixels.
    """
    errors, normalised = [], []
    index = np.array(sorted(reconstructor.landmark_vertices))
    vertex = np.array([reconstructor.landmark_vertices[i] for i in index])
    assert len(index) == 50  # 68 minus the 16 contour points and inner-lip 61, 65
    for fit in fits:
        mesh = fit.mesh
        error = np.linalg.norm(mesh.vertices[vertex, :2] - mesh.landmarks[index], axis=1).mean()
        interocular = np.linalg.norm(np.subtract(*mesh.landmarks[list(IBUG_EYE_OUTER)]))
        errors.append(error)
        normalised.append(error / interocular)
        assert mesh.info["landmark_error_px"] == pytest.approx(error)
    print(
        f"sfm-eos landmark fit error: mean {np.mean(errors):.2f} px, worst crop "
        f"{np.max(errors):.2f} px, NME {np.mean(normalised):.1%}"
    )
    assert max(errors) < 3.5
    assert max(normalised) < 0.08


def test_depth_nose_tip_is_nearer_than_cheeks(reconstructor, fits) -> None:
    nose = reconstructor.landmark_vertices[IBUG_NOSE_TIP]
    assert nose == 114  # ibug_to_sfm.txt: 31 = 114 (nose tip)
    cheeks = _cheek_vertices(reconstructor)
    for fit in fits:
        z = fit.mesh.vertices[:, 2]
        for cheek in cheeks:
            assert z[nose] > z[cheek] + 3.0, (z[nose], z[cheek])
        # The nose tip is among the nearest tenth of the face (96 %+ measured, yaw up to 20°).
        assert z[nose] >= np.quantile(z, 0.9)


def test_winding_front_facing_normals_point_at_camera(fits) -> None:
    """Visible triangles (found without using the winding) have normals with positive z in
    the y-up frame — i.e. they are clockwise on screen, as mask_types.py says."""
    for fit in fits:
        yaw = fit.mesh.info["yaw_pitch_roll_deg"][0]
        assert abs(yaw) < 25, "the prep keeps near-frontal faces"
        visible = _visible_triangles(fit.mesh)
        assert len(visible) > 0.3 * len(fit.mesh.triangles)
        normals = _y_up_normals(fit.mesh)[visible]
        unit = normals / np.linalg.norm(normals, axis=1, keepdims=True)
        assert unit.mean(axis=0)[2] > 0.5
        assert (normals[:, 2] > 0).mean() > 0.95
        v = fit.mesh.vertices
        a, b, c = (v[fit.mesh.triangles[visible, k], :2] for k in range(3))
        screen_cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
        assert (screen_cross < 0).mean() > 0.95  # clockwise on screen (y down)


def test_winding_is_repaired_for_a_reversed_triangle_list(reconstructor) -> None:
    mean, triangles = reconstructor.mean_shape, np.asarray(reconstructor.triangles)
    assert front_facing_winding(mean, triangles) is triangles  # SFM's own order is kept
    repaired = front_facing_winding(mean, triangles[:, ::-1])
    a, b, c = (mean[repaired[:, k]] for k in range(3))
    assert np.cross(b - a, c - a)[:, 2].sum() > 0


def _grey() -> np.ndarray:
    return np.full((SIZE, SIZE, 3), 128, np.uint8)


def _small_face(crop: np.ndarray) -> np.ndarray:
    """The crop shrunk to 40 px (its face ≈ 16 px wide) pasted on grey."""
    canvas = _grey()
    canvas[92:132, 92:132] = cv2.resize(crop, (40, 40), interpolation=cv2.INTER_AREA)
    return canvas


def _two_faces(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The central halves of two crops side by side: two full-size faces in one crop."""
    quarter = SIZE // 4
    return np.ascontiguousarray(np.concatenate([a[:, quarter:-quarter], b[:, quarter:-quarter]], 1))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("grey", "no face found by dlib"),
        ("white", "no face found by dlib"),
        ("black", "no face found by dlib"),
        ("noise", "no face found by dlib"),
        ("small", "no face found by dlib"),
        ("two", "2 faces found by dlib"),
    ],
)
def test_fails_closed_without_exactly_one_face(reconstructor, crops, case, reason) -> None:
    images = {
        "grey": _grey,
        "white": lambda: np.full((SIZE, SIZE, 3), 255, np.uint8),
        "black": lambda: np.zeros((SIZE, SIZE, 3), np.uint8),
        "noise": lambda: np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8),
        "small": lambda: _small_face(crops[0]),
        "two": lambda: _two_faces(crops[0], crops[1]),
    }
    with pytest.raises(MaskFailure) as info:
        reconstructor.reconstruct(images[case]())
    assert info.value.reason == reason


def test_rejects_non_image_input(reconstructor, crops) -> None:
    with pytest.raises(ValueError, match="uint8"):
        reconstructor.reconstruct(crops[0].astype(np.float32))
    with pytest.raises(ValueError, match="square"):
        reconstructor.reconstruct(crops[0][:, :200])
    with pytest.raises(ValueError, match="RGB"):
        reconstructor.reconstruct(crops[0][..., 0])
