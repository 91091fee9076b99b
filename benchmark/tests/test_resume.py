"""Prep interrupted part-way (Ctrl-C) and run again: finished frames come from the cache,
the result equals an uninterrupted run, and the cache holds no corrupt entry.

Runs on real LFW photos laid out as YouTube Faces videos (one identity's photos are one
video), so the selection really draws two of several kept frames per session.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import benchmark.cache
from benchmark.cache import Cache
from benchmark.datasets import Dataset, open_dataset
from benchmark.pipeline.prep.stage import PrepRun, PrepStage, run_prep
from benchmark.pipeline.prep.types import Detection, FaceDetector

pytestmark = pytest.mark.integration


class CountingDetector(FaceDetector):
    """The real detector, counting calls and raising KeyboardInterrupt on call ``stop_at``
    (what Ctrl-C does in the middle of a model call)."""

    def __init__(self, inner, stop_at: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.assets = inner.assets
        self.stop_at = stop_at
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner.detect(rgb)


@pytest.fixture(scope="module")
def videos(lfw: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Three identities, up to six photos each, as ``frame_images_DB/<Name>/1/1.<i>.jpg``."""
    root = tmp_path_factory.mktemp("resume_ytf")
    for name in lfw.subset(3, seed=5, min_sessions=4).identities():
        photos = [f for f in lfw.frames if f.identity == name][:6]
        for i, photo in enumerate(photos):
            target = root / "frame_images_DB" / name / "1" / f"1.{i}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo.path, target)
    return open_dataset(root)


def _stage(default_prep: PrepStage, store, cache: Cache, stop_at: int | None = None):
    detector = CountingDetector(default_prep.detector, stop_at)
    stage = PrepStage(detector, default_prep.pose, default_prep.params, cache, store)
    return stage, detector


def _cache_entries(cache: Cache) -> tuple[list[Path], list[Path]]:
    """(entry folders, leftover temporary folders) of the prep stage."""
    folders = [p for p in (cache.root / "prep").glob("*/*") if p.is_dir()]
    return (
        [p for p in folders if not p.name.startswith(".tmp-")],
        [p for p in folders if p.name.startswith(".tmp-")],
    )


def _assert_entries_whole(cache: Cache) -> int:
    """Every entry has a readable meta.json and files that match their hashes."""
    entries, _ = _cache_entries(cache)
    for folder in entries:
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["record"]["status"] in {"kept", "dropped", "error"}, folder
        for name, digest in meta["files"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, folder
        assert sorted(p.name for p in folder.iterdir()) == sorted(["meta.json", *meta["files"]])
    return len(entries)


def _assert_same_outcome(run: PrepRun, ref: PrepRun, out: Path, ref_out: Path) -> None:
    assert [r.frame for r in run.results] == [r.frame for r in ref.results]
    assert [r.record() for r in run.results] == [r.record() for r in ref.results]
    assert run.selections == ref.selections
    assert (out / "selection.csv").read_text() == (ref_out / "selection.csv").read_text()

    def table(folder: Path) -> list[dict[str, str]]:
        rows = list(csv.DictReader((folder / "frames.csv").read_text().splitlines()))
        return [{k: v for k, v in row.items() if k != "cached"} for row in rows]

    assert table(out) == table(ref_out)
    crops = sorted(p.relative_to(ref_out) for p in (ref_out / "crops").rglob("*.png"))
    assert crops == sorted(p.relative_to(out) for p in (out / "crops").rglob("*.png"))
    for rel in crops:
        assert (out / rel).read_bytes() == (ref_out / rel).read_bytes()


@pytest.mark.parametrize("lazy", [False, True], ids=["exhaustive", "lazy"])
def test_interrupted_prep_resumes_from_the_cache(
    videos: Dataset, default_prep: PrepStage, store, tmp_path: Path, lazy: bool
) -> None:
    ref_stage, _ = _stage(default_prep, store, Cache(enabled=False))
    ref = run_prep(videos, tmp_path / "ref", ref_stage, progress=False, lazy=lazy)
    assert ref.selections, "some video has two kept frames"
    visited = [r for r in ref.results if r.status != "skipped"]
    stop_at = len(visited) // 2 + 1  # Ctrl-C while detecting the middle frame

    cache_root = tmp_path / "cache"
    stage, detector = _stage(default_prep, store, Cache(cache_root), stop_at=stop_at)
    with pytest.raises(KeyboardInterrupt):
        run_prep(videos, tmp_path / "run", stage, progress=False, lazy=lazy)
    done = stop_at - 1  # frames finished (and cached) before the interrupt
    assert detector.calls == stop_at
    assert not (tmp_path / "run" / "frames.csv").exists(), "no table from a run that stopped"
    assert _assert_entries_whole(Cache(cache_root)) == done
    assert _cache_entries(Cache(cache_root))[1] == [], "no half-built entry left behind"

    # A new process: fresh Cache counters, a detector that is not interrupted.
    stage, detector = _stage(default_prep, store, Cache(cache_root))
    run = run_prep(videos, tmp_path / "run", stage, progress=False, lazy=lazy)
    assert (stage.cache.hits, stage.cache.misses) == (done, len(visited) - done)
    assert detector.calls == len(visited) - done, "finished frames are not detected again"
    cached = [r.cached for r in run.results if r.status != "skipped"]
    assert cached == [True] * done + [False] * (len(visited) - done)
    _assert_same_outcome(run, ref, tmp_path / "run", tmp_path / "ref")
    assert _assert_entries_whole(Cache(cache_root)) == len(visited)


def test_interrupt_while_writing_a_cache_entry(
    videos: Dataset, default_prep: PrepStage, store, tmp_path: Path, monkeypatch
) -> None:
    """Ctrl-C between writing an entry's files and moving it into place: the entry is
    absent (never half there), and the next run recomputes just that frame."""
    ref_stage, _ = _stage(default_prep, store, Cache(enabled=False))
    ref = run_prep(videos, tmp_path / "ref", ref_stage, progress=False)
    total = len(videos.frames)
    stop_at = 3
    real_replace = benchmark.cache.os.replace
    calls = 0

    def interrupted_replace(src, dst) -> None:
        nonlocal calls
        calls += 1
        if calls == stop_at:
            raise KeyboardInterrupt
        real_replace(src, dst)

    cache_root = tmp_path / "cache"
    stage, _ = _stage(default_prep, store, Cache(cache_root))
    with monkeypatch.context() as patch:
        patch.setattr(benchmark.cache.os, "replace", interrupted_replace)
        with pytest.raises(KeyboardInterrupt):
            run_prep(videos, tmp_path / "run", stage, progress=False)
    assert _assert_entries_whole(Cache(cache_root)) == stop_at - 1
    assert len(_cache_entries(Cache(cache_root))[1]) <= 1  # the unfinished temp folder

    stage, detector = _stage(default_prep, store, Cache(cache_root))
    run = run_prep(videos, tmp_path / "run", stage, progress=False)
    assert stage.cache.hits == stop_at - 1 and detector.calls == total - (stop_at - 1)
    _assert_same_outcome(run, ref, tmp_path / "run", tmp_path / "ref")
    assert _assert_entries_whole(Cache(cache_root)) == total
