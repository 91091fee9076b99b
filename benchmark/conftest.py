"""Session fixtures shared by the tests and the claims.

They read the same asset store and the same cache as the ``dmbench`` command, so a
test run reuses intermediates that a reproduce run computed, and the reverse.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from benchmark.assets import AssetStore
from benchmark.cache import Cache
from benchmark.datasets import Dataset, resolve_dataset
from benchmark.errors import DmbenchError

# Keep tests quiet and deterministic.
os.environ.setdefault("DMBENCH_PROGRESS", "0")
# One process unless a test asks for workers (test_executor.py runs 2 against 1): dozens of
# small studies would otherwise each start a pool and load every model in it.
os.environ.setdefault("DMBENCH_WORKERS", "1")

# In CI, property tests draw the same examples every run (no flaky red from a new random
# draw); locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def store() -> AssetStore:
    return AssetStore()


@pytest.fixture(scope="session")
def cache() -> Cache:
    return Cache()


@pytest.fixture(scope="session")
def lfw(store: AssetStore) -> Dataset:
    """LFW (the shared lfw-dev subset, a full local copy, or a fetched one)."""
    try:
        return resolve_dataset("lfw", store)
    except DmbenchError as exc:
        pytest.skip(
            f"no LFW photos available ({str(exc).splitlines()[0]}); set "
            "DMBENCH_ASSET_PATH to a folder holding lfw-dev/, or run "
            "`dmbench data fetch lfw --identities 30` with internet"
        )


@pytest.fixture(scope="session")
def lfw20(lfw: Dataset) -> Dataset:
    """20 identities with ≥ 2 photos, drawn with seed 42."""
    return lfw.subset(20, seed=42, min_sessions=2)


@pytest.fixture(scope="session")
def default_prep(store: AssetStore, cache: Cache):
    from benchmark.pipeline.prep.stage import PrepStage

    return PrepStage.from_names(store=store, cache=cache)


@pytest.fixture(scope="session")
def caffe_prep(store: AssetStore, cache: Cache):
    from benchmark.pipeline.prep.stage import PrepStage

    if not store.available("retinaface-caffe"):
        pytest.skip(
            "retinaface-caffe weights are not available locally: "
            + store["retinaface-caffe"].how_to_obtain().splitlines()[1]
        )
    return PrepStage.from_names("retinaface-caffe", store=store, cache=cache)


@pytest.fixture(scope="session")
def sample_photo(lfw20: Dataset, default_prep) -> Path:
    """A real photo that the default prep keeps (one clear, frontal face)."""
    for frame in lfw20.frames:
        if default_prep.run_frame(frame).status == "kept":
            return frame.path
    pytest.fail("the default prep keeps no photo of lfw20")


@pytest.fixture(scope="session")
def kept_crops(lfw20: Dataset, default_prep) -> list:
    """Real 224×224 prep crops of lfw20: every frame the default prep keeps, in order."""
    crops = [r.crop for r in map(default_prep.run_frame, lfw20.frames) if r.status == "kept"]
    if not crops:
        pytest.fail("the default prep keeps no photo of lfw20")
    return crops


@pytest.fixture(scope="session")
def small_study(store, lfw, tmp_path_factory):
    """The lfw profile's study on 30 valid identities (through the shared cache): results
    and the folder holding results.json, report.md and report.html."""
    from benchmark.specs import load_profiles
    from benchmark.study import StudyOptions, run_study

    profile = load_profiles()["lfw"]
    out = tmp_path_factory.mktemp("study")
    results = run_study(profile, out, StudyOptions(identities=30, progress=False), store)
    return results, out
