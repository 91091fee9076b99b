"""Evaluating the study's claims (``specs/claims.toml``) against a run's results.

Every claim kind has two functions here: how it is judged on a run (``evaluate``) and
its power at a given n (``power``), from which the claim's minimum n is derived. A claim
is only judged where it has power: a verdict on too few identities is no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark import stats
from benchmark.metrics import paired_difference
from benchmark.specs import Claim

POWER_TARGET = 0.8  # every claim's minimum n gives it at least this power


@dataclass(frozen=True)
class Verdict:
    holds: bool
    measured: str  # the numbers, for the test report and the issue note
    n: int  # identities the claim was judged on (0: the scenario scored nobody)
    value: float  # the monitored statistic: a rank-1, or a difference of rank-1s


def _describe(row: dict) -> str:
    lo, hi = row["rank1_ci"]
    return (
        f"{row['scenario']} [{row['embedder']}, {row['query_source']} → "
        f"{row['database_source']}]: rank-1 {100 * row['rank1']:.1f} % "
        f"(95 % CI {100 * lo:.1f}–{100 * hi:.1f}), n = {row['n']}, chance "
        f"{100 * row['chance']:.2f} %, query/database detection failures "
        f"{row['query_failures']}/{row['database_failures']}"
    )


def _hits(row: dict) -> int:
    return round(row["rank1"] * row["n"])


def _rank1_lower_bound(p: dict, row: dict) -> tuple[bool, str]:
    lo, _ = stats.wilson(_hits(row), row["n"])
    bound = f"bound ≥ {100 * p['min']:.0f} %"
    return lo >= p["min"], f"Wilson 95 % lower end {100 * lo:.1f} % ({bound})"


def _at_chance(p: dict, row: dict) -> tuple[bool, str]:
    if row["chance"] + p["margin"] > 1.0:  # a gallery of one or two: no rate lies above
        return False, (
            f"chance + margin is {100 * (row['chance'] + p['margin']):.0f} %: the gallery is "
            "too small for a rate to be shown at chance"
        )
    test = stats.equivalence_at_chance(_hits(row), row["n"], row["chance"], p["margin"], p["alpha"])
    return bool(test["holds"]), (
        f"{_hits(row)} hits; equivalence test: one-sided {100 * (1 - p['alpha']):.0f} % exact "
        f"upper bound {100 * test['upper']:.2f} % vs chance + margin "
        f"{100 * test['bound']:.2f} % (p = {test['p_value']:.3g})"
    )


def _above_chance(p: dict, row: dict) -> tuple[bool, str]:
    test = stats.above_chance_test(_hits(row), row["n"], row["chance"], p["alpha"])
    return bool(test["holds"]), (
        f"{_hits(row)} hits, one-sided exact binomial p = {test['p_value']:.3g} against "
        f"chance (α = {p['alpha']})"
    )


def _consistent_with_published(p: dict, row: dict) -> tuple[bool, str]:
    diff, lo, hi = stats.newcombe_difference(_hits(row), row["n"], p["paper_hits"], p["paper_n"])
    return lo <= 0.0 <= hi, (
        f"paper {p['paper_hits']}/{p['paper_n']} = {100 * p['paper_hits'] / p['paper_n']:.1f} %; "
        f"ours − paper = {100 * diff:.1f} points, Newcombe 95 % interval "
        f"{100 * lo:.1f} to {100 * hi:.1f} (both sampling errors)"
    )


def _compatible_with_at_most(p: dict, row: dict) -> tuple[bool, str]:
    pvalue = stats.binomial_tail(_hits(row), row["n"], p["max"])
    return pvalue >= p["alpha"], (
        f"{_hits(row)} hits; exact test of rank-1 ≤ {100 * p['max']:.2f} %: p = {pvalue:.3g} "
        f"(rejected below α = {p['alpha']})"
    )


ROW_KINDS: dict[str, Callable[[dict, dict], tuple[bool, str]]] = {
    "rank1_lower_bound": _rank1_lower_bound,
    "at_chance": _at_chance,
    "above_chance": _above_chance,
    "consistent_with_published": _consistent_with_published,
    "compatible_with_at_most": _compatible_with_at_most,
}
KINDS = (*ROW_KINDS, "difference_positive")


def evaluate(claim: Claim, results: Any, embedder: str, source: str | None = None) -> Verdict:
    """The claim on one embedder (and, for per-source claims, one mask source)."""
    p = claim.params
    if claim.kind == "difference_positive":
        better = results.find(p["better"], embedder, source)
        worse = results.find(p["worse"], embedder, source)
        mean, lo, hi, n = paired_difference(
            results.hits_of(better), results.hits_of(worse), seed=results.config["profile"]["seed"]
        )
        return Verdict(
            n > 0 and lo > 0,
            f"{p['better']} − {p['worse']} [{embedder}, {better['query_source']}] = "
            f"{100 * mean:.1f} points (paired bootstrap 95 % CI {100 * lo:.1f}–{100 * hi:.1f}) "
            f"over {n} identities",
            n,
            mean,
        )
    if claim.kind not in ROW_KINDS:
        raise ValueError(f"claim {claim.id}: unknown kind {claim.kind!r}")
    row = results.find(p["scenario"], embedder, source)
    if row["n"] == 0:
        return Verdict(False, f"{_describe(row)}; the scenario scored nobody", 0, 0.0)
    holds, how = ROW_KINDS[claim.kind](p, row)
    return Verdict(holds, f"{_describe(row)}; {how}", row["n"], row["rank1"])


def power(claim: Claim, n: int) -> float:
    """The claim's power at n identities against the alternative its ``power`` table states."""
    p, alt = claim.params, claim.power
    if claim.kind == "rank1_lower_bound":
        return stats.power_lower_bound(n, alt["alternative"], p["min"])
    if claim.kind == "at_chance":
        return stats.power_equivalence_at_chance(n, p["margin"], p["alpha"])
    if claim.kind == "above_chance":
        return stats.power_above_chance(n, alt["alternative"], p["alpha"])
    if claim.kind == "difference_positive":
        return stats.power_paired_difference(n, alt["difference"], alt["discordant"])
    if claim.kind == "consistent_with_published":  # power to see a rate `difference` lower
        rate = p["paper_hits"] / p["paper_n"]
        return 1.0 - stats.prob_consistent(n, rate - alt["difference"], p["paper_n"], rate)
    if claim.kind == "compatible_with_at_most":
        return stats.power_above_chance(n, alt["alternative"], p["alpha"], chance=p["max"])
    raise ValueError(f"claim {claim.id}: unknown kind {claim.kind!r}")


