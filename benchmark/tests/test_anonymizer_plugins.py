"""Any anonymizer through the mask stage: plug-ins by entry point or ``module:callable``, a
folder of images made elsewhere, and the built-ins, all checked the same way (fail closed).

The plug-ins here are written to a temporary module so that they are loaded the way a
user's are (by import); they run on real LFW prep crops."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cache import Cache
from benchmark.cli import main
from benchmark.errors import DmbenchError, UsageError
from benchmark.imageio import load_image
from benchmark.pipeline.executor import ProcessExecutor
from benchmark.pipeline.mask.anonymizers import ENTRY_POINT_GROUP, entry_points
from benchmark.pipeline.mask.stage import VARIANTS, MaskStage, run_mask
from benchmark.pipeline.prep.stage import run_prep

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prep_run(lfw20, default_prep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prep")
    run_prep(lfw20.subset(4, seed=5), out, default_prep, progress=False)
    return out


def _crops(prep_run: Path) -> dict[str, np.ndarray]:
    with open(prep_run / "frames.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["crop"]]
    assert rows, "the prep run kept no crop"
    return {row["crop"]: load_image(prep_run / row["crop"]).rgb for row in rows}


def _run(prep_run: Path, spec: str, cache: Cache | None = None, **kwargs):
    stage = MaskStage.from_names(anonymizer=spec, cache=cache or Cache(enabled=False))
    return stage, run_mask(prep_run, stage, progress=False, **kwargs)


def _written(prep_run: Path, stage: MaskStage) -> list[Path]:
    return sorted((prep_run / "masks" / stage.backend).rglob("*.png"))


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        ("unchanged", "equal the photo"),
        ("unchanged_copy_with_region", "equal the photo"),
        ("wrong_size", "returned an image of (200, 200, 3) uint8, not 224x224x3 uint8"),
        ("floats", "returned an image of (224, 224, 3) float32"),
        ("wrong_region", "returned a region of (10, 10), not 224x224"),
        ("three_things", "returned a tuple of 3, not (image, region)"),
        ("refuses", "refused: no face I can use"),
        ("one_pixel", "equal the photo"),  # a one-pixel region cannot hide the face's centre
        ("plus_one", "a near-copy of the photo (PSNR"),
    ],
)
def test_a_bad_plugin_output_is_refused_and_recorded(prep_run, plugins, plugin, reason) -> None:
    stage, run = _run(prep_run, f"{plugins}:{plugin}")
    assert run.frames and all(f.result.status == "failed" for f in run.frames)
    assert all(reason in f.result.reason for f in run.frames), run.frames[0].result.reason
    assert _written(prep_run, stage) == []  # fail closed: no image of any variant
    table = (run.out_dir / "masks.csv").read_text()
    assert table.count(",failed,") == len(run.frames)
    record = json.loads((run.out_dir / "run.json").read_text())
    assert record["counts"] == {"failed": len(run.frames)}


def test_a_plugin_that_reuses_its_output_buffer_gets_each_crop_its_own(prep_run, plugins) -> None:
    _, run = _run(prep_run, f"{plugins}:reuses_its_buffer")
    crops = _crops(prep_run)
    assert len(run.frames) > 1 and all(f.result.masked for f in run.frames)
    for item in run.frames:
        assert np.array_equal(item.result.image("overlay"), 255 - crops[item.crop])


def test_a_plugin_that_paints_the_photo_it_was_given_crashes(prep_run, plugins) -> None:
    """The crop is read-only: a plug-in cannot make its photo equal its output."""
    stage = MaskStage.from_names(
        anonymizer=f"{plugins}:paints_the_photo", cache=Cache(enabled=False)
    )
    crop = next(iter(_crops(prep_run).values()))
    result = stage.run_crop(crop)
    assert result.status == "failed" and "anonymizer crashed: ValueError" in result.reason
    assert result.images is None


def test_a_plugin_that_raises_on_some_crops_is_recorded_and_tried_again(
    prep_run, plugins, tmp_path
) -> None:
    import importlib

    crops = _crops(prep_run)
    odd = {rel for rel, crop in crops.items() if int(crop.sum()) % 2}
    assert odd and odd != set(crops), "the test needs crops of both parities"
    cache = Cache(tmp_path / "cache")
    stage, run = _run(prep_run, f"{plugins}:raises_on_odd", cache)
    by_crop = {f.crop: f.result for f in run.frames}
    for rel, result in by_crop.items():
        if rel in odd:
            assert result.status == "failed"
            assert result.reason == "anonymizer crashed: ValueError: odd crop"
        else:
            assert result.status == "masked", result.reason
    assert len(_written(prep_run, stage)) == len(VARIANTS) * (len(crops) - len(odd))
    # A crash is not the crop's verdict: the next run calls the plug-in for those only.
    module = importlib.import_module(plugins)
    module.calls.clear()
    _run(prep_run, f"{plugins}:raises_on_odd", cache)
    assert sorted(module.calls) == sorted(int(crops[rel].sum()) for rel in odd)


def test_a_plugin_that_raises_on_every_crop_stops_with_its_error(prep_run, plugins) -> None:
    before = sorted(prep_run.rglob("*"))
    with pytest.raises(
        DmbenchError, match=r"raises crashed on every crop.*ValueError: model not loaded"
    ):
        _run(prep_run, f"{plugins}:raises")
    assert sorted(prep_run.rglob("*")) == before  # nothing written, nothing removed


def test_a_refusal_is_cached_like_any_verdict(prep_run, plugins, tmp_path) -> None:
    cache = Cache(tmp_path / "cache")
    _run(prep_run, f"{plugins}:refuses", cache)
    _, run = _run(prep_run, f"{plugins}:refuses", cache)
    assert all(f.result.cached and f.result.status == "failed" for f in run.frames)


def test_a_plugin_without_a_region_is_checked_on_the_face_cut(prep_run, plugins) -> None:
    stage, run = _run(prep_run, f"{plugins}:inverted")
    crops = _crops(prep_run)
    assert stage.backend == f"{plugins}.inverted+mediapipe-forehead"
    masked = [f for f in run.frames if f.result.masked]
    assert masked, [f.result.reason for f in run.frames]
    for item in masked:
        crop = crops[item.crop]
        assert np.array_equal(item.result.image("overlay"), 255 - crop)
        region = stage.anonymizer.cut.region(crop, None)
        assert item.result.info["region_px"] == int(region.sum())
        mask_only = item.result.image("mask_only")
        assert (mask_only[~region] == 255).all() and np.array_equal(
            mask_only[region], 255 - crop[region]
        )


def test_plugins_are_loaded_by_module_path_and_classes_made_once(plugins, prep_run) -> None:
    colon = MaskStage.from_names(anonymizer=f"{plugins}:Counted", cache=Cache(enabled=False))
    dotted = MaskStage.from_names(anonymizer=f"{plugins}.Counted", cache=Cache(enabled=False))
    assert colon.backend == dotted.backend == f"{plugins}.Counted+mediapipe-forehead"
    assert colon.key("0" * 64) == dotted.key("0" * 64)  # the same code, the same key
    module = __import__(plugins)
    assert module.Counted.made == 2  # once per stage built, never per crop
    crop = next(iter(_crops(prep_run).values()))
    assert colon.run_crop(crop).masked and colon.run_crop(crop).masked
    assert module.Counted.made == 2
    # A crop with no face on it: nothing to check the output against, so nothing written.
    flat = colon.run_crop(np.full((224, 224, 3), 100, np.uint8))
    assert not flat.masked and "no face found on the crop to check" in flat.reason
    for bad, match in [
        ("no_such_module_xyz:anonymize", "cannot be loaded: ModuleNotFoundError"),
        (f"{plugins}:missing", "cannot be loaded: AttributeError"),
        (f"{plugins}:calls", "is a list, not a callable"),
        ("nothing", "unknown anonymizer 'nothing'"),
    ]:
        with pytest.raises(UsageError, match=match):
            MaskStage.from_names(anonymizer=bad, cache=Cache(enabled=False))


def test_an_edited_plugin_gets_a_new_cache_key(plugins, tmp_path) -> None:
    spec = f"{plugins}:inverted"
    before = MaskStage.from_names(anonymizer=spec, cache=Cache(enabled=False)).key("0" * 64)
    source = tmp_path / f"{plugins}.py"
    source.write_text(source.read_text().replace("return 255 - crop  #", "return 254 - crop  #"))
    after = MaskStage.from_names(anonymizer=spec, cache=Cache(enabled=False)).key("0" * 64)
    assert before != after


def test_builtins_by_anonymizer_name_are_the_same_stages(store) -> None:
    """Every built-in goes through the same path: by --anonymizer name, the same stage and
    the same cache key as by its old options."""
    off = Cache(enabled=False)
    pairs = [
        (MaskStage.from_names(anonymizer="blank", cache=off), MaskStage.for_control("blank")),
        (
            MaskStage.from_names(anonymizer="mediapipe-mesh", cache=off),
            MaskStage.from_names("mediapipe-mesh", cache=off),
        ),
    ]
    for by_name, by_option in pairs:
        assert by_name.backend == by_option.backend
        assert by_name.key("0" * 64) == by_option.key("0" * 64)
        assert by_name.recipe.names == by_option.recipe.names
    assert pairs[0][0].anonymizer.kind == "control" and pairs[0][0].is_control
    assert pairs[1][0].anonymizer.kind == "reconstruction"


def test_a_plugin_runs_in_worker_processes_with_the_same_results(prep_run, plugins) -> None:
    spec = f"{plugins}:inverted_everywhere"
    _, serial = _run(prep_run, spec)
    with ProcessExecutor(2) as pool:
        _, pooled = _run(prep_run, spec, executor=pool, batch_size=2)
    assert [f.result.encoded for f in serial.frames] == [f.result.encoded for f in pooled.frames]
    assert all(f.result.masked for f in pooled.frames)


# -- folder mode ------------------------------------------------------------------------
def test_folder_mode_reads_mirrored_images_and_records_what_is_missing(prep_run, tmp_path) -> None:
    crops = _crops(prep_run)
    assert len(crops) >= 6, "the test needs six crops"
    folder = tmp_path / "anonymized"
    planned = {}
    for n, (rel, crop) in enumerate(sorted(crops.items())):
        target = folder / Path(rel).relative_to("crops")
        target.parent.mkdir(parents=True, exist_ok=True)
        kinds = ["good", "missing", "corrupt", "small", "with-region", "corner-only", "good"]
        kind = kinds[min(n, 6)]
        planned[rel] = kind
        if kind == "missing":
            continue
        if kind == "corrupt":
            target.write_bytes(b"not an image at all")
        elif kind == "small":
            Image.fromarray(255 - crop).resize((200, 200)).save(target)
        else:
            Image.fromarray(255 - crop).save(target)
        if kind == "with-region":
            region = np.zeros(crop.shape[:2], np.uint8)
            region[50:150, 60:160] = 255
            Image.fromarray(region).save(target.with_name(target.stem + ".region.png"))
        if kind == "corner-only":  # the photo, a corner changed, and a region saying so
            image = crop.copy()
            image[:20, :20] = 0
            Image.fromarray(image).save(target)
            region = np.zeros(crop.shape[:2], np.uint8)
            region[:20, :20] = 255
            Image.fromarray(region).save(target.with_name(target.stem + ".region.png"))
    cache = Cache(tmp_path / "cache")
    stage = MaskStage.from_names(anonymized=folder, cache=cache)
    run = run_mask(prep_run, stage, progress=False)
    assert stage.backend.startswith("folder-anonymized-") and stage.backend.endswith(
        "+mediapipe-forehead"
    )
    by_crop = {f.crop: f.result for f in run.frames}
    for rel, kind in planned.items():
        result = by_crop[rel]
        if kind in ("good", "with-region"):
            assert result.status == "masked", (kind, result.reason)
            assert np.array_equal(result.image("overlay"), 255 - crops[rel])
        else:
            assert result.status == "failed" and result.encoded is None
            expected = {
                "missing": "anonymized image missing",
                "corrupt": "not a readable image",
                "small": "returned an image of (200, 200, 3) uint8",
                "corner-only": "equal the photo",
            }[kind]
            assert expected in result.reason, result.reason
    region_item = next(r for r, k in planned.items() if k == "with-region")
    # The declared region, widened to the face's centre that every output must change.
    assert by_crop[region_item].info["region_px"] >= 100 * 100
    assert not (cache.root / "mask").exists() or not any((cache.root / "mask").iterdir())
    assert len(_written(prep_run, stage)) == len(VARIANTS) * sum(
        k in ("good", "with-region") for k in planned.values()
    )
    # The CLI: the same run, and a clear refusal of two sources at once.
    assert main(["mask", str(prep_run), "--anonymized", str(folder), "--quiet"]) == 0
    assert main(["mask", str(prep_run), "--anonymized", str(folder), "--control", "blank"]) == 2
    assert main(["mask", str(prep_run), "--anonymized", str(tmp_path / "none")]) == 2


# -- the example plug-in of the README ----------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "anonymizer-plugin"


@pytest.fixture(scope="module")
def example_installed() -> None:
    if "posterize" not in entry_points():
        message = (
            f"the example plug-in is not installed (entry point group {ENTRY_POINT_GROUP}): "
            f"pip install {EXAMPLE}"
        )
        if os.environ.get("CI"):  # CI installs it (nox -s tests): there it must run
            pytest.fail(message)
        pytest.skip(message)
    assert importlib.util.find_spec("dmbench_posterize") is not None


def test_the_example_plugin_runs_from_the_command_line(prep_run, example_installed, capsys) -> None:
    assert main(["list", "anonymizers", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["posterize"]["kind"] == "plugin"
    assert {"mediapipe-mesh", "sfm-eos", "blank", "blur", "pixelate", "blackout"} <= set(listed)
    assert main(["mask", str(prep_run), "--anonymizer", "posterize", "--quiet"]) == 0
    from dmbench_posterize import face_oval

    out = prep_run / "masks" / "posterize+mediapipe-forehead"
    with open(out / "masks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["status"] == "masked" for row in rows), rows
    oval = face_oval(224, 224)
    for row in rows:
        crop = load_image(prep_run / row["crop"]).rgb
        overlay = load_image(prep_run / row["overlay"]).rgb
        assert np.array_equal(overlay[~oval], crop[~oval])  # only the oval changed
        assert (overlay[oval] != crop[oval]).any(axis=-1).mean() > 0.95
    record = json.loads((out / "run.json").read_text())
    assert record["backends"] == {"anonymizer": "posterize", "cut": "mediapipe-forehead"}


# -- utility ------------------------------------------------------------------------------
def test_utility_of_a_photo_against_itself_is_perfect_and_a_blank_keeps_nothing(
    prep_run, store
) -> None:
    from benchmark.pipeline.mask.utility import UtilityStage, summarize

    utility = UtilityStage.from_names(store=store, cache=Cache(enabled=False))
    crops = list(_crops(prep_run).values())
    same = [utility.measure(crop, crop) for crop in crops]
    assert all(m["reference"] and m["detected"] for m in same)
    for name in ("nme_mediapipe", "nme_dlib68", "yaw_diff", "pitch_diff", "roll_diff"):
        assert all(m[name] == 0.0 for m in same), name
    blank = MaskStage.from_names(anonymizer="blank", store=store, cache=Cache(enabled=False))
    grey = [utility.measure(crop, blank.run_crop(crop).image("overlay")) for crop in crops]
    assert not any(m["detected"] for m in grey)
    assert all(m["nme_mediapipe"] is None for m in grey)  # no face left for MediaPipe
    # The digital mask keeps the face's geometry: its landmarks are nearer the photo's than
    # the mean shape dlib's predictor answers on a blank region.
    mask = MaskStage.from_names(
        anonymizer="mediapipe-mesh", store=store, cache=Cache(enabled=False)
    )
    masked = [mask.run_crop(crop) for crop in crops]
    kept = [
        utility.measure(c, r.image("overlay"))
        for c, r in zip(crops, masked, strict=True)
        if r.masked
    ]
    assert len(kept) >= len(crops) - 1
    assert np.mean([m["nme_dlib68"] for m in kept]) < np.mean([m["nme_dlib68"] for m in grey])
    assert all(m["nme_mediapipe"] is not None and m["nme_mediapipe"] < 0.2 for m in kept)
    summary = summarize(same + grey)
    assert summary["crops"] == 2 * len(crops) and summary["detected_rate"] == 0.5
    assert summary["nme_mediapipe_n"] == len(crops) and summary["nme_mediapipe_mean"] == 0.0


def test_two_anonymizers_under_one_name_are_refused(plugins, tmp_path) -> None:
    """``module:a`` and ``module.a`` are one plug-in's two spellings: one name, one output
    folder; an evaluation of both would mix their images, so it stops before any work."""
    argv = ["evaluate", "--anonymizer", f"{plugins}:inverted", "--anonymizer"]
    argv += [f"{plugins}.inverted", "--attacker-people", "0", "--identities", "2"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert not (tmp_path / "out" / "prep").exists()
