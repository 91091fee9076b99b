"""Controls fill the cut's region without any reconstruction, fail closed like a mask, and
are scored with the photo's face geometry (where their own face cannot be detected)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.cache import Cache
from benchmark.pipeline.mask.anonymizers import ControlFill
from benchmark.pipeline.mask.controls import BLANK_GREY, BLUR_SIGMA_PX, PIXEL_BLOCK_PX
from benchmark.pipeline.mask.stage import VARIANTS, MaskStage
from benchmark.pipeline.mask.types import CONTROLS, CUTS, FaceCut

pytestmark = pytest.mark.integration
CUT = "mediapipe-hull"


@pytest.fixture(scope="module")
def crops(kept_crops) -> list[np.ndarray]:
    return kept_crops[:4]


@pytest.fixture(scope="module")
def regions(store, crops) -> list[np.ndarray]:
    cut = CUTS.create(CUT, store=store)
    return [cut.region(crop, None) for crop in crops]


@pytest.mark.parametrize("name", ["blank", "blur", "pixelate", "blackout"])
def test_each_control_replaces_exactly_the_cuts_region(name, store, crops, regions) -> None:
    stage = MaskStage.for_control(name, CUT, store=store, cache=Cache(enabled=False))
    assert stage.is_control and stage.backend == f"{name}+{CUT}"
    for crop, region, result in zip(crops, regions, stage.run_crops(crops), strict=True):
        assert result.status == "masked", result.reason
        overlay = result.image("overlay")
        assert (overlay[~region] == crop[~region]).all()  # the surroundings stay
        inside = (overlay[region] == crop[region]).all(axis=-1).mean()
        assert inside <= 0.05  # ... and the face does not
        assert (result.image("mask_only")[~region] == 255).all()
        assert (result.image("mask_only_black")[~region] == 0).all()
        assert result.vertices is None  # no geometry: nothing for the leakage probe
        painted = overlay[region].astype(int)
        if name == "blank":
            assert (painted == round(BLANK_GREY * 255)).all()
        if name == "blackout":
            assert (painted == 0).all()
        if name == "blur":  # smoother than the photo, but the photo's colours
            assert (
                np.abs(np.diff(overlay.astype(int), axis=1))[region[:, 1:]].mean()
                < np.abs(np.diff(crop.astype(int), axis=1))[region[:, 1:]].mean()
            )
        if name == "pixelate":  # constant inside every block
            block = overlay[:PIXEL_BLOCK_PX, :PIXEL_BLOCK_PX].reshape(-1, 3)
            row, col = np.argwhere(region)[0] // PIXEL_BLOCK_PX * PIXEL_BLOCK_PX
            tile = overlay[row : row + PIXEL_BLOCK_PX, col : col + PIXEL_BLOCK_PX]
            inside_tile = region[row : row + PIXEL_BLOCK_PX, col : col + PIXEL_BLOCK_PX]
            assert len(np.unique(tile[inside_tile].reshape(-1, 3), axis=0)) == 1
            assert block.shape[1] == 3


def test_controls_state_their_parameters_and_key_the_cache_with_them(store) -> None:
    settings = {name: CONTROLS.create(name, store=store).settings() for name in CONTROLS.names()}
    assert settings["blank"] == {"grey": BLANK_GREY}
    assert settings["blur"] == {"sigma_px": BLUR_SIGMA_PX}
    assert settings["pixelate"] == {"block_px": PIXEL_BLOCK_PX}
    keys = {
        MaskStage.for_control(name, CUT, store=store).key("same-input") for name in CONTROLS.names()
    }
    assert len(keys) == len(CONTROLS.names())


def test_a_control_that_would_show_the_photo_is_refused(store) -> None:
    """A photo whose face is already the blank's grey: the 'control' would equal it."""
    grey = round(BLANK_GREY * 255)
    crop = np.full((224, 224, 3), grey, np.uint8)

    class WholeCrop(FaceCut):
        name, assets = "whole-crop", ()

        def region(self, crop, mesh):
            return np.ones(crop.shape[:2], bool)

    stage = MaskStage(ControlFill(CONTROLS.create("blank", store=store), WholeCrop()))
    result = stage.run_crop(crop)
    assert result.status == "failed" and "equal the photo" in result.reason
    assert result.images is None and result.encoded is None


def test_a_control_fails_closed_where_the_cut_finds_no_face(store) -> None:
    stage = MaskStage.for_control("blur", CUT, store=store, cache=Cache(enabled=False))
    result = stage.run_crop(np.full((224, 224, 3), 90, np.uint8))
    assert result.status == "failed" and "no face" in result.reason
    assert all(result.encoded is None for _ in VARIANTS)


@pytest.mark.parametrize("embedder", ["sface", "dlib-resnet"])
def test_photo_alignment_embeds_a_blank_face_the_embedder_cannot_detect(
    embedder, store, crops
) -> None:
    from benchmark.pipeline.recognize.stage import RecognizeStage

    stage = RecognizeStage.from_names(embedder, store=store, cache=Cache(enabled=False))
    control = MaskStage.for_control("blank", CUT, store=store, cache=Cache(enabled=False))
    overlays = [r.image("overlay") for r in control.run_crops(crops)]
    ids = [f"c{i}" for i in range(len(crops))]
    own = stage.embed(dict(zip(ids, overlays, strict=True)))
    from benchmark.imageio import encode_png

    photos = {i: encode_png(crop) for i, crop in zip(ids, crops, strict=True)}
    aligned = stage.embed(dict(zip(ids, overlays, strict=True)), references=photos)
    assert all(aligned[i].vector is not None for i in ids)
    # The original protocol mostly finds no face on a grey face (0 of 4 here).
    assert sum(own[i].vector is not None for i in ids) < len(ids)
    # A photo aligned on itself is the photo embedded as usual.
    selves = stage.embed(dict(zip(ids, crops, strict=True)))
    again = stage.embed(dict(zip(ids, crops, strict=True)), references=photos)
    for i in ids:
        assert np.allclose(selves[i].vector, again[i].vector, atol=1e-5)


def test_photo_alignment_records_a_photo_without_a_face(store, crops) -> None:
    from benchmark.imageio import encode_png
    from benchmark.pipeline.recognize.stage import RecognizeStage

    stage = RecognizeStage.from_names("sface", store=store, cache=Cache(enabled=False))
    blank_photo = encode_png(np.full((224, 224, 3), 128, np.uint8))
    out = stage.embed({"x": crops[0]}, references={"x": blank_photo})
    assert out["x"].vector is None and out["x"].reason.startswith("on the photo: no face")
