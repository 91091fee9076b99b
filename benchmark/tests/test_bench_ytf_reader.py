"""Time to open a YouTube Faces DB tree (pytest-benchmark; no timed assertions).

Run with ``nox -s bench`` (or ``pytest --benchmark-enable -k test_bench_``). The tree has
the real 1,595 names and 3,425 videos with empty frame files and a label file per name;
two sizes give the per-frame slope, to extrapolate to the real ~621k frames. The larger
tree (61,650 files) is only built when benchmarks are enabled.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.datasets import open_dataset
from benchmark.tests.ytf_synthetic import VIDEOS, make_ytf_tree


@pytest.mark.parametrize("frames_per_video", [3, 18])
def test_bench_ytf_reader(benchmark, tmp_path: Path, frames_per_video: int) -> None:
    if benchmark.disabled and frames_per_video > 3:
        pytest.skip("the 61,650-file tree is only built with --benchmark-enable")
    make_ytf_tree(tmp_path, frames_per_video)
    dataset = benchmark.pedantic(open_dataset, args=(tmp_path,), rounds=3, warmup_rounds=1)
    assert len(dataset.frames) == VIDEOS * frames_per_video
    assert dataset.labelled_frames() == len(dataset.frames)
    benchmark.extra_info["frames"] = len(dataset.frames)
