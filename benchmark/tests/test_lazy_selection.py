"""Lazy selection: the same distribution of selected pairs as the exhaustive draw, with
far fewer model calls. Proven statistically on synthetic pass/fail frames, then measured
on a YouTube-Faces-layout folder of real LFW photos."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from benchmark.datasets import Frame, open_dataset
from benchmark.pipeline.prep.stage import (
    FrameResult,
    lazy_visit_order,
    run_prep,
    select_frames,
    select_lazily,
)

PASS = [0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1]  # 12 frames of one video, 5 pass the filters


def _frames() -> list[Frame]:
    return [Frame("Id", "1", i, path=None, rel=f"{i}") for i in range(len(PASS))]  # type: ignore[arg-type]


def _exhaustive(seed: int) -> tuple[str, str]:
    results = [FrameResult(f, "kept" if PASS[f.index] else "dropped") for f in _frames()]
    sel = select_frames(results, seed)[0]
    return sel.database, sel.query


def _lazy(seed: int) -> tuple[tuple[str, str], int]:
    rng = np.random.default_rng(seed)
    visited = []
    for frame in lazy_visit_order(_frames(), rng):
        visited.append(FrameResult(frame, "kept" if PASS[frame.index] else "dropped"))
        if sum(r.status == "kept" for r in visited) == 2:
            break
    return select_lazily(visited), len(visited)


def test_lazy_and_exhaustive_draw_the_same_distribution_of_pairs() -> None:
    """Chi-square homogeneity over the 20 ordered pairs of the 5 passing frames.

    10,000 draws each; under equal distributions p is uniform, so p < 0.001 happens by
    chance once in a thousand runs (the seeds are fixed, so this run is reproducible).
    Both are also compared with the uniform distribution over ordered pairs.
    """
    from scipy.stats import chi2_contingency, chisquare

    draws = 10_000
    exhaustive = Counter(_exhaustive(seed) for seed in range(draws))
    lazy = Counter(_lazy(seed + 10**6)[0] for seed in range(draws))
    pairs = sorted(set(exhaustive) | set(lazy))
    passing = [f"Id/1/{i}" for i, ok in enumerate(PASS) if ok]
    assert len(pairs) == 20 and all(a in passing and b in passing and a != b for a, b in pairs)
    table = np.array([[exhaustive[p] for p in pairs], [lazy[p] for p in pairs]])
    assert chi2_contingency(table).pvalue > 1e-3
    for counts in table:
        assert chisquare(counts).pvalue > 1e-3


def test_lazy_visits_fewer_frames() -> None:
    visits = [_lazy(seed)[1] for seed in range(2000)]
    # Expected visits to the 2nd success among 12 frames with 5 successes: 2·13/6 ≈ 4.33.
    assert np.mean(visits) == pytest.approx(2 * 13 / 6, abs=0.1)


@pytest.mark.integration
def test_lazy_prep_on_real_photos_saves_model_calls(lfw, default_prep, tmp_path: Path) -> None:
    """A YouTube-Faces-layout folder of real LFW photos (one identity's photos are one
    'video'); lazy selection runs the models on fewer frames and picks valid pairs."""
    root = tmp_path / "ytf"
    for name in lfw.subset(12, seed=11, min_sessions=6).identities():
        for i, photo in enumerate(f for f in lfw.frames if f.identity == name):
            target = root / "frame_images_DB" / name / "1" / f"1.{i}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo.path, target)
    dataset = open_dataset(root)
    full = run_prep(dataset, tmp_path / "full", default_prep, progress=False)
    lazy = run_prep(dataset, tmp_path / "lazy", default_prep, progress=False, lazy=True)
    visited = sum(r.status != "skipped" for r in lazy.results)
    print(
        f"lazy selection ran the models on {visited} of {len(dataset.frames)} frames "
        f"({1 - visited / len(dataset.frames):.0%} saved)"
    )
    assert visited < len(dataset.frames)
    kept = {r.frame.uid for r in full.results if r.status == "kept"}
    assert {s.identity for s in lazy.selections} == {s.identity for s in full.selections}
    for sel in lazy.selections:
        assert sel.database in kept and sel.query in kept and sel.database != sel.query
    table = (tmp_path / "lazy" / "frames.csv").read_text()
    assert "not visited: lazy selection" in table


def test_the_homogeneity_test_has_power() -> None:
    """Negative control: visiting frames in index order (not shuffled) is biased — the same
    chi-square test must reject it, or it could not have caught a broken lazy sampler."""
    from scipy.stats import chi2_contingency

    exhaustive = Counter(_exhaustive(seed) for seed in range(2000))
    first_two = [f"Id/1/{i}" for i, ok in enumerate(PASS) if ok][:2]
    biased = Counter({tuple(first_two): 2000})
    pairs = sorted(set(exhaustive) | set(biased))
    table = np.array([[exhaustive[p] for p in pairs], [biased[p] for p in pairs]])
    assert chi2_contingency(table).pvalue < 1e-6