def minimum_n(claim: Claim) -> int | None:
    """Smallest n with power ≥ ``POWER_TARGET`` (for the next 50 n too), or ``floor_n`` when
    the claim states a larger floor (the paper's own n, below which it is another study)."""
    found = stats.min_n(lambda n: power(claim, n), POWER_TARGET, n_max=20_000)
    floor = claim.power.get("floor_n")
    if found is None or floor is None:
        return found
    return max(found, floor)


def finding_band(finding: dict, n: int) -> tuple[float, float]:
    """The band a recorded finding's value must stay in at n identities.

    ``tolerance`` is stated at the finding's own n; sampling error grows as 1/√n, so a
    smaller run gets a proportionally wider band.
    """
    tolerance = finding["tolerance"] * (finding["n"] / max(n, 1)) ** 0.5
    return finding["value"] - tolerance, finding["value"] + tolerance


def verdict_for(claim: Claim, results: Any, embedder: str, source: str | None = None) -> Verdict:
    """``evaluate``, where results that lack the claim's scenario are a failed verdict."""
    try:
        return evaluate(claim, results, embedder, source)
    except KeyError as exc:
        return Verdict(False, f"the results have no such scenario: {exc}", 0, float("nan"))


@dataclass(frozen=True)
class Judgement:
    outcome: str  # pass | fail | skip | xfail
    message: str


