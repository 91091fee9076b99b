"""Tests for the PFLD landmark step and the landmark-based head pose (benchmark.pipeline.prep.pfld).

Expected pose values are worked out by hand in the comments; the property tests use
coordinates on a 1/8-pixel grid (and power-of-two scales, integer shifts) so that every
floating-point step is exact and the ``int()`` truncation cannot flip at a boundary.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from benchmark.pipeline.prep import pfld
from benchmark.pipeline.prep.pfld import (
    pose_from_wflw98,
    square_crop_112,
    upstream_box_from_detection,
    upstream_crop_needs_padding,
)

PROPS = settings(deadline=None, max_examples=150)


def landmarks(
    p1: tuple[float, float] = (16.0, 40.0),
    p31: tuple[float, float] = (96.0, 40.0),
    p51: tuple[float, float] = (56.0, 60.0),
    p60: tuple[float, float] = (30.0, 30.0),
    p72: tuple[float, float] = (80.0, 30.0),
) -> np.ndarray:
    """A 98x2 landmark set where only the five points used by the formulas matter."""
    pts = np.full((98, 2), 56.0)
    for idx, xy in ((1, p1), (31, p31), (51, p51), (60, p60), (72, p72)):
        pts[idx] = xy
    return pts


# --------------------------------------------------------------------------- hand-made


def test_frontal_nose_over_midpoint_gives_yaw_zero() -> None:
    # p1=(16,40), p31=(96,40): m = 80/2 = 40.  Foot of p51=(56,60) is (56,40): r = 40.
    # yaw = int(71.58*(40-40)/40 + 0.7037) = int(0.7037) = 0
    # p51 is 20 px below the line: pitch = int(1.497*20 + 18.97) = int(48.91) = 48
    # eyes level: roll = 0
    assert pose_from_wflw98(landmarks()) == (0, 48, 0.0)


def test_nose_at_quarter_gives_yaw_36() -> None:
    # foot (36,40): r = 20, m = 40 -> (40-20)/40 = 0.5 -> 35.79 + 0.7037 = 36.4937 -> 36
    yaw, _, _ = pose_from_wflw98(landmarks(p51=(36.0, 60.0)))
    assert yaw == 36


def test_yaw_truncates_toward_zero() -> None:
    # foot at three quarters (76,40): r = 60 -> (40-60)/40 = -0.5 -> -35.79 + 0.7037
    # = -35.0863; int() gives -35 (floor would give -36)
    yaw, _, _ = pose_from_wflw98(landmarks(p51=(76.0, 60.0)))
    assert yaw == -35


def test_yaw_beyond_p1_uses_unsigned_distance() -> None:
    # foot (8,40) lies outside the segment, 8 px beyond p1: r = |p1 c| = 8 (unsigned)
    # -> (40-8)/40 = 0.8 -> 57.264 + 0.7037 = 57.9677 -> 57 (not larger than at p1)
    yaw, _, _ = pose_from_wflw98(landmarks(p51=(8.0, 60.0)))
    assert yaw == 57


def test_pitch_on_line_above_and_below() -> None:
    # on the line: d = 0 -> int(18.97) = 18
    assert pose_from_wflw98(landmarks(p51=(56.0, 40.0)))[1] == 18
    # 20 px above (smaller y): d = -20 -> -29.94 + 18.97 = -10.97 -> -10 (floor: -11)
    assert pose_from_wflw98(landmarks(p51=(56.0, 20.0)))[1] == -10
    # 20 px below: 48 (see the frontal case)
    assert pose_from_wflw98(landmarks(p51=(56.0, 60.0)))[1] == 48


def test_tilted_jaw_line() -> None:
    # p1=(0,0), p31=(80,60): |p1 p31| = 100, m = 50.  Unit axis (0.8,0.6), downward
    # normal (-0.6,0.8).  p51 = c + 10*normal with c = p1 + 0.25*(80,60) = (20,15)
    # -> p51 = (14,23).  r = 25 -> 0.5 -> yaw 36; d = +10 (below) -> 14.97 + 18.97
    # = 33.94 -> pitch 33.
    yaw, pitch, _ = pose_from_wflw98(landmarks(p1=(0.0, 0.0), p31=(80.0, 60.0), p51=(14.0, 23.0)))
    assert (yaw, pitch) == (36, 33)


def test_roll_plus_minus_45() -> None:
    # |dy| = |dx| = 30 -> atan(1) = 45 deg; positive when y60 < y72, negated when y60 > y72
    _, _, up = pose_from_wflw98(landmarks(p60=(40.0, 50.0), p72=(70.0, 80.0)))
    _, _, down = pose_from_wflw98(landmarks(p60=(40.0, 80.0), p72=(70.0, 50.0)))
    assert up == pytest.approx(45.0, abs=1e-12)
    assert down == pytest.approx(-45.0, abs=1e-12)


def test_roll_is_not_truncated() -> None:
    # dy = 10, dx = 50: atan(0.2) = 11.3099... deg (upstream would int() it to 11)
    _, _, roll = pose_from_wflw98(landmarks(p60=(30.0, 30.0), p72=(80.0, 40.0)))
    assert roll == pytest.approx(math.degrees(math.atan(0.2)))
    assert roll != int(roll)


def test_roll_vertical_eye_line() -> None:
    # x60 == x72: the tangent is infinite -> +-90 deg here (upstream: ZeroDivisionError)
    assert pose_from_wflw98(landmarks(p60=(50.0, 20.0), p72=(50.0, 40.0)))[2] == 90.0
    assert pose_from_wflw98(landmarks(p60=(50.0, 40.0), p72=(50.0, 20.0)))[2] == -90.0
    tilted_jaw = {"p1": (0.0, 0.0), "p31": (80.0, 60.0), "p51": (14.0, 23.0)}
    with pytest.raises(ValueError, match="x60 == x72"):
        pose_from_wflw98(landmarks(**tilted_jaw, p60=(50.0, 20.0), p72=(50.0, 40.0)), strict=True)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((98, 3)), np.zeros((68, 2)), np.zeros(196)],
)
def test_wrong_shape_raises(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        pose_from_wflw98(bad)


def test_degenerate_landmarks_raise() -> None:
    with pytest.raises(ValueError, match="p1 == p31"):
        pose_from_wflw98(landmarks(p1=(50.0, 40.0), p31=(50.0, 40.0)))
    with pytest.raises(ValueError, match="p60 == p72"):
        pose_from_wflw98(landmarks(p60=(50.0, 40.0), p72=(50.0, 40.0)))
    pts = landmarks()
    pts[51, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        pose_from_wflw98(pts)


def test_strict_mode_reproduces_upstream_division_errors() -> None:
    # Upstream computes the slope k1 = (y31-y1)/(x31-x1) and -1/k1: a level or vertical
    # jaw line raised ZeroDivisionError there (and the frame was dropped).
    with pytest.raises(ValueError, match="slope is 0"):
        pose_from_wflw98(landmarks(), strict=True)
    with pytest.raises(ValueError, match="x1 == x31"):
        pose_from_wflw98(landmarks(p1=(56.0, 10.0), p31=(56.0, 90.0)), strict=True)
    tilted = landmarks(p1=(0.0, 0.0), p31=(80.0, 60.0), p51=(14.0, 23.0))
    assert pose_from_wflw98(tilted, strict=True) == pose_from_wflw98(tilted)


# --------------------------------------------------------------------------- properties

eighths = st.integers(-8 * 20, 8 * 132).map(lambda k: k / 8)  # exact binary fractions
point = st.tuples(eighths, eighths)
axis_vec = st.tuples(st.integers(-60, 60), st.integers(-60, 60)).filter(
    lambda a: a[0] ** 2 + a[1] ** 2 >= 64
)
fraction = st.integers(0, 64).map(lambda k: k / 64)  # position of the nose foot on p1->p31


def nose_on(p1: tuple[float, float], axis: tuple[int, int], t: float, h: int) -> tuple:
    """Point whose foot on line p1->p1+axis is at fraction t, offset h/8 along the normal."""
    ax, ay = axis
    return (p1[0] + t * ax - h / 8 * ay, p1[1] + t * ay + h / 8 * ax)


@PROPS
@given(p1=point, axis=axis_vec, t1=fraction, t2=fraction, h=st.integers(-200, 200))
def test_yaw_non_increasing_as_nose_moves_from_p1_to_p31(p1, axis, t1, t2, h) -> None:
    t1, t2 = sorted((t1, t2))
    p31 = (p1[0] + axis[0], p1[1] + axis[1])
    yaw1 = pose_from_wflw98(landmarks(p1=p1, p31=p31, p51=nose_on(p1, axis, t1, h)))[0]
    yaw2 = pose_from_wflw98(landmarks(p1=p1, p31=p31, p51=nose_on(p1, axis, t2, h)))[0]
    assert yaw1 >= yaw2


def wflw_mirror(pts: np.ndarray, width: float = 112.0) -> np.ndarray:
    """Horizontal flip of the face: x -> width - x, and swap the left/right WFLW indices
    used here (contour 1 <-> 31, outer eye corners 60 <-> 72; nose bridge 51 stays)."""
    out = pts.copy()
    out[:, 0] = width - out[:, 0]
    out[[1, 31]] = out[[31, 1]]
    out[[60, 72]] = out[[72, 60]]
    return out


@PROPS
@given(p1=point, axis=axis_vec, t=fraction, h=st.integers(-200, 200), e1=point, e2=point)
def test_mirror_flips_yaw_and_roll(p1, axis, t, h, e1, e2) -> None:
    """Exact property: with v = 71.58*(m - r)/m the unrounded yaw, the mirrored face has
    -v, so yaw = int(v + 0.7037) and yaw_m = int(-v + 0.7037).  Their sum lies in
    {0, 1, 2} (truncation toward zero of two numbers summing to 1.4074), i.e.
    yaw_m in {-yaw, -yaw + 1, -yaw + 2}; it holds while the nose foot is on the segment
    p1-p31.  Pitch is unchanged and roll changes sign exactly."""
    if e1 == e2:
        e2 = (e2[0] + 1.0, e2[1])
    p31 = (p1[0] + axis[0], p1[1] + axis[1])
    pts = landmarks(p1=p1, p31=p31, p51=nose_on(p1, axis, t, h), p60=e1, p72=e2)
    yaw, pitch, roll = pose_from_wflw98(pts)
    yaw_m, pitch_m, roll_m = pose_from_wflw98(wflw_mirror(pts))
    assert yaw + yaw_m in (0, 1, 2)
    if yaw >= 3:
        assert yaw_m < 0
    assert pitch_m == pitch
    assert roll_m == -roll


@PROPS
@given(p1=point, axis=axis_vec, t=fraction, h=st.integers(-200, 200), e1=point, e2=point)
def test_plain_x_flip_without_reindexing_changes_nothing(p1, axis, t, h, e1, e2) -> None:
    # All formulas use distances and the y order only, so flipping x without swapping the
    # left/right indices is not a mirror of the face: the pose is unchanged.
    if e1 == e2:
        e2 = (e2[0] + 1.0, e2[1])
    p31 = (p1[0] + axis[0], p1[1] + axis[1])
    pts = landmarks(p1=p1, p31=p31, p51=nose_on(p1, axis, t, h), p60=e1, p72=e2)
    flipped = pts.copy()
    flipped[:, 0] = 112.0 - flipped[:, 0]
    assert pose_from_wflw98(flipped) == pose_from_wflw98(pts)


@PROPS
@given(e1=point, e2=point)
def test_roll_sign_flips_under_vertical_mirror(e1, e2) -> None:
    if e1 == e2:
        e2 = (e2[0], e2[1] + 1.0)
    pts = landmarks(p60=e1, p72=e2)
    flipped = pts.copy()
    flipped[:, 1] = 112.0 - flipped[:, 1]
    roll = pose_from_wflw98(pts)[2]
    assert pose_from_wflw98(flipped)[2] == -roll


@PROPS
@given(
    p1=point,
    axis=axis_vec,
    t=st.integers(-32, 96).map(lambda k: k / 64),
    h=st.integers(-200, 200),
    scale=st.sampled_from([0.25, 0.5, 2.0, 4.0]),
    shift=st.tuples(st.integers(-300, 300), st.integers(-300, 300)),
)
def test_yaw_invariant_to_scale_and_translation(p1, axis, t, h, scale, shift) -> None:
    p31 = (p1[0] + axis[0], p1[1] + axis[1])
    pts = landmarks(p1=p1, p31=p31, p51=nose_on(p1, axis, t, h))
    yaw, pitch, _ = pose_from_wflw98(pts)
    moved = pose_from_wflw98(pts * scale + np.asarray(shift, dtype=float))
    assert moved[0] == yaw
    # translation alone keeps pitch too; scale does not (see test_pitch_not_scale_invariant)
    assert pose_from_wflw98(pts + np.asarray(shift, dtype=float))[1] == pitch


@PROPS
@given(
    pts=st.lists(st.floats(0, 112, allow_nan=False), min_size=196, max_size=196).map(
        lambda v: np.asarray(v).reshape(98, 2)
    ),
    scale=st.floats(0.1, 10.0),
)
def test_yaw_scale_invariance_on_arbitrary_floats_up_to_rounding(pts, scale) -> None:
    # Off the exact grid the ratio (m - r)/m can change in the last bits, which may move
    # int() across an integer boundary, so allow a difference of at most 1.
    if np.hypot(*(pts[31] - pts[1])) < 1.0 or np.hypot(*(pts[60] - pts[72])) < 1e-3:
        return
    assert abs(pose_from_wflw98(pts * scale)[0] - pose_from_wflw98(pts)[0]) <= 1


def test_pitch_not_scale_invariant() -> None:
    # d is measured in 112-px crop units: scaling the points scales d.
    # d = 20 -> int(29.94 + 18.97) = 48; x2 -> d = 40 -> int(59.88 + 18.97) = 78;
    # x0.5 -> d = 10 -> int(14.97 + 18.97) = 33.  Yaw (0) is unchanged.
    pts = landmarks()
    assert pose_from_wflw98(pts)[:2] == (0, 48)
    assert pose_from_wflw98(pts * 2)[:2] == (0, 78)
    assert pose_from_wflw98(pts * 0.5)[:2] == (0, 33)


@PROPS
@given(p1=point, axis=axis_vec, t=fraction, h=st.integers(1, 200))
def test_pitch_grows_with_scale_when_nose_below_line(p1, axis, t, h) -> None:
    # With axis x > 0 and h > 0 the nose is offset by h/8 * (-ay, ax), i.e. downwards
    # (larger image y): d > 0, and doubling the landmark spread doubles d.
    assume(axis[0] > 0)
    p31 = (p1[0] + axis[0], p1[1] + axis[1])
    pts = landmarks(p1=p1, p31=p31, p51=nose_on(p1, axis, t, h))
    _, pitch, _ = pose_from_wflw98(pts)
    _, pitch2, _ = pose_from_wflw98(pts * 2)
    assert pitch >= 18
    assert pitch2 >= pitch


# --------------------------------------------------------------------------- crop


def test_crop_interior_box_by_hand() -> None:
    # box (10,20)-(60,81): w = 50, h = 61 -> side 61; centre (35, 50.5)
    # square x: 35 - 30.5 = 4.5 .. 65.5 -> int -> 4 .. 65; y: 20.0 .. 81.0 -> 20 .. 81
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)
    crop, region = square_crop_112(image, (10, 20, 60, 81))
    assert region == (4, 20, 65, 81)
    expected = cv2_resize(image[20:81, 4:65]).astype(np.float32) / 255
    np.testing.assert_array_equal(crop, expected)
    assert crop.dtype == np.float32 and crop.shape == (112, 112, 3)
    assert not upstream_crop_needs_padding(image.shape[:2], (10, 20, 60, 81))


def test_crop_padding_and_half_pixel_truncation_by_hand() -> None:
    # box (0,0)-(101,100) in a 200x200 image: side = 101, centre (50.5, 50)
    # x: 0.0 .. 101.0; y: -0.5 .. 100.5 -> top pad int(0.5) = 0, rows int(0)..int(100.5)
    # = 0..100: the region is 101 wide but only 100 tall (one pixel short of square).
    image = np.full((200, 200, 3), 7, dtype=np.uint8)
    crop, region = square_crop_112(image, (0, 0, 101, 100))
    assert region == (0, 0, 101, 100)
    assert upstream_crop_needs_padding((200, 200), (0, 0, 101, 100))
    np.testing.assert_array_equal(crop, np.full((112, 112, 3), np.float32(7) / np.float32(255)))


def test_crop_zero_pads_outside_image() -> None:
    # box (-20,-10)-(30,40) in a 100x100 white image: side 50, square = box itself;
    # 20 columns on the left and 10 rows on top are zero padding.
    image = np.full((100, 100, 3), 255, dtype=np.uint8)
    crop, region = square_crop_112(image, (-20, -10, 30, 40))
    assert region == (-20, -10, 30, 40)
    canvas = np.zeros((50, 50, 3), dtype=np.uint8)
    canvas[10:, 20:] = 255
    np.testing.assert_array_equal(crop, cv2_resize(canvas).astype(np.float32) / 255)


def test_crop_rejects_bad_input() -> None:
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        square_crop_112(image.astype(np.float32), (0, 0, 10, 10))
    with pytest.raises(ValueError, match="HxWx3"):
        square_crop_112(image[..., 0], (0, 0, 10, 10))
    with pytest.raises(ValueError, match="positive"):
        square_crop_112(image, (10, 10, 10, 20))
    with pytest.raises(ValueError, match="overlap"):
        square_crop_112(image, (60, 60, 80, 80))


def test_upstream_box_from_detection() -> None:
    # [int(10.7), int(20.2), int(50.9 - 10.7 + 1), int(80.5 - 20.2 + 1)] = [10, 20, 41, 61]
    assert upstream_box_from_detection(10.7, 20.2, 50.9, 80.5) == (10, 20, 51, 81)


def cv2_resize(patch: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(patch, (112, 112), interpolation=cv2.INTER_LINEAR)


@PROPS
@given(
    hw=st.tuples(st.integers(20, 160), st.integers(20, 160)),
    x1=st.integers(-60, 150),
    y1=st.integers(-60, 150),
    w=st.integers(1, 120),
    h=st.integers(1, 120),
    seed=st.integers(0, 2**16),
)
def test_crop_matches_zero_canvas_reference(hw, x1, y1, w, h, seed) -> None:
    """The crop equals the region pasted on a zero canvas and resized; the region's left
    (top) edge is floor(s) inside the image and ceil(s) outside, its right (bottom) edge
    floor(s + side), so each side is side or side - 1 long."""
    height, width = hw
    box = (x1, y1, x1 + w, y1 + h)
    side = max(w, h)
    sx, sy = x1 + w / 2 - side / 2, y1 + h / 2 - side / 2
    if sx + side <= 0 or sy + side <= 0 or sx >= width or sy >= height:
        return  # no overlap with the image; covered by test_crop_rejects_bad_input
    if int(min(width, sx + side)) <= int(max(0, sx)) or int(min(height, sy + side)) <= int(
        max(0, sy)
    ):
        return
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    crop, (rx1, ry1, rx2, ry2) = square_crop_112(image, box)

    def edge(s: float) -> int:
        return math.floor(s) if s >= 0 else math.ceil(s)

    assert (rx1, ry1) == (edge(sx), edge(sy))
    assert (rx2, ry2) == (math.floor(sx + side), math.floor(sy + side))
    assert side - 1 <= rx2 - rx1 <= side and side - 1 <= ry2 - ry1 <= side
    canvas = np.zeros((ry2 - ry1, rx2 - rx1, 3), dtype=np.uint8)
    ix1, iy1, ix2, iy2 = max(rx1, 0), max(ry1, 0), min(rx2, width), min(ry2, height)
    canvas[iy1 - ry1 : iy2 - ry1, ix1 - rx1 : ix2 - rx1] = image[iy1:iy2, ix1:ix2]
    np.testing.assert_array_equal(crop, cv2_resize(canvas).astype(np.float32) / 255)
    inside = sx >= 0 and sy >= 0 and sx + side <= width and sy + side <= height
    assert upstream_crop_needs_padding((height, width), box) == (not inside)


# --------------------------------------------------------------------------- network

# Key count of PFLDInference.state_dict(), counted from the upstream architecture in
# WIKI2020/FacePose_pytorch pfld/pfld.py @ e570c9b1 (identical in computationalprivacy/unmask
# image_prep_selection/FacePose_pytorch/pfld/pfld.py @ a92ac38e): 2 stem convs + 2 BN,
# 13 inverted-residual blocks of 3 convs + 3 BN, conv7 (conv + BN), conv8 (weight, bias),
# the unused bn8, fc (weight, bias) -> 132 parameters + 43 BN x 3 buffers (running_mean,
# running_var, num_batches_tracked) = 261.  Also checked once by instantiating the
# upstream class.  The real checkpoint file was not available to count its keys directly.
UPSTREAM_STATE_DICT_KEYS = 261

try:
    import torch
except ImportError:  # pose and crop tests still run without torch
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def _stand_in_network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = pfld.build_pfld_backbone()
    with torch.no_grad():  # non-trivial BN statistics so they must be loaded to match
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(1000)
    return net.eval()


def _crops(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 112, 112, 3), dtype=np.float32)


def _direct(net: torch.nn.Module, crops: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = net(torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()).numpy()
    assert out.shape == (len(crops), 196)
    return (out.astype(np.float64) * 112).reshape(-1, 98, 2).astype(np.float32)


@needs_torch
@pytest.mark.parametrize("zipfile_format", [True, False])
def test_stand_in_checkpoint_round_trip(tmp_path: Path, zipfile_format: bool) -> None:
    """Wiring test with a STAND-IN: random (seeded) weights, not the real PFLD model,
    because the real checkpoint.pth.tar is user-supplied.  It is saved in the upstream
    layout ({'plfd_backbone': state_dict, ...}; also in torch's legacy non-zip format that
    2020-era torch wrote), loaded with load_pfld and compared with calling the module."""
    net = _stand_in_network()
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(
        {"epoch": 7, "plfd_backbone": net.state_dict()},
        path,
        _use_new_zipfile_serialization=zipfile_format,
    )
    landmarker = pfld.load_pfld(path)
    crops = _crops()
    got = landmarker(crops)
    assert got.shape == (3, 98, 2) and got.dtype == np.float32
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, _direct(net, crops))
    assert len(net.state_dict()) == UPSTREAM_STATE_DICT_KEYS
    assert len(landmarker.network.state_dict()) == UPSTREAM_STATE_DICT_KEYS
    assert not landmarker.network.training


@needs_torch
def test_stand_in_small_batches_and_raw_state_dict(tmp_path: Path) -> None:
    """Stand-in random weights (real checkpoint is user-supplied): a bare state dict loads
    too, and splitting the input into batches gives the same landmarks."""
    net = _stand_in_network(seed=3)
    path = tmp_path / "raw.pth"
    torch.save(net.state_dict(), path)
    crops = _crops(5, seed=2)
    got = pfld.load_pfld(path, batch_size=2)(crops)
    np.testing.assert_allclose(got, _direct(net, crops), rtol=1e-5, atol=1e-4)
    assert pfld.load_pfld(path)(np.zeros((0, 112, 112, 3), np.float32)).shape == (0, 98, 2)


@needs_torch
def test_state_dict_layout_matches_upstream_names() -> None:
    sd = pfld.build_pfld_backbone().state_dict()
    assert len(sd) == UPSTREAM_STATE_DICT_KEYS
    assert sum(k.endswith("num_batches_tracked") for k in sd) == 43
    assert sd["conv1.weight"].shape == (64, 3, 3, 3)
    assert sd["block3_2.conv.3.weight"].shape == (128, 1, 3, 3)  # depthwise, expand 2
    assert sd["block5_6.conv.7.running_var"].shape == (128,)
    assert sd["conv6_1.conv.6.weight"].shape == (16, 256, 1, 1)
    assert sd["conv7.1.weight"].shape == (32,)
    assert sd["conv8.bias"].shape == (128,)
    assert "bn8.running_mean" in sd  # unused in forward but stored in the checkpoint
    assert sd["fc.weight"].shape == (196, 176)


@needs_torch
def test_checkpoint_without_backbone_key_names_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pth.tar"
    torch.save({"epoch": 1, "state_dict": _stand_in_network().state_dict()}, path)
    with pytest.raises(ValueError, match="plfd_backbone") as info:
        pfld.load_pfld(path)
    assert str(path) in str(info.value)


@needs_torch
def test_checkpoint_with_wrong_keys_is_rejected(tmp_path: Path) -> None:
    state = _stand_in_network().state_dict()
    del state["fc.bias"]
    path = tmp_path / "broken.pth.tar"
    torch.save({"plfd_backbone": state}, path)
    with pytest.raises(ValueError, match=r"fc\.bias"):
        pfld.load_pfld(path)


@needs_torch
def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pth\.tar"):
        pfld.load_pfld(tmp_path / "nope.pth.tar")


@needs_torch
def test_landmarker_rejects_wrong_crop_shape(tmp_path: Path) -> None:
    landmarker = pfld.PfldLandmarker(_stand_in_network())
    with pytest.raises(ValueError, match="112, 112, 3"):
        landmarker(np.zeros((2, 3, 112, 112), np.float32))


@needs_torch
@pytest.mark.skipif(
    torch is not None and torch.cuda.is_available(), reason="CUDA is available here"
)
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_raises(tmp_path: Path, device: str) -> None:
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"plfd_backbone": _stand_in_network().state_dict()}, path)
    with pytest.raises(RuntimeError, match="cuda"):
        pfld.load_pfld(path, device=device)
    with pytest.raises(RuntimeError, match="not falling back"):
        pfld.PfldLandmarker(_stand_in_network(), device=device)


def test_module_imports_without_torch() -> None:
    # Load the file on its own in a fresh interpreter and check torch was not imported.
    source = Path(pfld.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('pfld_only', {str(source)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert 'torch' not in sys.modules, 'torch imported eagerly'\n"
        "print(module.pose_from_wflw98.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
