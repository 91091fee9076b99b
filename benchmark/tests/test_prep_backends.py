"""Backend wiring that real weights cannot be had for here, and the YouTube Faces layout.

* PFLD: the checkpoint is user-supplied. A STAND-IN with seeded random weights (in the
  upstream checkpoint format) goes through the real asset store (trust-on-first-use,
  since the manifest has no sha256 for it yet) and the real prep stage. Its angles are
  meaningless; the test proves the wiring, not the model.
* YouTube Faces: a folder in its layout is built from real LFW photos (one identity's
  photos become frames of one "video"), so same-session selection really draws two
  different frames per video.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from benchmark.assets import AssetStore, load_manifest
from benchmark.cache import Cache
from benchmark.datasets import open_dataset
from benchmark.errors import AssetError
from benchmark.pipeline.prep.stage import PrepStage, run_prep


def _offline_store(tmp_path: Path, search: list[Path]) -> AssetStore:
    base = AssetStore()
    return AssetStore(
        load_manifest(),
        cache_dir=tmp_path / "cache",
        search_dirs=search + base.search_dirs,
        allow_download=False,
    )


def test_missing_pfld_weights_are_a_clear_error(tmp_path: Path) -> None:
    store = _offline_store(tmp_path, [])
    store.search_dirs = [p for p in store.search_dirs if not (p / "models/pfld").exists()]
    with pytest.raises(AssetError) as info:
        PrepStage.from_names(pose="pfld", store=store)
    message = str(info.value)
    assert "pfld" in message and "checkpoint.pth.tar" in message
    assert "dmbench assets import pfld" in message


def test_pfld_pose_backend_runs_with_a_standin_checkpoint(tmp_path: Path, lfw20) -> None:
    torch = pytest.importorskip("torch", reason="the pfld extra (torch) is not installed")
    from benchmark.pipeline.prep.pfld import build_pfld_backbone

    torch.manual_seed(0)
    folder = tmp_path / "assets" / "models" / "pfld"
    folder.mkdir(parents=True)
    torch.save({"plfd_backbone": build_pfld_backbone().state_dict()}, folder / "checkpoint.pth.tar")
    store = _offline_store(tmp_path, [tmp_path / "assets"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage = PrepStage.from_names("yunet", "pfld", store=store, cache=Cache(enabled=False))
    assert any("first use" in str(w.message) for w in caught), "TOFU is announced"
    subset = lfw20.subset(3, seed=0)
    run = run_prep(subset, tmp_path / "run", stage, progress=False)
    posed = [r for r in run.results if r.yaw is not None]
    assert posed, "the stand-in network produced landmarks and the formulas gave angles"
    for res in posed:
        assert float(res.yaw).is_integer() and float(res.pitch).is_integer()  # int() as upstream
        assert res.status in {"kept", "dropped"}


def _make_ytf_from_lfw(lfw, root: Path, identities: int = 4) -> None:
    """<Name>/<video>/<video>.<frame>.jpg with each photo copied as a frame."""
    for name in lfw.subset(identities, seed=3, min_sessions=4).identities():
        photos = [f for f in lfw.frames if f.identity == name]
        half = len(photos) // 2
        for video, chunk in ((1, photos[:half]), (2, photos[half:])):
            for frame_number, photo in enumerate(chunk, start=7):
                target = (
                    root / "frame_images_DB" / name / str(video) / f"{video}.{frame_number}.jpg"
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(photo.path, target)


@pytest.mark.integration
def test_youtube_faces_layout_same_session_selection(lfw, default_prep, tmp_path: Path) -> None:
    _make_ytf_from_lfw(lfw, tmp_path / "ytf")
    dataset = open_dataset(tmp_path / "ytf")
    assert dataset.layout == "youtube-faces"
    run = run_prep(dataset, tmp_path / "run", default_prep, progress=False)
    assert run.selections, "some video has two kept frames"
    for sel in run.selections:
        assert sel.database != sel.query
        assert sel.database.split("/")[:2] == sel.query.split("/")[:2]  # same video
    kept = {(r.frame.identity, r.frame.session) for r in run.results if r.status == "kept"}
    multi = {
        k
        for k in kept
        if sum(r.status == "kept" and (r.frame.identity, r.frame.session) == k for r in run.results)
        >= 2
    }
    assert {(s.identity, s.session) for s in run.selections} == multi
    crops = list((tmp_path / "run" / "crops").rglob("*_prep.png"))
    assert len(crops) == 2 * len(run.selections)
