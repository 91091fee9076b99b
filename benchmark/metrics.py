"""Identification metrics shared by every stage that matches faces (or shapes).

All functions take a similarity matrix ``S`` (queries × gallery, larger = more similar)
and the index of each query's true gallery entry; everything is vectorized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ranks_of_truth(similarity: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """0-based rank of the true gallery item for each query (ties count against it)."""
    true_scores = similarity[np.arange(len(truth)), truth]
    return (similarity > true_scores[:, None]).sum(axis=1) + (
        (similarity == true_scores[:, None]).sum(axis=1) - 1
    )


def bootstrap_interval(
    hits: np.ndarray, seed: int = 42, rounds: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of per-identity hits, resampling identities."""
    hits = np.asarray(hits, dtype=float)
    if len(hits) == 0:
        return (0.0, 1.0)
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), size=(rounds, len(hits)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def paired_difference(
    better: dict[str, int], worse: dict[str, int], seed: int = 42, rounds: int = 2000
) -> tuple[float, float, float, int]:
    """Rank-1 difference (better − worse) over identities scored in both, with a bootstrap
    interval that resamples identities (each identity's two outcomes stay together).

    Takes ``{identity: 1 if identified at rank 1}`` per scenario; returns
    (mean, low, high, identities); no common identity gives (0, −1, 1, 0).
    """
    common = sorted(set(better) & set(worse))
    if not common:
        return (0.0, -1.0, 1.0, 0)
    diff = np.array([better[i] - worse[i] for i in common], dtype=float)
    lo, hi = bootstrap_interval(diff, seed=seed, rounds=rounds)
    return (float(diff.mean()), lo, hi, len(common))


@dataclass(frozen=True)
class RankSummary:
    n: int
    rank1: float
    rank1_ci: tuple[float, float]
    chance: float
    mean_rank0: float

    def describe(self) -> str:
        lo, hi = self.rank1_ci
        return (
            f"rank-1 {100 * self.rank1:.1f} % (95 % CI {100 * lo:.1f}–{100 * hi:.1f}) "
            f"over n = {self.n}; chance {100 * self.chance:.2f} %"
        )


def summarize(similarity: np.ndarray, truth: np.ndarray, seed: int = 42) -> RankSummary:
    ranks = ranks_of_truth(similarity, truth)
    hits = ranks == 0
    return RankSummary(
        n=len(truth),
        rank1=float(hits.mean()) if len(hits) else 0.0,
        rank1_ci=bootstrap_interval(hits, seed=seed),
        chance=1.0 / similarity.shape[1] if similarity.shape[1] else 0.0,
        mean_rank0=float(ranks.mean()) if len(ranks) else 0.0,
    )
