"""Crop geometry and frame selection, against the original's arithmetic."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from benchmark.datasets import Frame
from benchmark.geometry import (
    crop_resize,
    detection_to_xywh,
    prep_crop_box,
    square_box,
    square_patch,
)
from benchmark.pipeline.prep.stage import FrameResult, select_frames


def test_known_crop_matches_hand_computation() -> None:
    # Box l=100, t=80, r=149, b=159 → (x, y, w, h) = (100, 80, 50, 80).
    xywh = detection_to_xywh((100.0, 80.0, 149.0, 159.0))
    assert xywh == (100, 80, 50, 80)
    square = square_box(xywh, 640, 480)
    # side 80 on centre (125, 120): x 85..165, y 80..160, nothing clipped.
    assert square.size == 80 and square.clipped == (85.0, 165.0, 80.0, 160.0)
    # margin 1.5 × 40 = 60 on every side → x 25..225, y 20..220 (2.5 × the side).
    assert prep_crop_box(square.clipped, 640, 480) == (25, 20, 225, 220)


boxes = st.tuples(st.floats(-50, 600), st.floats(-50, 400), st.floats(5, 300), st.floats(5, 300))


@given(box=boxes, width=st.integers(40, 700), height=st.integers(40, 500))
def test_crop_box_is_inside_the_image(box, width, height) -> None:
    x, y, w, h = box
    xywh = detection_to_xywh((x, y, x + w, y + h))
    square = square_box(xywh, width, height)
    cx1, cx2, cy1, cy2 = square.clipped
    assert cx1 >= 0 and cx2 <= width and cy1 >= 0 and cy2 <= height
    x1, y1, x2, y2 = prep_crop_box(square.clipped, width, height)
    assert x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height


@given(x=st.integers(200, 300), y=st.integers(200, 300), side=st.integers(10, 60))
def test_unclipped_crop_is_square_and_two_and_a_half_sides(x, y, side) -> None:
    square = square_box((x, y, side, side), 1000, 1000)
    x1, y1, x2, y2 = prep_crop_box(square.clipped, 1000, 1000)
    assert abs((x2 - x1) - 2.5 * side) <= 2 and abs((y2 - y1) - 2.5 * side) <= 2


def test_square_patch_pads_with_zeros_outside_the_image() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    square = square_box((-20, 10, 60, 60), 100, 100)  # leaves the image on the left
    patch = square_patch(image, square, 60)
    assert patch.shape == (60, 60, 3)
    assert patch[:, :5].max() == 0 and patch[:, -5:].min() == 200
    assert crop_resize(image, (0, 0, 50, 70), 224).shape == (224, 224, 3)


def _results(kept_per_session: list[int]) -> list[FrameResult]:
    out = []
    for s, n in enumerate(kept_per_session):
        for i in range(max(n, 0) + 2):
            frame = Frame("Id", f"{s}", i, path=None, rel=f"Id/{s}/{i}")  # type: ignore[arg-type]
            out.append(FrameResult(frame, "kept" if i < n else "dropped"))
    return out


@given(kept=st.lists(st.integers(0, 6), min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_selection_draws_like_the_original(kept, seed) -> None:
    results = _results(kept)
    chosen = select_frames(results, seed)
    assert [int(c.session) for c in chosen] == [s for s, n in enumerate(kept) if n >= 2]
    # The original: one default_rng(seed), rng.choice(list_of_kept, 2, replace=False) per video.
    rng = np.random.default_rng(seed)
    for sel in chosen:
        names = [f"Id/{sel.session}/{i}" for i in range(kept[int(sel.session)])]
        first, second = rng.choice(names, size=2, replace=False)
        assert (sel.database, sel.query) == (first, second)
        assert sel.database != sel.query
    assert select_frames(results, seed) == chosen


def test_single_photo_sessions_stand_for_both_sides() -> None:
    results = _results([1, 0, 1])
    both = select_frames(results, 42, single_frame_sessions=True)
    assert [(s.session, s.database == s.query) for s in both] == [("0", True), ("2", True)]
    assert select_frames(results, 42) == []


def test_reference_quirk_drops_faces_whose_square_leaves_the_image(lfw20, store, tmp_path) -> None:
    """With reference_quirks the original's crash on padded boxes becomes a recorded drop.

    Real photos are cut so that the face touches the left border; the original could
    not pose such a face (float padding → exception → frame silently skipped)."""
    from PIL import Image

    from benchmark.cache import Cache
    from benchmark.datasets import Frame
    from benchmark.pipeline.prep.stage import PrepParams, PrepStage

    quirky = PrepStage.from_names(
        store=store, cache=Cache(enabled=False), params=PrepParams(reference_quirks=True)
    )
    plain = PrepStage.from_names(store=store, cache=Cache(enabled=False))
    assert quirky.key("x" * 64) != plain.key("x" * 64)
    quirk_drops = 0
    for frame in lfw20.frames[:20]:
        result = plain.run_frame(frame)
        if result.status != "kept":
            continue
        x1, _, x2, _ = result.box
        cut = tmp_path / f"{frame.identity}_0001.jpg"
        with Image.open(frame.path) as photo:
            photo.crop((int(x1 + 0.25 * (x2 - x1)), 0, photo.width, photo.height)).save(cut)
        edge = Frame(frame.identity, "0001", 0, cut, cut.name)
        quirked = quirky.run_frame(edge)
        if "reference quirk" in quirked.reason:
            quirk_drops += 1
            assert "reference quirk" not in plain.run_frame(edge).reason
    assert quirk_drops >= 3
