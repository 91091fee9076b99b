"""Evaluating the study's claims (``specs/claims.toml``) against a run's results."""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmark.metrics import paired_difference, wilson_interval
from benchmark.specs import Claim
from benchmark.study import StudyResults


@dataclass(frozen=True)
class Verdict:
    holds: bool
    measured: str  # the numbers, for the test report and the issue note


def binomial_tail(successes: int, n: int, p: float) -> float:
    """P(X ≥ successes) for X ~ Binomial(n, p), exactly (log-space sum)."""
    if successes <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
        for k in range(successes, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _describe(row: dict) -> str:
    lo, hi = row["rank1_ci"]
    return (
        f"{row['scenario']} [{row['embedder']}, {row['query_source']} → "
        f"{row['database_source']}]: rank-1 {100 * row['rank1']:.1f} % "
        f"(95 % CI {100 * lo:.1f}–{100 * hi:.1f}), n = {row['n']}, chance "
        f"{100 * row['chance']:.2f} %, query/database detection failures "
        f"{row['query_failures']}/{row['database_failures']}"
    )


def evaluate(claim: Claim, results: StudyResults, embedder: str) -> Verdict:
    p = claim.params
    row = results.find(p["scenario"], embedder) if "scenario" in p else None
    if claim.kind == "rank1_lower_bound":
        holds = row["rank1_ci"][0] >= p["min"]
        return Verdict(holds, f"{_describe(row)}; bound: CI lower end ≥ {100 * p['min']:.0f} %")
    if claim.kind in {"at_chance", "above_chance"}:
        hits = round(row["rank1"] * row["n"])
        pvalue = binomial_tail(hits, row["n"], row["chance"])
        holds = pvalue >= p["alpha"] if claim.kind == "at_chance" else pvalue < p["alpha"]
        return Verdict(
            holds,
            f"{_describe(row)}; {hits} hits, one-sided exact binomial "
            f"p = {pvalue:.3g} against chance (α = {p['alpha']})",
        )
    if claim.kind == "difference_positive":
        better = results.find(p["better"], embedder)
        worse = results.find(p["worse"], embedder)
        mean, lo, hi, n = paired_difference(
            results.hits_of(better), results.hits_of(worse), seed=results.config["profile"]["seed"]
        )
        return Verdict(
            lo > 0,
            f"{p['better']} − {p['worse']} [{embedder}] = "
            f"{100 * mean:.1f} points (paired bootstrap 95 % CI "
            f"{100 * lo:.1f}–{100 * hi:.1f}) over {n} identities",
        )
    if claim.kind == "rank1_within_binomial_interval":
        successes = round(p["target"] * p["n"])
        lo, hi = wilson_interval(successes, p["n"])
        holds = lo <= row["rank1"] <= hi
        return Verdict(
            holds,
            f"{_describe(row)}; paper {100 * p['target']:.1f} % at n = "
            f"{p['n']}: 95 % interval {100 * lo:.1f}–{100 * hi:.1f}",
        )
    if claim.kind == "rank1_at_most":
        return Verdict(
            row["rank1"] <= p["max"], f"{_describe(row)}; bound ≤ {100 * p['max']:.2f} %"
        )
    raise ValueError(f"claim {claim.id}: unknown kind {claim.kind!r}")
