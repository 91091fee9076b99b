"""benchmark.stats against independent references.

scipy.stats is the reference for the exact binomial and beta quantities, Newcombe's
published tables for the score intervals, and seeded Monte-Carlo simulation of the real
test functions for every power function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sps

from benchmark.stats import (
    Z95,
    above_chance_test,
    binomial_cdf,
    binomial_tail,
    clopper_pearson,
    equivalence_at_chance,
    min_n,
    newcombe_difference,
    normal_cdf,
    normal_quantile,
    power_above_chance,
    power_equivalence_at_chance,
    power_lower_bound,
    power_paired_difference,
    prob_consistent,
    wilson,
)

RNG_SEED = 20230915
MC_REPS = 20_000
MC_TOL = 0.03

NS = [1, 2, 7, 30, 555, 5000]
PS = [0.0, 1e-4, 1 / 555, 0.01, 0.3, 0.5, 0.521, 0.97, 1.0]


def _ks(n: int) -> list[int]:
    return sorted({-1, 0, 1, 2, n // 3, n // 2, n - 1, n, n + 1})


# --- exact binomial probabilities --------------------------------------------------------


@pytest.mark.parametrize("n", [0, *NS])
@pytest.mark.parametrize("p", PS)
def test_binomial_tail_and_cdf_match_scipy(n: int, p: float) -> None:
    for k in _ks(n):
        tail = binomial_tail(k, n, p)
        cdf = binomial_cdf(k, n, p)
        assert tail == pytest.approx(sps.binom.sf(k - 1, n, p), rel=1e-9, abs=1e-300)
        assert cdf == pytest.approx(sps.binom.cdf(k, n, p), rel=1e-9, abs=1e-300)


def test_binomial_tail_keeps_relative_precision_far_in_the_tail() -> None:
    # P(X >= 40 | n=555, p=1/555) is ~1e-47: a normal approximation or 1 - cdf gives 0.
    ref = sps.binom.sf(39, 555, 1 / 555)
    assert 0 < ref < 1e-40
    assert binomial_tail(40, 555, 1 / 555) == pytest.approx(ref, rel=1e-9)
    n = 100_000
    for k in (0, 10, 500, 1000, 1200):
        assert binomial_cdf(k, n, 0.01) == pytest.approx(sps.binom.cdf(k, n, 0.01), rel=1e-8)
        assert binomial_tail(k, n, 0.01) == pytest.approx(sps.binom.sf(k - 1, n, 0.01), rel=1e-8)


def test_binomial_edges_and_bad_input() -> None:
    assert binomial_tail(0, 10, 0.3) == 1.0 and binomial_tail(-5, 10, 0.3) == 1.0
    assert binomial_tail(11, 10, 0.3) == 0.0 and binomial_cdf(-1, 10, 0.3) == 0.0
    assert binomial_cdf(10, 10, 0.3) == 1.0
    with pytest.raises(ValueError):
        binomial_tail(1, 10, 1.5)
    with pytest.raises(ValueError):
        binomial_cdf(1, -1, 0.5)
    with pytest.raises(ValueError):
        binomial_cdf(1, 10, float("nan"))
    with pytest.raises(TypeError):
        binomial_tail(1, 10.0, 0.5)  # type: ignore[arg-type]


# --- Clopper–Pearson ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 10, 70, 555, 4000])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_beta_quantiles(n: int, level: float) -> None:
    alpha = 1 - level
    for k in sorted({0, 1, 2, n // 4, n // 2, n - 1, n} & set(range(n + 1))):
        lo, hi = clopper_pearson(k, n, level)
        ref_lo = 0.0 if k == 0 else sps.beta.ppf(alpha / 2, k, n - k + 1)
        ref_hi = 1.0 if k == n else sps.beta.ppf(1 - alpha / 2, k + 1, n - k)
        assert lo == pytest.approx(ref_lo, rel=1e-8, abs=1e-15)
        assert hi == pytest.approx(ref_hi, rel=1e-8, abs=1e-15)
        assert lo <= k / n <= hi

        lo_u, hi_u = clopper_pearson(k, n, level, side="upper")
        assert lo_u == 0.0
        ref_u = 1.0 if k == n else sps.beta.ppf(level, k + 1, n - k)
        assert hi_u == pytest.approx(ref_u, rel=1e-8, abs=1e-15)

        lo_l, hi_l = clopper_pearson(k, n, level, side="lower")
        assert hi_l == 1.0
        ref_l = 0.0 if k == 0 else sps.beta.ppf(alpha, k, n - k + 1)
        assert lo_l == pytest.approx(ref_l, rel=1e-8, abs=1e-15)


def test_clopper_pearson_edges() -> None:
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    assert clopper_pearson(0, 0, side="upper") == (0.0, 1.0)
    # 0/n one-sided 95 % upper bound is 1 - 0.05**(1/n) (the "rule of three" exactly).
    assert clopper_pearson(0, 555, side="upper")[1] == pytest.approx(1 - 0.05 ** (1 / 555))
    with pytest.raises(ValueError):
        clopper_pearson(5, 4)
    with pytest.raises(ValueError):
        clopper_pearson(1, 4, side="both")
    with pytest.raises(ValueError):
        clopper_pearson(1, 4, level=1.0)


# --- tests of the claims -----------------------------------------------------------------


def test_equivalence_at_chance_on_a_555_gallery() -> None:
    n = 555
    for hits in (0, 1, 2):
        result = equivalence_at_chance(hits, n, 1 / n, 0.01)
        assert result["holds"] is True
        assert result["upper"] < result["bound"] == pytest.approx(1 / n + 0.01)
        assert result["p_value"] == pytest.approx(sps.binom.cdf(hits, n, 1 / n + 0.01))
    nine = equivalence_at_chance(9, n, 1 / n, 0.01)  # 1.6 % observed: above chance + 1 %
    assert nine["holds"] is False
    assert nine["upper"] > nine["bound"]
    assert nine["p_value"] == pytest.approx(sps.binom.cdf(9, n, 1 / n + 0.01))


def test_equivalence_decision_equals_clopper_pearson_bound() -> None:
    # The p-value rule and the upper-bound rule are the same test.
    for n in (20, 100, 555):
        for hits in range(0, 15):
            if hits > n:
                continue
            for margin in (0.005, 0.01, 0.05):
                r = equivalence_at_chance(hits, n, 1 / n, margin, alpha=0.05)
                assert r["holds"] == (r["upper"] < r["bound"])
                ref_upper = sps.beta.ppf(0.95, hits + 1, n - hits)
                assert r["upper"] == pytest.approx(ref_upper, rel=1e-8)


def test_claim_tests_never_hold_without_data() -> None:
    r = equivalence_at_chance(0, 0, 0.01, 0.01)
    assert r["holds"] is False and r["p_value"] == 1.0
    a = above_chance_test(0, 0, 0.01, 0.05)
    assert a == {"holds": False, "p_value": 1.0}


def test_above_chance_test() -> None:
    n = 555
    r = above_chance_test(5, n, 1 / n, 0.05)
    assert r["p_value"] == pytest.approx(sps.binom.sf(4, n, 1 / n), rel=1e-9)
    assert r["holds"] is True  # P(X >= 5 | mean 1) ~ 0.0037
    r = above_chance_test(2, n, 1 / n, 0.05)
    assert r["holds"] is False  # P(X >= 2 | mean 1) ~ 0.26
    assert above_chance_test(0, n, 1 / n, 0.05)["p_value"] == 1.0
    ref = sps.binomtest(30, n, 1 / n, alternative="greater").pvalue
    assert above_chance_test(30, n, 1 / n, 0.05)["p_value"] == pytest.approx(ref, rel=1e-8)
    with pytest.raises(ValueError):
        above_chance_test(556, n, 1 / n, 0.05)


# --- score intervals ---------------------------------------------------------------------


def test_normal_helpers_match_scipy() -> None:
    for x in (-30.0, -8.0, -1.5, 0.0, 0.3, 2.0, 7.5):
        assert normal_cdf(x) == pytest.approx(sps.norm.cdf(x), rel=1e-12)
    for q in (1e-12, 1e-4, 0.025, 0.2, 0.5, 0.8, 0.975, 0.999):
        assert normal_quantile(q) == pytest.approx(sps.norm.ppf(q), rel=1e-10, abs=1e-12)
    assert normal_quantile(0.975) == pytest.approx(Z95, rel=1e-13)
    with pytest.raises(ValueError):
        normal_quantile(1.0)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
    # Table I, Wilson score method without continuity correction.
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_published_examples(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson(k, n)
    assert got[0] == pytest.approx(lo, abs=5e-5) and got[1] == pytest.approx(hi, abs=5e-5)


def test_wilson_is_the_score_quadratic_root() -> None:
    # Independent derivation: the bounds are the roots of (p̂ - p)² = z² p(1 - p) / n.
    z = Z95
    for n in (1, 5, 37, 555):
        for k in range(0, n + 1, max(1, n // 9)):
            ph = k / n
            roots = np.sort(np.roots([1 + z * z / n, -(2 * ph + z * z / n), ph * ph]).real)
            lo, hi = wilson(k, n, z)
            assert lo == pytest.approx(max(0.0, roots[0]), abs=1e-12)
            assert hi == pytest.approx(min(1.0, roots[1]), abs=1e-12)
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2", "lo", "hi"),
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", Table II, method 10 (hybrid score, no continuity correction).
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
        (10, 10, 0, 10, 0.6075, 1.0000),
    ],
)
def test_newcombe_published_examples(
    k1: int, n1: int, k2: int, n2: int, lo: float, hi: float
) -> None:
    diff, got_lo, got_hi = newcombe_difference(k1, n1, k2, n2)
    assert diff == pytest.approx(k1 / n1 - k2 / n2)
    assert got_lo == pytest.approx(lo, abs=5e-5)
    assert got_hi == pytest.approx(hi, abs=5e-5)


def test_newcombe_level_and_bad_input() -> None:
    _, lo95, hi95 = newcombe_difference(289, 555, 250, 555)
    _, lo99, hi99 = newcombe_difference(289, 555, 250, 555, level=0.99)
    assert lo99 < lo95 < hi95 < hi99
    with pytest.raises(ValueError):
        newcombe_difference(0, 0, 1, 2)
    with pytest.raises(ValueError):
        newcombe_difference(3, 2, 1, 2)


# --- power, each against a seeded simulation of the real test ---------------------------


def _simulate(n: int, p: float, decide: Callable[[int], bool]) -> float:
    """Share of simulated counts for which ``decide(count)`` holds (one call per value)."""
    counts = np.random.default_rng(RNG_SEED).binomial(n, p, size=MC_REPS)
    values, freq = np.unique(counts, return_counts=True)
    return float(sum(f for v, f in zip(values, freq, strict=True) if decide(int(v))) / MC_REPS)


@pytest.mark.parametrize(("n", "alt"), [(60, 0.05), (110, 0.05), (300, 0.02), (555, 0.01)])
def test_power_above_chance_matches_simulation(n: int, alt: float) -> None:
    power = power_above_chance(n, alt)
    sim = _simulate(n, alt, lambda x: above_chance_test(x, n, 1 / n, 0.05)["holds"])
    assert power == pytest.approx(sim, abs=MC_TOL)
    # and the exact value from scipy's own test decisions
    exact = sum(
        sps.binom.pmf(x, n, alt)
        for x in range(n + 1)
        if sps.binomtest(x, n, 1 / n, alternative="greater").pvalue < 0.05
    )
    assert power == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize(
    ("n", "margin", "true_rate"),
    [(555, 0.01, None), (300, 0.01, None), (800, 0.01, 0.005), (200, 0.03, 0.01)],
)
def test_power_equivalence_matches_simulation(
    n: int, margin: float, true_rate: float | None
) -> None:
    power = power_equivalence_at_chance(n, margin, true_rate=true_rate)
    rate = 1 / n if true_rate is None else true_rate
    sim = _simulate(n, rate, lambda x: equivalence_at_chance(x, n, 1 / n, margin)["holds"])
    assert power == pytest.approx(sim, abs=MC_TOL)
    assert 0.0 <= power <= 1.0


def test_power_equivalence_edges() -> None:
    assert power_equivalence_at_chance(0, 0.01) == 0.0
    assert power_equivalence_at_chance(1, 0.01) == 0.0  # 1/n + margin > 1: undefined
    assert power_equivalence_at_chance(5, 0.01) == 0.0  # no count can reject H0


@pytest.mark.parametrize(
    ("n", "alt", "bound"), [(11, 0.9, 0.5), (30, 0.6, 0.5), (200, 0.55, 0.5), (555, 0.3, 0.27)]
)
def test_power_lower_bound_matches_simulation(n: int, alt: float, bound: float) -> None:
    power = power_lower_bound(n, alt, bound)
    sim = _simulate(n, alt, lambda x: wilson(x, n)[0] >= bound)
    assert power == pytest.approx(sim, abs=MC_TOL)


@pytest.mark.parametrize(
    ("n", "diff", "disc"), [(100, 0.1, 0.3), (228, 0.1, 0.3), (400, 0.05, 0.2)]
)
def test_power_paired_difference_matches_simulation(n: int, diff: float, disc: float) -> None:
    power = power_paired_difference(n, diff, disc)
    rng = np.random.default_rng(RNG_SEED)
    probs = [(disc + diff) / 2, (disc - diff) / 2, 1 - disc]
    outcome = rng.choice([1.0, -1.0, 0.0], p=probs, size=(MC_REPS // 4, n))
    mean = outcome.mean(axis=1)
    sd = outcome.std(axis=1, ddof=1)
    sim = float(np.mean(mean - Z95 * sd / math.sqrt(n) > 0))
    assert power == pytest.approx(sim, abs=MC_TOL)


def test_power_paired_difference_edges() -> None:
    assert power_paired_difference(0, 0.1, 0.3) == 0.0
    # sd = 0: every identity differs, all in A's favour (or none differs at all)
    assert power_paired_difference(10, 1.0, 1.0) == 1.0
    assert power_paired_difference(10, 0.0, 0.0) == 0.0
    # all discordant pairs favour A but 70 % tie: sd = sqrt(0.3 - 0.09), not 0
    assert power_paired_difference(10, 0.3, 0.3) == pytest.approx(
        sps.norm.cdf(0.3 * math.sqrt(10) / math.sqrt(0.21) - Z95)
    )
    assert power_paired_difference(10_000, 0.0, 0.3) == pytest.approx(0.025, abs=1e-9)
    with pytest.raises(ValueError):
        power_paired_difference(10, 0.4, 0.3)


@pytest.mark.parametrize(
    ("n1", "p1", "n2", "p2"), [(80, 0.5, 120, 0.5), (150, 0.3, 100, 0.3), (120, 0.6, 150, 0.45)]
)
def test_prob_consistent_matches_simulation(n1: int, p1: float, n2: int, p2: float) -> None:
    prob = prob_consistent(n1, p1, n2, p2)
    rng = np.random.default_rng(RNG_SEED)
    k1 = rng.binomial(n1, p1, size=MC_REPS)
    k2 = rng.binomial(n2, p2, size=MC_REPS)
    pairs, freq = np.unique(np.stack([k1, k2], axis=1), axis=0, return_counts=True)
    hold = 0
    for (a, b), f in zip(pairs, freq, strict=True):
        _, lo, hi = newcombe_difference(int(a), n1, int(b), n2)
        hold += f * (lo <= 0 <= hi)
    assert prob == pytest.approx(hold / MC_REPS, abs=MC_TOL)


def test_prob_consistent_at_the_papers_rate() -> None:
    same = prob_consistent(555, 0.521, 555, 0.521)
    assert 0.94 <= same <= 0.99  # Newcombe's interval is close to nominal here
    # A 10-point gap (3.4 standard errors) is rarely "consistent": about Φ(1.96 - 3.4).
    far = prob_consistent(555, 0.521, 555, 0.42)
    se = math.sqrt((0.521 * 0.479 + 0.42 * 0.58) / 555)
    assert far == pytest.approx(sps.norm.cdf(Z95 - 0.101 / se), abs=0.02)
    assert far < 0.1
    assert prob_consistent(555, 0.521, 555, 0.521, level=0.99) > same


# --- minimum sample size -----------------------------------------------------------------


def _min_n_by_definition(
    power: Callable[[int], float], target: float, n_max: int, window: int
) -> int | None:
    for n in range(1, n_max + 1):
        if all(power(m) >= target for m in range(n, n + window + 1)):
            return n
    return None


def test_min_n_equals_the_definition_on_saw_tooth_powers() -> None:
    rng = np.random.default_rng(RNG_SEED)
    for trial in range(40):
        # A rising trend with noise and dips: not monotone, like exact binomial power.
        size = 900
        values = np.clip(np.linspace(0, 1.2, size) + rng.normal(0, 0.08, size), 0, 1)
        values[rng.integers(0, size, size=trial % 7)] = 0.0

        def power(m: int, v: np.ndarray = values) -> float:
            return float(v[min(m, len(v) - 1)])

        for n_max in (100, 500, 850):
            for window in (0, 5, 50):
                expect = _min_n_by_definition(power, 0.8, n_max, window)
                assert min_n(power, 0.8, n_max, window=window) == expect


def test_min_n_never_reached() -> None:
    assert min_n(lambda n: 0.5, n_max=10_000) is None
    assert min_n(lambda n: 1.0) == 1


@pytest.mark.parametrize(
    "power",
    [
        lambda n: power_equivalence_at_chance(n, 0.01, 0.05),
        lambda n: power_above_chance(n, 0.05, 0.05),
        lambda n: power_lower_bound(n, 0.9, 0.5),
        lambda n: power_paired_difference(n, 0.10, 0.30, 0.05),
    ],
    ids=["equivalence", "above_chance", "lower_bound", "paired"],
)
def test_min_n_for_the_study_claims(power: Callable[[int], float]) -> None:
    n = min_n(power, target=0.8)
    assert n is not None
    assert all(power(m) >= 0.8 for m in range(n, n + 51))
    # The smallest such n: one size fewer is below the target (follows from minimality).
    assert n == 1 or power(n - 1) < 0.8


def test_min_n_values_for_the_study_claims() -> None:
    # Pinned so a change in any power function or in min_n shows up; the paired value
    # matches the textbook normal formula n = ((z_.975 + z_.8) sd / d)².
    assert min_n(lambda n: power_equivalence_at_chance(n, 0.01)) == 528
    assert min_n(lambda n: power_above_chance(n, 0.05)) == 110
    assert min_n(lambda n: power_lower_bound(n, 0.9, 0.5)) == 11
    paired = min_n(lambda n: power_paired_difference(n, 0.10, 0.30))
    textbook = ((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * math.sqrt(0.3 - 0.01) / 0.1) ** 2
    assert paired == math.ceil(textbook) == 228
