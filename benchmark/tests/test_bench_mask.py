"""Reconstruction time per crop for each reconstruct backend (pytest-benchmark; no timed
assertions). Rendering is timed separately in test_bench_render.py."""

from __future__ import annotations

import pytest

from benchmark.pipeline.common import mediapipe_mesh
from benchmark.pipeline.mask.types import RECONSTRUCTORS


@pytest.mark.parametrize("reconstruct", ["mediapipe-mesh", "sfm-eos"])
def test_bench_reconstruct_per_crop(benchmark, store, kept_crops, reconstruct) -> None:
    backend = RECONSTRUCTORS.create(reconstruct, store=store)
    crops = iter(kept_crops[:10] * 1000)

    def once():
        mediapipe_mesh._SEEN.clear()  # the model's time, not the per-process memo's
        return backend.reconstruct(next(crops))

    mesh = benchmark(once)
    assert len(mesh.vertices) > 400
    benchmark.extra_info["backend"] = reconstruct
