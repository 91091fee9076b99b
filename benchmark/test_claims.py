"""The claims of the digital-mask study, as tests: ``pytest -k claim_rank1``.

Each claim in ``specs/claims.toml`` states its citation, its bound and why; it runs once
per recogniser of its profile:

* ``lfw`` — the embedded models on LFW (runs anywhere, offline after set-up). The run
  behind the claims is the same as ``nox -s reproduce`` and shares its cache, so after a
  reproduce run the claims take seconds. ``DMBENCH_RESULTS=path/to/results.json`` uses a
  finished run instead; ``DMBENCH_CLAIMS_IDENTITIES=N`` changes the number of identities
  (the bounds are statistical, so they stay valid, only wider).
* ``paper`` — the original's models on YouTube Faces; skipped, naming every missing
  asset and how to obtain it, until they are all present.

A claim that does not hold is reported, not hidden: it carries ``known_failures`` (per
recogniser, with the measured numbers of the profile's default run) and runs as
``xfail(strict=True)``, so it turns red the day it starts to hold.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.assets import AssetStore
from benchmark.claims import evaluate
from benchmark.errors import DmbenchError
from benchmark.settings import cache_root
from benchmark.specs import load_claims, load_profiles
from benchmark.study import StudyOptions, StudyResults, load_results, missing_assets, run_study

PROFILES = load_profiles()
_RESULTS: dict[str, StudyResults] = {}


def _cases():
    for claim in load_claims():
        for embedder in PROFILES[claim.profile].embedders:
            yield pytest.param(claim, embedder, id=f"claim_rank1-{claim.id}-{embedder}")


def study_results(profile_name: str) -> StudyResults:
    """The profile's results: a given results.json, or a (cached) run of the study."""
    if profile_name in _RESULTS:
        return _RESULTS[profile_name]
    profile = PROFILES[profile_name]
    given = os.environ.get("DMBENCH_RESULTS")
    if given and load_results(Path(given)).profile == profile_name:
        results = load_results(Path(given))
    else:
        store = AssetStore()
        missing = missing_assets(profile, store)
        if missing:
            steps = "\n\n".join(store[name].how_to_obtain() for name in missing)
            pytest.skip(
                f"profile '{profile_name}' needs assets that are not available: "
                f"{', '.join(missing)}.\n{steps}"
            )
        identities = os.environ.get("DMBENCH_CLAIMS_IDENTITIES")
        options = StudyOptions(identities=int(identities) if identities else None, progress=False)
        try:
            results = run_study(profile, cache_root() / "claims" / profile_name, options, store)
        except DmbenchError as exc:  # the data itself may be missing (no LFW anywhere)
            pytest.skip(f"profile '{profile_name}' cannot run here: {exc}")
    _RESULTS[profile_name] = results
    return results


@pytest.mark.claim
@pytest.mark.parametrize(("claim", "embedder"), list(_cases()))
def test_claim_rank1(claim, embedder) -> None:
    """Judged on the profile's default run; a smaller run only exercises the machinery.

    Recorded findings (``known_failures``) behave as ``xfail(strict=True)``: the test is
    an expected failure while the claim does not hold, and fails once it does.
    """
    results = study_results(claim.profile)
    verdict = evaluate(claim, results, embedder)
    print(f"{claim.id} [{embedder}]: {verdict.measured}")
    default_n = PROFILES[claim.profile].identities
    ran_n = results.config["profile"]["identities"]
    finding = claim.known_failures.get(embedder)
    if ran_n != default_n:
        if not verdict.holds:
            pytest.xfail(
                f"exercise run on {ran_n} identities (claims are judged on the "
                f"profile's {default_n}): {verdict.measured}"
            )
        return
    if finding:
        if verdict.holds:
            pytest.fail(
                f"{claim.id} [{embedder}] was recorded as not holding ({finding}) "
                f"but now holds: {verdict.measured}. Update known_failures."
            )
        pytest.xfail(f"finding: {claim.statement} does not hold — {verdict.measured}")
    assert verdict.holds, (
        f"{claim.statement} — does not hold: {verdict.measured}. Source: {claim.citation}"
    )
