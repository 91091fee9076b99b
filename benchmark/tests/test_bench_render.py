"""Render throughput (pytest-benchmark; no timed assertions).

Run with ``nox -s bench`` (or ``pytest --benchmark-enable -k test_bench_``). Each round renders
the FLAME sample mesh (5,023 vertices, 9,976 triangles) into a 224×224 crop with the default
``numpy`` renderer, so the number is ms per mask render on this machine.
"""

from __future__ import annotations

import pytest

from benchmark.errors import AssetError
from benchmark.pipeline.mask.render import NumpyRenderer
from benchmark.tests.test_mask_render import _read_ply, flame_in_crop


def test_bench_render_flame(benchmark, store) -> None:
    try:
        path = store.file("flame-sample", "FLAME_sample.ply")
    except AssetError as exc:
        pytest.skip(str(exc))
    mesh = flame_in_crop(*_read_ply(path))
    renderer = NumpyRenderer()
    result = benchmark(lambda: renderer.render(mesh, 224))
    assert result.coverage.any()
    benchmark.extra_info["backend"] = renderer.name
    benchmark.extra_info["triangles"] = len(mesh.triangles)
