"""The mask stage fails closed: properties of the composition, bad crops, no stray files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmark.cache import Cache
from benchmark.errors import DmbenchError
from benchmark.pipeline.mask.anonymizers import DigitalMask
from benchmark.pipeline.mask.stage import VARIANTS, MaskParams, MaskStage, compose, run_mask
from benchmark.pipeline.mask.types import (
    FaceCut,
    FaceMesh,
    MaskFailure,
    Reconstructor,
    Renderer,
    Rendering,
)
from benchmark.pipeline.prep.stage import run_prep

SIZE = 24
images = arrays(np.uint8, (SIZE, SIZE, 3), elements=st.integers(0, 255))
masks = arrays(np.bool_, (SIZE, SIZE))


@settings(max_examples=300, deadline=None)
@given(crop=images, render=images, coverage=masks, region=masks)
def test_composition_never_shows_the_photo_in_the_face_region(
    crop, render, coverage, region
) -> None:
    params = MaskParams(size=SIZE)
    try:
        out = compose(crop, render.astype(np.float32) / 255, coverage, region, params)
    except MaskFailure:
        return
    covered = region & coverage
    for name, background in (("overlay", None), ("mask_only", 255), ("mask_only_black", 0)):
        image = out[name]
        assert (image[covered] == render[covered]).all()
        uncovered = region & ~coverage
        expected = 255 if background is None else background
        assert (image[uncovered] == expected).all(), name
        if background is not None:
            assert (image[~region] == background).all()
    assert (out["overlay"][~region] == crop[~region]).all()
    same = (out["overlay"][region] == crop[region]).all(axis=-1).mean()
    assert same <= params.max_photo_share
    assert not np.array_equal(out["overlay"][region], crop[region])


def test_a_render_equal_to_the_photo_is_refused() -> None:
    crop = np.full((SIZE, SIZE, 3), 200, np.uint8)
    region = np.ones((SIZE, SIZE), bool)
    with pytest.raises(MaskFailure, match="equal the photo"):
        compose(crop, crop.astype(np.float32) / 255, region, region, MaskParams(size=SIZE))


class _Failing(Reconstructor, Renderer, FaceCut):
    name, assets = "failing", ()

    def __init__(self, error: Exception) -> None:
        self.error = error

    def reconstruct(self, crop):
        raise self.error

    def render(self, mesh, size):
        raise self.error

    def region(self, crop, mesh):
        raise self.error


class _Square(Reconstructor, Renderer, FaceCut):
    """A flat square mesh over the whole crop (wiring only)."""

    name, assets = "square", ()

    def reconstruct(self, crop) -> FaceMesh:
        v = np.array([[20, 20, 0], [200, 20, 0], [200, 200, 0], [20, 200, 0]], float)
        return FaceMesh(v, np.array([[0, 2, 1], [0, 3, 2]]))

    def render(self, mesh, size) -> Rendering:
        image = np.ones((size, size, 3), np.float32)
        image[20:200, 20:200] = 0.5
        coverage = np.zeros((size, size), bool)
        coverage[20:200, 20:200] = True
        return Rendering(image, coverage)

    def region(self, crop, mesh):
        region = np.zeros(crop.shape[:2], bool)
        region[30:190, 30:190] = True
        return region


@pytest.fixture(scope="module")
def prep_run(lfw20, default_prep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prep")
    run_prep(lfw20.subset(4, seed=5), out, default_prep, progress=False)
    return out


@pytest.mark.parametrize("where", ["reconstruct", "render", "region"])
@pytest.mark.parametrize("error", [MaskFailure("no face"), RuntimeError("backend crashed")])
def test_a_failure_anywhere_writes_nothing(prep_run: Path, where: str, error) -> None:
    parts = {"reconstruct": _Square(), "render": _Square(), "region": _Square()}
    parts[where] = _Failing(error)
    stage = MaskStage(
        DigitalMask(parts["reconstruct"], parts["render"], parts["region"]),
        cache=Cache(enabled=False),
    )
    stage.backend = f"failing-{where}"
    if where == "reconstruct" and not isinstance(error, MaskFailure):
        # A reconstructor that crashes on every crop of a batch is broken: a loud stop.
        with pytest.raises(DmbenchError, match=r"failed on every crop.*backend crashed"):
            run_mask(prep_run, stage, progress=False)
        assert not list((prep_run / "masks" / stage.backend).rglob("*.png"))
        return
    run = run_mask(prep_run, stage, progress=False)
    assert run.frames and all(f.result.status == "failed" for f in run.frames)
    assert all(f.result.reason for f in run.frames)
    written = [p for p in (prep_run / "masks" / stage.backend).rglob("*.png")]
    assert written == []
    table = (prep_run / "masks" / stage.backend / "masks.csv").read_text()
    assert table.count("failed") == len(run.frames)


def test_wiring_writes_three_outputs_per_crop(prep_run: Path) -> None:
    stage = MaskStage(DigitalMask(_Square(), _Square(), _Square()), cache=Cache(enabled=False))
    run = run_mask(prep_run, stage, progress=False)
    assert all(f.result.status == "masked" for f in run.frames)
    for variant in VARIANTS:
        assert len(list((run.out_dir / variant).rglob("*.png"))) == len(run.frames)


def test_stale_outputs_are_removed_when_a_crop_now_fails(prep_run: Path) -> None:
    good = MaskStage(DigitalMask(_Square(), _Square(), _Square()), cache=Cache(enabled=False))
    good.backend = "flaky"
    run_mask(prep_run, good, progress=False)
    bad = MaskStage(
        DigitalMask(_Failing(MaskFailure("gone")), _Square(), _Square()), cache=Cache(enabled=False)
    )
    bad.backend = "flaky"
    run_mask(prep_run, bad, progress=False)
    assert list((prep_run / "masks" / "flaky").rglob("*.png")) == []


def _bad_crops() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "blank grey": np.full((224, 224, 3), 128, np.uint8),
        "all white": np.full((224, 224, 3), 255, np.uint8),
        "all black": np.zeros((224, 224, 3), np.uint8),
        "noise": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
    }


@pytest.fixture(scope="module")
def default_mask(store) -> MaskStage:
    return MaskStage.from_names(store=store, cache=Cache(enabled=False))


@pytest.mark.parametrize("kind", list(_bad_crops()))
def test_bad_crops_fail_closed(default_mask, kind: str) -> None:
    result = default_mask.run_crop(_bad_crops()[kind])
    assert result.status == "failed" and result.images is None and result.reason


def test_face_too_small_fails_closed(default_mask, sample_photo) -> None:
    import cv2

    from benchmark.imageio import load_image

    face = cv2.resize(load_image(sample_photo).rgb, (24, 24))
    crop = np.full((224, 224, 3), 128, np.uint8)
    crop[100:124, 100:124] = face
    result = default_mask.run_crop(crop)
    assert result.status == "failed" and result.images is None


def test_wrong_crop_shape_fails_closed(default_mask) -> None:
    result = default_mask.run_crop(np.zeros((100, 224, 3), np.uint8))
    assert result.status == "failed" and "224x224" in result.reason


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_real_stage_property_masked_or_nothing(default_mask, sample_photo, data) -> None:
    """Any crop — a real face under random occlusion, shift and contrast, or noise — is
    either masked with the face region changed, or fails with no image at all."""
    import cv2

    from benchmark.imageio import load_image

    face = cv2.resize(load_image(sample_photo).rgb, (224, 224))
    shift = data.draw(st.integers(-60, 60))
    gain = data.draw(st.floats(0.2, 1.5))
    crop = np.clip(np.roll(face, shift, axis=1).astype(float) * gain, 0, 255).astype(np.uint8)
    x, y, w, h = (data.draw(st.integers(0, 200)) for _ in range(4))
    crop[y : y + h, x : x + w] = data.draw(st.integers(0, 255))
    result = default_mask.run_crop(crop)
    if result.status == "failed":
        assert result.images is None and result.reason
    else:
        # Every face-region pixel is replaced except at most max_photo_share of them that
        # happen to equal the photo; nothing outside the region changes.
        changed = (result.images["overlay"] != crop).any(axis=-1)
        region_px = result.info["region_px"]
        assert region_px > 0
        assert changed.sum() >= (1 - default_mask.params.max_photo_share) * region_px
        assert changed.sum() <= region_px


class _Batched(_Square):
    """A reconstructor that overrides ``reconstruct_batch``: counts its calls; can fail as
    a whole."""

    def __init__(self, fail: bool = False) -> None:
        self.calls, self.fail = [], fail

    def reconstruct(self, crop) -> FaceMesh:
        raise AssertionError("a batching reconstructor is called through reconstruct_batch")

    def reconstruct_batch(self, crops):
        self.calls.append(len(crops))
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        return [
            MaskFailure("no face") if i == 1 else _Square.reconstruct(self, c)
            for i, c in enumerate(crops)
        ]


def test_batches_go_through_reconstruct_batch_once(prep_run: Path, tmp_path: Path) -> None:
    reconstructor = _Batched()
    stage = MaskStage(DigitalMask(reconstructor, _Square(), _Square()), cache=Cache(tmp_path))
    run = run_mask(prep_run, stage, progress=False, batch_size=64)
    assert reconstructor.calls == [len(run.frames)]
    statuses = [f.result.status for f in run.frames]
    assert statuses[1] == "failed" and statuses.count("masked") == len(run.frames) - 1
    run_mask(prep_run, stage, progress=False, batch_size=64)
    assert reconstructor.calls == [len(run.frames)]  # all served by the cache the second time


def test_a_systemic_batch_failure_stops_the_run(prep_run: Path, tmp_path: Path) -> None:
    """Out of memory on every crop: a loud error, and nothing cached that would hide it."""

    broken = MaskStage(
        DigitalMask(_Batched(fail=True), _Square(), _Square()), cache=Cache(tmp_path)
    )
    with pytest.raises(DmbenchError, match="CUDA out of memory"):
        run_mask(prep_run, broken, progress=False, batch_size=2)
    healthy = _Batched()
    again = MaskStage(DigitalMask(healthy, _Square(), _Square()), cache=Cache(tmp_path))
    run = run_mask(prep_run, again, progress=False, batch_size=2)
    assert sum(healthy.calls) == len(run.frames)  # nothing was cached from the failure


class _OneBadCrop(_Batched):
    """A batch with one crop that crashes the network: the others must still be masked."""

    def reconstruct_batch(self, crops):
        self.calls.append(len(crops))
        if len(crops) > 1 or len(self.calls) == 2:  # the batch, then the first single crop
            raise RuntimeError("bad input")
        return [_Square.reconstruct(self, c) for c in crops]


def test_one_crashing_crop_does_not_sink_its_batch(prep_run: Path, tmp_path: Path) -> None:
    stage = MaskStage(DigitalMask(_OneBadCrop(), _Square(), _Square()), cache=Cache(tmp_path))
    run = run_mask(prep_run, stage, progress=False, batch_size=64)
    statuses = [f.result.status for f in run.frames]
    assert statuses[0] == "failed" and "crashed" in run.frames[0].result.reason
    assert statuses[1:] == ["masked"] * (len(statuses) - 1)


def test_a_warm_run_decodes_no_crop_and_rewrites_no_output(
    prep_run: Path, tmp_path: Path, monkeypatch
) -> None:
    """The crops' decoded digests are remembered (file sha256 → pixels' sha256), so a warm
    run finds every key without decoding a crop; its outputs, already there with the same
    bytes, are not written again. A crop whose bytes change is decoded again."""
    import benchmark.imageio as imageio
    from benchmark.pipeline.mask import stage as mask_stage

    stage = MaskStage(DigitalMask(_Square(), _Square(), _Square()), cache=Cache(tmp_path))
    stage.backend = "memo"
    cold = run_mask(prep_run, stage, progress=False)
    decoded, written = [], []
    load, write = mask_stage.load_image, imageio.write_bytes_atomic
    monkeypatch.setattr(mask_stage, "load_image", lambda *a: decoded.append(a[0]) or load(*a))
    monkeypatch.setattr(
        imageio, "write_bytes_atomic", lambda p, d: written.append(p) or write(p, d)
    )
    warm = run_mask(prep_run, stage, progress=False)
    assert decoded == [] and written == []
    assert [f.result.status for f in warm.frames] == [f.result.status for f in cold.frames]
    assert all(f.result.cached for f in warm.frames)
    # Rewrite one crop with other pixels: decoded again, masked again (a new key).
    crop = prep_run / warm.frames[0].crop
    original = crop.read_bytes()
    pixels = imageio.load_image(crop).rgb
    try:
        imageio.write_png_atomic(crop, 255 - pixels)
        again = run_mask(prep_run, stage, progress=False)
    finally:
        crop.write_bytes(original)
    assert decoded == [crop]
    assert not again.frames[0].result.cached and all(f.result.cached for f in again.frames[1:])