def judge(claim: Claim, verdict: Verdict, default_run: bool, finding_key: str) -> Judgement:
    """What a claim's test reports, from its verdict; nothing passes vacuously.

    ``default_run``: the run asked for the profile's own number of identities. There an n
    below the claim's minimum fails; in a reduced run the claim is not judged (skipped).
    """
    if verdict.n == 0:
        return Judgement("fail", f"{claim.id}: nobody was scored — {verdict.measured}")
    if verdict.n < claim.min_n:
        why = (
            f"n = {verdict.n} is below the claim's minimum n = {claim.min_n} "
            f"(its power is under {POWER_TARGET:.0%} there): {verdict.measured}"
        )
        if default_run:
            return Judgement("fail", f"{claim.id}: {why}")
        return Judgement("skip", f"not judged at n = {verdict.n} (needs n ≥ {claim.min_n})")
    finding = claim.known_failures.get(finding_key)
    if finding:
        lo, hi = finding_band(finding, verdict.n)
        if not lo <= verdict.value <= hi:
            return Judgement(
                "fail",
                f"{claim.id} [{finding_key}]: the recorded finding ({finding['measured']}) "
                f"moved: measured {verdict.value:.4f}, outside {lo:.4f}–{hi:.4f} at n = "
                f"{verdict.n}. {verdict.measured}. Re-measure and update known_failures.",
            )
        if verdict.holds:
            return Judgement(
                "fail",
                f"{claim.id} [{finding_key}] was recorded as not holding "
                f"({finding['measured']}) but now holds: {verdict.measured}. "
                "Update known_failures.",
            )
        return Judgement("xfail", f"finding: {claim.statement} does not hold — {verdict.measured}")
    if verdict.holds:
        return Judgement("pass", verdict.measured)
    return Judgement(
        "fail",
        f"{claim.statement} — does not hold: {verdict.measured}. Source: {claim.citation}",
    )


def source_of(results: Any, reconstruct: str | None) -> str | None:
    """The mask source (``reconstruct+render+cut``) of a reconstruct backend in a run."""
    if reconstruct is None:
        return None
    for source in results.config["mask_sources"]:
        if source.split("+")[0] == reconstruct:
            return source
    raise KeyError(f"the run has no mask source of {reconstruct!r}")


def claim_cases(profile: Any, claims: list[Claim]) -> list[tuple[Claim, str, str | None, str]]:
    """(claim, embedder, reconstruct or None, case key) for every case in which the claims
    of ``profile`` are judged: once per embedder, and per reconstruction backend for
    per-source claims. The key names the case in ``known_failures`` and reports."""
    out = []
    for claim in claims:
        if claim.profile != profile.name:
            continue
        reconstructs = profile.reconstruct if claim.per_source else (None,)
        for embedder in profile.embedders:
            for reconstruct in reconstructs:
                key = f"{embedder}/{reconstruct}" if reconstruct else embedder
                out.append((claim, embedder, reconstruct, key))
    return out


def is_default_run(results: Any, profile: Any) -> bool:
    """Whether a run asked for the profile's own number of identities (claims are judged
    strictly there: an n below a claim's minimum fails)."""
    return results.config["profile"]["identities"] == profile.identities


def claim_judgements(results, claims_of: str | None = None) -> list[tuple[Any, str, Any, Any]]:
    """(claim, case, verdict, judgement) of every claim of the run's profile (or of the
    profile ``claims_of``: paper-fixed is read against the paper's claims), judged as the
    claim tests judge them."""
    from benchmark.specs import load_claims, load_profiles

    profiles = load_profiles()
    own = profiles[results.profile]
    claims_profile = profiles[claims_of or own.extra.get("claims_from", own.name)]
    default_run = is_default_run(results, profiles[results.profile])
    out = []
    for claim, embedder, reconstruct, case in claim_cases(claims_profile, load_claims()):
        try:
            source = source_of(results, reconstruct)
        except KeyError:
            source = "missing"
        verdict = verdict_for(claim, results, embedder, source)
        out.append((claim, case, verdict, judge(claim, verdict, default_run, case)))
    return out


def claim_records(results: Any) -> list[dict[str, Any]]:
    """The run's claim verdicts as results.json stores them (computed once, by the study;
    the CLI and the report read them from there)."""
    return [
        {
            "claim": claim.id,
            "case": case,
            "statement": claim.statement,
            "citation": claim.citation,
            "min_n": claim.min_n,
            "outcome": judgement.outcome,
            "measured": verdict.measured,
            "value": verdict.value if math.isfinite(verdict.value) else None,
            "n": verdict.n,
            "message": judgement.message,
        }
        for claim, case, verdict, judgement in claim_judgements(results)
    ]
