"""Exact binomial statistics for the study's claims on rank-1 identification.

A claim is judged on ``hits`` correct rank-1 identifications out of ``n`` queries, with
chance level ``1 / gallery_size``. Rates near chance are tiny (1/555 ≈ 0.0018), where
normal approximations are badly wrong, so everything here that can be exact is exact:
binomial probabilities are sums of pmfs computed in log space, Clopper–Pearson bounds are
found by bisection on those sums, and power is an exact sum over the binomial outcomes.
The one approximation (``power_paired_difference``) says so. Pure numpy/math: no scipy at
run time, so the claims do not depend on an optional package.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import lru_cache

import numpy as np

__all__ = [
    "Z95",
    "above_chance_test",
    "binomial_cdf",
    "binomial_tail",
    "clopper_pearson",
    "equivalence_at_chance",
    "min_n",
    "newcombe_difference",
    "normal_cdf",
    "normal_quantile",
    "power_above_chance",
    "power_equivalence_at_chance",
    "power_lower_bound",
    "power_paired_difference",
    "prob_consistent",
    "wilson",
]

Z95 = 1.959963984540054
"""Two-sided 95 % standard-normal quantile, z_{0.975}."""

# ---------------------------------------------------------------------------------------
# Validation and the log-space binomial pmf
# ---------------------------------------------------------------------------------------


def _count(n: int, name: str = "n") -> int:
    """A non-negative integer count (numpy integers accepted, floats refused)."""
    value = operator.index(n)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _prob(p: float, name: str = "p") -> float:
    """A probability in [0, 1] (NaN refused: it would silently fail every comparison)."""
    value = float(p)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {p!r}")
    return value


def _level(level: float) -> float:
    value = float(level)
    if not 0.0 < value < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    return value


_LOG_FACTORIALS: list[np.ndarray] = [np.zeros(1)]


def _log_factorials(n: int) -> np.ndarray:
    """``log(i!)`` for i = 0..n (at least), from math.lgamma, cached and grown by doubling.

    lgamma per entry rather than a cumulative sum of logs: the sum accumulates rounding
    error with n, lgamma does not.
    """
    table = _LOG_FACTORIALS[0]
    if len(table) <= n:
        size = max(n + 1, 2 * len(table))
        table = np.array([math.lgamma(i + 1.0) for i in range(size)])
        _LOG_FACTORIALS[0] = table
    return table


def _log_pmf(n: int, p: float) -> np.ndarray:
    """log P(X = k) for k = 0..n, X ~ Bin(n, p); exact up to rounding even in far tails."""
    out = np.full(n + 1, -np.inf)
    if p == 0.0:
        out[0] = 0.0
    elif p == 1.0:
        out[n] = 0.0
    else:
        lf = _log_factorials(n)[: n + 1]
        k = np.arange(n + 1)
        out = lf[n] - lf - lf[::-1] + k * math.log(p) + (n - k) * math.log1p(-p)
    return out


def _pmf(n: int, p: float) -> np.ndarray:
    return np.exp(_log_pmf(n, p))


def _log_sum_exp(values: np.ndarray) -> float:
    if values.size == 0:
        return -math.inf
    top = float(values.max())
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.exp(values - top).sum()))


def _tails(n: int, p: float) -> np.ndarray:
    """P(X ≥ k) for k = 0..n+1 (the last entry is 0): summed from the small end, so tiny
    tails keep their relative precision."""
    return np.append(np.cumsum(_pmf(n, p)[::-1])[::-1], 0.0)


def _cdfs(n: int, p: float) -> np.ndarray:
    """P(X ≤ k) for k = 0..n."""
    return np.cumsum(_pmf(n, p))


# ---------------------------------------------------------------------------------------
# Binomial probabilities and exact intervals
# ---------------------------------------------------------------------------------------


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Bin(n, p), exact (log-space sum); 1.0 for k ≤ 0, 0.0 for k > n.

    The p-value of "more hits than chance"; it must stay accurate when it is 1e-30.
    """
    k, n, p = operator.index(k), _count(n), _prob(p)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, math.exp(_log_sum_exp(_log_pmf(n, p)[k:])))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Bin(n, p), exact (log-space sum); 0.0 for k < 0, 1.0 for k ≥ n.

    The p-value of "fewer hits than chance + margin" (the equivalence test).
    """
    k, n, p = operator.index(k), _count(n), _prob(p)
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, math.exp(_log_sum_exp(_log_pmf(n, p)[: k + 1])))


def _bisect(f: Callable[[float], float], target: float, increasing: bool) -> float:
    """Root of the monotone ``f(p) = target`` on [0, 1], to the last representable bit."""
    lo, hi = 0.0, 1.0
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def clopper_pearson(k: int, n: int, level: float = 0.95, side: str = "two") -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for a binomial rate; never narrower than nominal.

    ``side="two"``: equal tails of (1 − level)/2. ``side="upper"``: (0, one-sided upper
    bound at ``level``). ``side="lower"``: (one-sided lower bound at ``level``, 1).
    Found by bisection on the exact binomial sums; (0.0, 1.0) when n == 0.
    """
    n, level = _count(n), _level(level)
    k = operator.index(k)
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in 0..n={n}, got {k}")
    if side not in ("two", "upper", "lower"):
        raise ValueError(f"side must be 'two', 'upper' or 'lower', got {side!r}")
    if n == 0:
        return (0.0, 1.0)
    alpha = 1.0 - level
    tail = alpha / 2 if side == "two" else alpha
    lower, upper = 0.0, 1.0
    if side in ("two", "lower") and k > 0:
        lower = _bisect(lambda p: binomial_tail(k, n, p), tail, increasing=True)
    if side in ("two", "upper") and k < n:
        upper = _bisect(lambda p: binomial_cdf(k, n, p), tail, increasing=False)
    return (lower, upper)


