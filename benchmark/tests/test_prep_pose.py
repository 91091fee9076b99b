"""Head pose: the embedded MediaPipe estimator agrees in sign with the PFLD formulas.

Synthetic faces are MediaPipe's canonical model rotated by known angles and projected
orthographically; real faces are LFW photos and their mirror images.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.meshes import read_obj
from benchmark.pipeline.prep.pfld import pose_from_wflw98
from benchmark.pipeline.prep.pose import (
    MEDIAPIPE_FOR_WFLW,
    kabsch_rotation,
    pose_from_landmarks3d,
    pose_from_rotation,
    rotation_matrix,
)


@pytest.fixture(scope="module")
def canonical(store) -> np.ndarray:
    return read_obj(store.file("mediapipe-canonical-mesh")).vertices


def _image_points(canonical: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotate the model, then to image coordinates (y down, larger z nearer), 10 px per cm."""
    camera = canonical @ rotation_matrix(yaw, pitch, roll).T
    return camera * np.array([10.0, -10.0, 10.0]) + np.array([112.0, 112.0, 0.0])


def _wflw_from_mesh(points: np.ndarray) -> np.ndarray:
    """A 98-point array holding only the five points the formulas read (112 px units)."""
    wflw = np.zeros((98, 2))
    for wflw_index, mesh_index in MEDIAPIPE_FOR_WFLW.items():
        wflw[wflw_index] = points[mesh_index, :2] * (112.0 / 224.0)
    return wflw


angles = st.floats(-40, 40)


@given(yaw=angles, pitch=angles)
def test_angles_round_trip(yaw: float, pitch: float) -> None:
    pose = pose_from_rotation(rotation_matrix(yaw, pitch, 0.0))
    assert pose.yaw == pytest.approx(yaw, abs=1e-6) and pose.pitch == pytest.approx(pitch, abs=1e-6)


@given(roll=angles)
def test_roll_round_trip(roll: float) -> None:
    assert pose_from_rotation(rotation_matrix(0, 0, roll)).roll == pytest.approx(roll, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(yaw=angles, pitch=angles, roll=st.floats(-20, 20))
def test_mesh_fit_recovers_known_rotations(canonical, yaw, pitch, roll) -> None:
    pose = pose_from_landmarks3d(_image_points(canonical, yaw, pitch, roll), canonical)
    truth = pose_from_rotation(rotation_matrix(yaw, pitch, roll))
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx(
        (truth.yaw, truth.pitch, truth.roll), abs=1e-6
    )


def test_kabsch_is_a_proper_rotation(canonical) -> None:
    r = kabsch_rotation(canonical, canonical[:, ::-1])  # a reflection: must still give det +1
    assert np.linalg.det(r) == pytest.approx(1.0)


@settings(max_examples=80, deadline=None)
@given(yaw=st.floats(-45, 45), roll=st.floats(-30, 30))
def test_signs_agree_with_pfld_formulas_yaw_roll(canonical, yaw, roll) -> None:
    """Yaw and roll signs of the PFLD formulas (on the equivalent mesh points) match ours."""
    points = _image_points(canonical, yaw, 0.0, roll)
    pfld_yaw, _, pfld_roll = pose_from_wflw98(_wflw_from_mesh(points))
    ours = pose_from_landmarks3d(points, canonical)
    if abs(yaw) >= 8 and abs(roll) < 5:
        assert np.sign(pfld_yaw) == np.sign(ours.yaw), (yaw, pfld_yaw, ours.yaw)
    if abs(roll) >= 3 and abs(yaw) < 20:
        assert np.sign(pfld_roll) == np.sign(ours.roll), (roll, pfld_roll, ours.roll)


def test_pitch_moves_the_same_way_as_the_pfld_formula(canonical) -> None:
    """PFLD's pitch has an offset fitted to its own landmarks; the direction must agree."""
    pitches = np.arange(-30, 31, 5)
    pfld = [
        pose_from_wflw98(_wflw_from_mesh(_image_points(canonical, 0, p, 0)))[1] for p in pitches
    ]
    ours = [
        pose_from_landmarks3d(_image_points(canonical, 0, p, 0), canonical).pitch for p in pitches
    ]
    assert np.all(np.diff(pfld) >= 0) and np.all(np.diff(ours) > 0)
    assert np.corrcoef(pfld, ours)[0, 1] > 0.99


@pytest.mark.integration
def test_real_photos_mirror_flips_yaw_and_roll(lfw20, store) -> None:
    from benchmark.geometry import detection_to_xywh
    from benchmark.imageio import load_image
    from benchmark.pipeline.prep.detectors import YuNet
    from benchmark.pipeline.prep.pose import MediaPipeMeshPose

    detector, pose = YuNet(store), MediaPipeMeshPose(store)
    yaw_pairs = []
    for frame in lfw20.frames[:24]:
        rgb = load_image(frame.path).rgb
        estimates = []
        for image in (rgb, np.ascontiguousarray(rgb[:, ::-1])):
            faces = detector.detect(image)
            estimates.append(
                pose.estimate(image, detection_to_xywh(faces[0].box)) if faces else None
            )
        if None not in estimates:
            yaw_pairs.append((estimates[0].yaw, estimates[1].yaw))
    assert len(yaw_pairs) >= 18
    yaws = np.array(yaw_pairs)
    # Mirroring negates yaw: the pair sums are small next to the spread of yaws.
    assert np.median(np.abs(yaws.sum(axis=1))) < 3.0
    assert np.corrcoef(yaws[:, 0], -yaws[:, 1])[0, 1] > 0.9
