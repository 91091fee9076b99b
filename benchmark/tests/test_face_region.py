"""The forehead rules of ``face_region``, the ``mediapipe-forehead`` cut and the stored
region agreement.

The geometry tests run on synthetic points (no model); the agreement tests on real
LFW-dev crops measure the cut against the reference region of the original's 81-point
hull (dlib's real 68 points + the reference forehead rule), see
``benchmark.region_agreement``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmark.errors import AssetError, DeviceError
from benchmark.pipeline.mask.face_region import (
    FOREHEAD_HEIGHT,
    FOREHEAD_POINTS,
    FOREHEAD_WIDTH,
    MESH_BROWS,
    MESH_LEFT_TEMPLE,
    MESH_NOSE_BRIDGE,
    MESH_NOSE_TIP,
    MESH_RIGHT_TEMPLE,
    forehead_points,
    mesh_forehead_points,
    mesh_forehead_polygon,
    reference_81_like_hull,
)
from benchmark.pipeline.mask.types import CUTS, MaskFailure, hull_region
from benchmark.region_agreement import COMMAND, DEFAULT_OUT, measure

SIZE = 224
MESH_TOP = 10  # the face oval's top point (mid-forehead): where the mesh stops


# -- geometry on synthetic points ---------------------------------------------------------


def _synthetic_mesh(seed: int = 0) -> np.ndarray:
    """468 × 3 points of an upright face about 100 px wide centred in a 224 crop: anchors
    where a frontal face has them, every other point random inside the face oval."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, 468)
    radius = np.sqrt(rng.uniform(0, 1, 468))
    mesh = np.column_stack(
        [
            112 + 50 * radius * np.cos(angle),
            120 + 65 * radius * np.sin(angle),
            rng.normal(0, 20, 468),
        ]
    )
    mesh[MESH_LEFT_TEMPLE, :2] = (62, 100)
    mesh[MESH_RIGHT_TEMPLE, :2] = (162, 100)
    mesh[list(MESH_BROWS), :2] = np.column_stack(
        [np.r_[np.linspace(70, 105, 10), np.linspace(119, 154, 10)], np.full(20, 88.0)]
    )
    mesh[MESH_NOSE_BRIDGE, :2] = (112, 96)
    mesh[MESH_NOSE_TIP, :2] = (112, 136)
    mesh[MESH_TOP, :2] = (112, 56)
    return mesh


def _similarity(points: np.ndarray, angle: float, scale: float, shift: np.ndarray) -> np.ndarray:
    """Points (x, y[, z]) turned by ``angle`` in the image plane, scaled and shifted."""
    c, s = math.cos(angle), math.sin(angle)
    out = np.array(points, np.float64)
    out[:, :2] = scale * out[:, :2] @ np.array([[c, s], [-s, c]]) + shift
    if out.shape[1] == 3:
        out[:, 2] *= scale
    return out


