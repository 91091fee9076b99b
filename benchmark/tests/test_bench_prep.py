"""Prep throughput per backend (pytest-benchmark; no timed assertions).

Run with ``nox -s bench`` (or ``pytest --benchmark-enable -k test_bench_``). Each round preps
one real LFW photo without the cache, so the number is ms per image on this machine.
"""

from __future__ import annotations

import pytest

from benchmark.cache import Cache
from benchmark.pipeline.prep.stage import PrepStage


@pytest.mark.parametrize("detector", ["yunet", "retinaface-caffe"])
def test_bench_prep_per_image(benchmark, store, lfw20, detector) -> None:
    if not store.available("retinaface-caffe") and detector == "retinaface-caffe":
        pytest.skip("retinaface-caffe weights not available locally")
    stage = PrepStage.from_names(detector, store=store, cache=Cache(enabled=False))
    frames = iter(lfw20.frames * 100)
    result = benchmark(lambda: stage.run_frame(next(frames)))
    assert result.status in {"kept", "dropped"}
    benchmark.extra_info["backend"] = stage.backend
