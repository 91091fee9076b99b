"""Embedding throughput per recognition backend (pytest-benchmark; no timed assertions).

Run with ``nox -s bench`` (or ``pytest --benchmark-enable -k test_bench_``). Each round
embeds one batch of 8 real prep crops (224×224 LFW faces from the default prep), detection
and alignment included, so ms per image = the round's time / 8 (``extra_info`` says so).
The insightface backend needs user-supplied weights and is not benchmarked here.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.pipeline.recognize.types import EMBEDDERS

BATCH = 8


@pytest.fixture(scope="module")
def prep_crops(lfw20, default_prep) -> list[np.ndarray]:
    crops = []
    for frame in lfw20.frames:
        result = default_prep.run_frame(frame)
        if result.status == "kept" and result.crop is not None:
            crops.append(result.crop)
            if len(crops) == BATCH:
                return crops
    pytest.fail(f"the default prep keeps fewer than {BATCH} photos of lfw20")


@pytest.mark.parametrize("backend", ["sface", "dlib-resnet", "dlib-resnet-onnx"])
def test_bench_embed_per_image(benchmark, store, prep_crops, backend) -> None:
    embedder = EMBEDDERS.create(backend, store=store, device="cpu", batch_size=BATCH)
    results = benchmark(embedder.embed, prep_crops)
    assert len(results) == BATCH
    assert sum(r.vector is not None for r in results) >= BATCH - 1
    benchmark.extra_info["backend"] = backend
    benchmark.extra_info["images_per_round"] = BATCH