def _face_frame(points: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """(across, up) coordinates of image points in the mesh face's own frame, origin at
    the brows' centre; up is away from the chin (image y points down)."""
    across = mesh[MESH_RIGHT_TEMPLE, :2] - mesh[MESH_LEFT_TEMPLE, :2]
    across /= np.linalg.norm(across)
    up = np.array([across[1], -across[0]])
    rel = points[:, :2] - mesh[list(MESH_BROWS), :2].mean(axis=0)
    return np.column_stack([rel @ across, rel @ up])


def test_mesh_rule_on_an_upright_face_follows_its_stated_constants() -> None:
    mesh = _synthetic_mesh()
    arc = mesh_forehead_points(mesh)
    assert arc.shape == (FOREHEAD_POINTS, 2)
    centre = mesh[list(MESH_BROWS), :2].mean(axis=0)  # (112, 88)
    np.testing.assert_allclose(arc[0], centre + np.array([-FOREHEAD_WIDTH * 50, 0]), atol=1e-9)
    np.testing.assert_allclose(arc[-1], centre + np.array([FOREHEAD_WIDTH * 50, 0]), atol=1e-9)
    # Apex: FOREHEAD_HEIGHT nose lengths (168 → 4 = 40 px) straight up from the brows.
    np.testing.assert_allclose(arc[6], centre - np.array([0, FOREHEAD_HEIGHT * 40]), atol=1e-9)
    polygon = mesh_forehead_polygon(mesh)
    assert polygon.shape == (468 + FOREHEAD_POINTS, 2)
    np.testing.assert_array_equal(polygon[:468], mesh[:, :2])


@given(
    angle=st.floats(-math.pi / 3, math.pi / 3),
    scale=st.floats(0.3, 3.0),
    dx=st.floats(-100, 100),
    dy=st.floats(-100, 100),
    seed=st.integers(0, 5),
)
def test_mesh_rule_turns_and_scales_with_the_face(
    angle: float, scale: float, dx: float, dy: float, seed: int
) -> None:
    mesh = _synthetic_mesh(seed)
    shift = np.array([dx, dy])
    moved = mesh_forehead_polygon(_similarity(mesh, angle, scale, shift))
    expected = _similarity(mesh_forehead_polygon(mesh), angle, scale, shift)
    np.testing.assert_allclose(moved, expected, atol=1e-7 * max(1.0, scale) * 300)


@given(angle=st.floats(-math.pi / 3, math.pi / 3), scale=st.floats(0.3, 3.0))
def test_reference_rule_turns_and_scales_with_the_face(angle: float, scale: float) -> None:
    rng = np.random.default_rng(1)
    p68 = rng.uniform(60, 160, (68, 2))
    p68[0], p68[16] = (60, 100), (160, 100)
    moved = reference_81_like_hull(_similarity(p68, angle, scale, np.array([5.0, -3.0])))
    expected = _similarity(reference_81_like_hull(p68), angle, scale, np.array([5.0, -3.0]))
    np.testing.assert_allclose(moved, expected, atol=1e-6)


@given(angle=st.floats(-math.pi / 3, math.pi / 3), scale=st.floats(0.3, 3.0))
def test_forehead_lies_above_the_brows_in_the_face_frame(angle: float, scale: float) -> None:
    mesh = _similarity(_synthetic_mesh(), angle, scale, np.array([10.0, 20.0]))
    arc = _face_frame(mesh_forehead_points(mesh), mesh)
    brows_top = _face_frame(mesh[list(MESH_BROWS)], mesh)[:, 1].max()
    tolerance = 1e-9 * scale * 300
    assert (arc[:, 1] >= -tolerance).all(), "no forehead point below the brows' centre line"
    assert (arc[1:-1, 1] > brows_top).all(), "all but the two ends above every brow point"
    # It reaches above where the mesh stops (the oval's top, point 10).
    assert arc[:, 1].max() > _face_frame(mesh[[MESH_TOP]], mesh)[0, 1]
    # The arc rises monotonically to its apex and falls after it, left to right.
    assert (np.diff(arc[:7, 1]) > 0).all() and (np.diff(arc[6:, 1]) < 0).all()
    assert (np.diff(arc[:, 0]) > 0).all()


def test_z_plays_no_part_and_bad_shapes_are_refused() -> None:
    mesh = _synthetic_mesh()
    flat = mesh.copy()
    flat[:, 2] = 0
    np.testing.assert_array_equal(mesh_forehead_polygon(mesh), mesh_forehead_polygon(flat))
    np.testing.assert_array_equal(mesh_forehead_polygon(mesh), mesh_forehead_polygon(mesh[:, :2]))
    with pytest.raises(ValueError, match="468 mesh points"):
        mesh_forehead_polygon(mesh[:100])
    with pytest.raises(ValueError, match="468 mesh points"):
        mesh_forehead_polygon(np.zeros((468, 4)))
    with pytest.raises(ValueError, match="68"):
        reference_81_like_hull(np.zeros((81, 2)))
    collapsed = mesh.copy()
    collapsed[MESH_RIGHT_TEMPLE] = collapsed[MESH_LEFT_TEMPLE]
    with pytest.raises(ValueError, match="degenerate"):
        mesh_forehead_points(collapsed)


def test_reference_hull_is_the_68_points_then_the_forehead() -> None:
    p68 = _synthetic_mesh()[:68, :2]
    hull = reference_81_like_hull(p68)
    assert hull.shape == (81, 2)
    np.testing.assert_array_equal(hull[:68], p68)
    np.testing.assert_array_equal(hull[68:], forehead_points(p68))


def test_mesh_anchors_are_mediapipes_brows_and_oval() -> None:
    """The anchor indices name what the docstring says, per MediaPipe's own topology."""
    connections = pytest.importorskip(
        "mediapipe.python.solutions.face_mesh_connections", reason="mediapipe is not installed"
    )

    def points(edges) -> set[int]:
        return {i for edge in edges for i in edge}

    brows = points(connections.FACEMESH_LEFT_EYEBROW) | points(connections.FACEMESH_RIGHT_EYEBROW)
    assert set(MESH_BROWS) == brows and len(MESH_BROWS) == 20
    oval = points(connections.FACEMESH_FACE_OVAL)
    assert {MESH_LEFT_TEMPLE, MESH_RIGHT_TEMPLE, MESH_TOP} <= oval
    assert not {MESH_NOSE_BRIDGE, MESH_NOSE_TIP} & oval


def test_canonical_face_gets_a_forehead_above_the_mesh(store) -> None:
    """On MediaPipe's own canonical face (frontal, ~15 cm wide, drawn 8 px/cm) the arc
    reaches above the mesh's top and widens the hull's upper half only."""
    from benchmark.meshes import read_obj

    try:
        canonical = read_obj(store.file("mediapipe-canonical-mesh")).vertices
    except AssetError as exc:
        pytest.skip(f"canonical mesh not available: {str(exc).splitlines()[0]}")
    mesh = np.column_stack([112 + 8 * canonical[:, 0], 112 - 8 * canonical[:, 1]])
    hull = hull_region(mesh, (SIZE, SIZE))
    forehead = hull_region(mesh_forehead_polygon(mesh), (SIZE, SIZE))
    assert not (hull & ~forehead).any()
    rows_hull, rows_forehead = np.nonzero(hull)[0], np.nonzero(forehead)[0]
    assert rows_forehead.min() < rows_hull.min() - 2
    assert rows_forehead.max() == rows_hull.max()
    below_brows = int(np.ceil(mesh[list(MESH_BROWS), 1].max()))
    np.testing.assert_array_equal(hull[below_brows:], forehead[below_brows:])


# -- the cut on real crops ----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(store):
    from benchmark.region_agreement import ReferenceHull

    pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
    try:
        return ReferenceHull(store)
    except AssetError as exc:
        pytest.skip(f"dlib's 68-point model is not available: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def mediapipe_cuts(store) -> dict:
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")

    return {
        name: CUTS.create(name, store=store) for name in ("mediapipe-forehead", "mediapipe-hull")
    }


def test_registered_like_the_hull_cut() -> None:
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    from benchmark.pipeline.mask.mediapipe_fit import MediaPipeForeheadCut, MediaPipeHullCut

    assert CUTS.cls("mediapipe-forehead") is MediaPipeForeheadCut
    assert MediaPipeForeheadCut.name == "mediapipe-forehead"
    assert MediaPipeForeheadCut.assets == MediaPipeHullCut.assets
    assert MediaPipeForeheadCut.cpu_only and MediaPipeHullCut.cpu_only


def test_cuda_is_refused(store) -> None:
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    from benchmark.pipeline.mask.mediapipe_fit import MediaPipeForeheadCut

    with pytest.raises(DeviceError, match="CPU only"):
        MediaPipeForeheadCut(store, device="cuda")


def test_forehead_cut_agrees_with_the_reference_better_than_the_hull(
    kept_crops, reference, mediapipe_cuts
) -> None:
    """Real kept crops of lfw20: mean IoU with the reference region ≥ 0.9, and higher than
    the plain mesh hull's (which stops at mid-forehead)."""
    results = measure(kept_crops, mediapipe_cuts, reference)
    forehead, hull = (results[n].summary() for n in ("mediapipe-forehead", "mediapipe-hull"))
    assert forehead["n_measured"] >= 0.9 * len(kept_crops)
    assert forehead["n_measured"] == hull["n_measured"]
    assert forehead["iou"]["mean"] >= 0.9, forehead
    assert forehead["iou"]["mean"] > hull["iou"]["mean"], (forehead, hull)
    assert forehead["inside_mean"] > hull["inside_mean"]


def test_forehead_region_contains_the_hull_and_rises_above_it(kept_crops, mediapipe_cuts) -> None:
    forehead_cut, hull_cut = mediapipe_cuts["mediapipe-forehead"], mediapipe_cuts["mediapipe-hull"]
    for crop in kept_crops[:5]:
        forehead, hull = forehead_cut.region(crop, None), hull_cut.region(crop, None)
        assert forehead.dtype == bool and forehead.shape == (SIZE, SIZE)
        assert not (hull & ~forehead).any()
        assert np.nonzero(forehead)[0].min() < np.nonzero(hull)[0].min()


def test_forehead_cut_fails_closed(kept_crops, mediapipe_cuts) -> None:
    cut = mediapipe_cuts["mediapipe-forehead"]
    with pytest.raises(MaskFailure, match="no face found by the MediaPipe face mesh"):
        cut.region(np.full((SIZE, SIZE, 3), 128, np.uint8), None)
    quarter = SIZE // 4
    two = np.ascontiguousarray(
        np.concatenate(
            [kept_crops[0][:, quarter:-quarter], kept_crops[1][:, quarter:-quarter]], axis=1
        )
    )
    with pytest.raises(MaskFailure, match="2 faces found by the MediaPipe face mesh"):
        cut.region(two, None)


# -- the stored measurement on all of LFW-dev ---------------------------------------------


def test_stored_region_agreement_is_well_formed_and_meets_the_target() -> None:
    data = json.loads(DEFAULT_OUT.read_text())
    assert data["command"] == COMMAND
    assert isinstance(data["prep_detector"], str) and data["prep_detector"]
    assert data["n_crops"] > 1000 and data["n_crops"] == data["prep_status"]["kept"]
    assert data["n_crops"] <= data["n_frames"]
    cuts = data["cuts"]
    for name in ("mediapipe-forehead", "mediapipe-hull"):
        summary = cuts[name]
        assert summary["n_measured"] + summary["n_skipped"] == data["n_crops"]
        assert sum(summary["skipped"].values()) == summary["n_skipped"]
        assert summary["n_measured"] >= 0.95 * data["n_crops"]
        iou = summary["iou"]
        assert 0 <= iou["min"] <= iou["p5"] <= iou["median"] <= 1 and 0 <= iou["mean"] <= 1
        assert sum(summary["iou_histogram"].values()) == summary["n_measured"]
        for key in ("inside_mean", "outside_mean", "share_mean", "reference_share_mean"):
            assert 0 <= summary[key] <= 1
    forehead, hull = cuts["mediapipe-forehead"], cuts["mediapipe-hull"]
    assert forehead["iou"]["mean"] >= 0.9
    assert forehead["iou"]["mean"] > hull["iou"]["mean"]
    # The stored grid was run with the constants now in the code.
    grid = data["mediapipe_forehead_grid"]
    assert grid["chosen"] == {"width": FOREHEAD_WIDTH, "height": FOREHEAD_HEIGHT}
    assert len(grid["mean_iou"]) == len(grid["widths"])
    assert all(len(row) == len(grid["heights"]) for row in grid["mean_iou"])
    assert grid["all"]["chosen_mean_iou"] >= grid["all"]["best_mean_iou"] - 0.005