# ---------------------------------------------------------------------------------------
# Tests of the claims
# ---------------------------------------------------------------------------------------


def equivalence_at_chance(
    hits: int, n: int, chance: float, margin: float, alpha: float = 0.05
) -> dict[str, float | bool]:
    """Exact one-sided test that the true rate is below ``chance + margin``.

    "Re-identification is at chance" cannot be shown by failing to beat chance (small n
    would always pass); it is shown by rejecting H0: p ≥ chance + margin in favour of
    H1: p < chance + margin. Holds iff P(X ≤ hits | p = chance + margin) < alpha, which is
    the same as the one-sided (1 − alpha) Clopper–Pearson upper bound lying below
    chance + margin. Returns holds, upper (that bound), bound and p_value. n == 0 never
    holds.
    """
    n, chance = _count(n), _prob(chance, "chance")
    hits = operator.index(hits)
    if not 0 <= hits <= n:
        raise ValueError(f"hits must lie in 0..n={n}, got {hits}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    bound = chance + margin
    if not 0.0 < bound <= 1.0:
        raise ValueError(f"chance + margin must lie in (0, 1], got {bound!r}")
    alpha = _level(alpha)
    if n == 0:
        return {"holds": False, "upper": 1.0, "bound": bound, "p_value": 1.0}
    p_value = binomial_cdf(hits, n, bound)
    upper = clopper_pearson(hits, n, level=1.0 - alpha, side="upper")[1]
    return {"holds": p_value < alpha, "upper": upper, "bound": bound, "p_value": p_value}


def above_chance_test(hits: int, n: int, chance: float, alpha: float) -> dict[str, float | bool]:
    """Exact one-sided binomial test of H0: p = chance against p > chance.

    p_value = P(X ≥ hits | chance); holds iff p_value < alpha. n == 0 never holds.
    """
    n, chance, alpha = _count(n), _prob(chance, "chance"), _level(alpha)
    hits = operator.index(hits)
    if not 0 <= hits <= n:
        raise ValueError(f"hits must lie in 0..n={n}, got {hits}")
    if n == 0:
        return {"holds": False, "p_value": 1.0}
    p_value = binomial_tail(hits, n, chance)
    return {"holds": p_value < alpha, "p_value": p_value}


# ---------------------------------------------------------------------------------------
# Score intervals and the normal distribution
# ---------------------------------------------------------------------------------------


def normal_cdf(x: float) -> float:
    """Φ(x) via erfc, which (unlike 1 + erf) keeps precision in the lower tail."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@lru_cache(maxsize=256)
def normal_quantile(q: float) -> float:
    """Φ⁻¹(q) by bisection on ``normal_cdf`` (to the last bit; cached, it is called with a
    handful of levels)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie in (0, 1), got {q!r}")
    lo, hi = -40.0, 40.0
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if normal_cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _z_two_sided(level: float) -> float:
    return normal_quantile(1.0 - (1.0 - _level(level)) / 2.0)


def _wilson_arrays(k: np.ndarray, n: int, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and Wilson bounds for every count in ``k`` (vectorized)."""
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    return p, np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval: sensible at 0 and n hits, unlike the Wald interval, and the
    building block of Newcombe's difference interval. (0.0, 1.0) when n == 0."""
    n, k = _count(n), operator.index(k)
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in 0..n={n}, got {k}")
    if n == 0:
        return (0.0, 1.0)
    _, lo, hi = _wilson_arrays(np.array([k], dtype=float), n, float(z))
    return (float(lo[0]), float(hi[0]))


def _newcombe_arrays(
    k1: np.ndarray, n1: int, k2: np.ndarray, n2: int, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newcombe hybrid-score bounds for the outer product of counts (rows k1, columns k2)."""
    p1, l1, u1 = _wilson_arrays(k1, n1, z)
    p2, l2, u2 = _wilson_arrays(k2, n2, z)
    diff = p1[:, None] - p2[None, :]
    lower = diff - np.sqrt(((p1 - l1) ** 2)[:, None] + ((u2 - p2) ** 2)[None, :])
    upper = diff + np.sqrt(((u1 - p1) ** 2)[:, None] + ((p2 - l2) ** 2)[None, :])
    return diff, lower, upper


def newcombe_difference(
    k1: int, n1: int, k2: int, n2: int, level: float = 0.95
) -> tuple[float, float, float]:
    """Difference p1 − p2 with Newcombe's hybrid score interval (1998, method 10).

    Used to compare our rank-1 with a published one (e.g. 289/555): it carries the
    sampling error of both, behaves near 0 and 1, and keeps close to nominal coverage.
    Returns (diff, lower, upper).
    """
    n1, n2 = _count(n1, "n1"), _count(n2, "n2")
    k1, k2 = operator.index(k1), operator.index(k2)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need n >= 1")
    if not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise ValueError(f"counts out of range: {k1}/{n1}, {k2}/{n2}")
    z = _z_two_sided(level)
    diff, lower, upper = _newcombe_arrays(
        np.array([k1], dtype=float), n1, np.array([k2], dtype=float), n2, z
    )
    return (float(diff[0, 0]), float(lower[0, 0]), float(upper[0, 0]))


# ---------------------------------------------------------------------------------------
# Power (exact sums over the binomial outcomes unless stated)
# ---------------------------------------------------------------------------------------


def power_above_chance(
    n: int, alternative: float, alpha: float = 0.05, chance: float | None = None
) -> float:
    """Exact power of ``above_chance_test`` when the true rate is ``alternative``.

    The critical count is the smallest k with P(X ≥ k | chance) < alpha; power is
    P(X ≥ k | alternative). ``chance`` defaults to 1/n (gallery of n). 0 when n == 0 or no
    count can reach significance.
    """
    n, alternative, alpha = _count(n), _prob(alternative, "alternative"), _level(alpha)
    if n == 0:
        return 0.0
    chance = 1.0 / n if chance is None else _prob(chance, "chance")
    critical = int(np.argmax(_tails(n, chance) < alpha))  # entry n+1 is 0: always found
    return float(_tails(n, alternative)[critical])


def power_equivalence_at_chance(
    n: int, margin: float, alpha: float = 0.05, true_rate: float | None = None
) -> float:
    """Exact power of ``equivalence_at_chance`` with chance = 1/n.

    k_max is the largest k with P(X ≤ k | 1/n + margin) < alpha (−1 if none); power is
    P(X ≤ k_max | true_rate), true_rate defaulting to chance. 0 when 1/n + margin > 1
    (n = 1: the test is undefined there).
    """
    n, alpha = _count(n), _level(alpha)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if n == 0:
        return 0.0
    bound = 1.0 / n + margin
    if bound > 1.0:
        return 0.0
    true_rate = 1.0 / n if true_rate is None else _prob(true_rate, "true_rate")
    k_max = int(np.count_nonzero(_cdfs(n, bound) < alpha)) - 1
    if k_max < 0:
        return 0.0
    return float(min(1.0, _cdfs(n, true_rate)[k_max]))


def power_lower_bound(n: int, alternative: float, bound: float, level: float = 0.95) -> float:
    """Exact probability that the lower end of the two-sided Wilson interval is ≥ bound.

    The claim "rank-1 is at least ``bound``" is judged on that lower end; power is the sum
    of Bin(n, alternative) pmfs over the counts whose Wilson lower end reaches ``bound``.
    """
    n, alternative = _count(n), _prob(alternative, "alternative")
    if n == 0:
        return 0.0
    _, lower, _ = _wilson_arrays(np.arange(n + 1, dtype=float), n, _z_two_sided(level))
    return float(min(1.0, _pmf(n, alternative)[lower >= bound].sum()))


def power_paired_difference(
    n: int, difference: float, discordant: float, alpha: float = 0.05
) -> float:
    """Approximate power that a two-sided (1 − alpha) interval of a mean paired difference
    lies above 0 (normal approximation, stated: the exact paired law needs more than two
    numbers).

    Each identity contributes +1, −1 or 0 (outcome A minus outcome B); ``discordant`` is
    the share with differing outcomes, so the per-identity variance is discordant −
    difference². Power = Φ(difference·√n / sd − z_{1−alpha/2}).
    """
    n, discordant, alpha = _count(n), _prob(discordant, "discordant"), _level(alpha)
    if abs(difference) > discordant:
        raise ValueError("|difference| cannot exceed the discordant share")
    if n == 0:
        return 0.0
    sd = math.sqrt(max(0.0, discordant - difference * difference))
    if sd == 0.0:
        return 1.0 if difference > 0 else 0.0
    return normal_cdf(difference * math.sqrt(n) / sd - _z_two_sided(1.0 - alpha))


def prob_consistent(n1: int, p1: float, n2: int, p2: float, level: float = 0.95) -> float:
    """Exact probability that ``newcombe_difference``'s interval contains 0.

    With p1 == p2 it is the chance that the claim "consistent with the paper" holds when
    it is true (about ``level``); with p1 != p2 it is the chance of a false "consistent".
    An exact double sum over Bin(n1, p1) × Bin(n2, p2), vectorized over the outer product.
    """
    n1, n2 = _count(n1, "n1"), _count(n2, "n2")
    p1, p2 = _prob(p1, "p1"), _prob(p2, "p2")
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need n >= 1")
    z = _z_two_sided(level)
    _, lower, upper = _newcombe_arrays(
        np.arange(n1 + 1, dtype=float), n1, np.arange(n2 + 1, dtype=float), n2, z
    )
    contains = (lower <= 0.0) & (upper >= 0.0)
    return float(min(1.0, _pmf(n1, p1) @ contains.astype(float) @ _pmf(n2, p2)))


def min_n(
    power_fn: Callable[[int], float],
    target: float = 0.8,
    n_max: int = 100_000,
    window: int = 50,
) -> int | None:
    """Smallest n ≤ n_max with power_fn(m) ≥ target for EVERY m in n..n+window.

    Exact binomial power saw-tooths in n (the critical count jumps), so the first n that
    reaches the target can be followed by ones that do not; requiring the next ``window``
    (50) sizes too gives a size that stays sufficient when a few queries are added or lost.
    A consequence: power_fn(result − 1) < target. None if no such n ≤ n_max.

    Coarse scan every window + 1 sizes (any qualifying run of window + 1 sizes contains a
    coarse point, so none is skipped), then a fine scan back from the first passing one.
    """
    n_max, window = _count(n_max, "n_max"), _count(window, "window")
    step = window + 1
    seen: dict[int, bool] = {}

    def ok(m: int) -> bool:
        if m not in seen:
            seen[m] = power_fn(m) >= target
        return seen[m]

    lo = 1
    while lo <= n_max:
        coarse = lo
        while coarse <= n_max + window and not ok(coarse):
            coarse += step
        if coarse > n_max + window:
            return None
        start = max(lo, coarse - window)
        candidate = start
        m = start
        while True:
            if candidate > n_max:
                return None
            if ok(m):
                if m - candidate == window:
                    return candidate
            elif m >= coarse:
                lo = m + 1
                break
            else:
                candidate = m + 1
            m += 1
    return None
