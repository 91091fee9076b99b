"""The claims of the digital-mask study, as tests: ``pytest -k claim_rank1``.

Each claim in ``specs/claims.toml`` states its citation, its bound, why, and the minimum
n at which it has 80 % power; it runs once per embedder of its profile (and per
reconstruction backend for per-source claims):

* ``lfw`` — the embedded models on LFW (runs anywhere, offline after set-up). The run
  behind the claims is the same as ``nox -s reproduce`` and shares its cache.
  ``DMBENCH_RESULTS=path/to/results.json`` judges a finished run instead;
  ``DMBENCH_CLAIMS_IDENTITIES=N`` runs on N valid identities: claims with power at that n
  are judged for real, the others are skipped as "not judged at n = …".
* ``paper`` / ``paper-fixed`` — the original's models on YouTube Faces; skipped, naming
  every missing asset and how to obtain it, until they are all present.
* ``DMBENCH_CLAIMS_PROFILE=NAME`` collects the claims of one profile only.

Nothing passes vacuously (``benchmark.claims.judge``): a scenario that scored nobody
fails; in the profile's default run an n below a claim's minimum fails; a pipeline error
on a profile whose assets are all here fails. A recorded finding (``known_failures``)
runs as ``xfail(strict=True)`` while its value stays in its band, and fails when the
claim starts to hold or the value moves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.assets import AssetStore
from benchmark.claims import claim_cases, is_default_run, judge, source_of, verdict_for
from benchmark.datasets import resolve_dataset
from benchmark.errors import DmbenchError
from benchmark.settings import cache_root, offline
from benchmark.specs import load_claims, load_profiles
from benchmark.study import StudyOptions, StudyResults, load_results, missing_assets, run_study

PROFILES = load_profiles()
CLAIMS = load_claims()
_RESULTS: dict[str, StudyResults] = {}
_FAILED: dict[str, str] = {}


def _cases():
    only = os.environ.get("DMBENCH_CLAIMS_PROFILE")
    for profile in PROFILES.values():
        if only and profile.name != only:
            continue
        for claim, embedder, reconstruct, key in claim_cases(profile, CLAIMS):
            yield pytest.param(
                claim, embedder, reconstruct, key, id=f"claim_rank1-{claim.id}-{key}"
            )


def study_results(profile_name: str) -> StudyResults:
    """The profile's results: a given results.json, or a (cached) run of the study.

    A run that failed is remembered, so the claims after the first fail at once instead
    of re-running a broken study.
    """
    if profile_name in _FAILED:
        pytest.fail(_FAILED[profile_name])
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
        if offline():  # online, the study downloads what it may; offline, no data: skip
            try:
                resolve_dataset(profile.dataset, store)
            except DmbenchError as exc:
                pytest.skip(f"profile '{profile_name}': no copy of its dataset offline: {exc}")
        identities = os.environ.get("DMBENCH_CLAIMS_IDENTITIES")
        options = StudyOptions(identities=int(identities) if identities else None, progress=False)
        try:
            results = run_study(profile, cache_root() / "claims" / profile_name, options, store)
        except DmbenchError as exc:  # every asset is here: a broken pipeline, not a skip
            _FAILED[profile_name] = (
                f"profile '{profile_name}' failed with all its assets present: {exc}"
            )
            pytest.fail(_FAILED[profile_name])
    _RESULTS[profile_name] = results
    return results


@pytest.mark.claim
@pytest.mark.parametrize(("claim", "embedder", "reconstruct", "key"), list(_cases()))
def test_claim_rank1(claim, embedder, reconstruct, key) -> None:
    results = study_results(claim.profile)
    source = source_of(results, reconstruct)
    verdict = verdict_for(claim, results, embedder, source)
    print(f"{claim.id} [{key}]: {verdict.measured}")
    judgement = judge(claim, verdict, is_default_run(results, PROFILES[claim.profile]), key)
    if judgement.outcome == "skip":
        pytest.skip(judgement.message)
    if judgement.outcome == "xfail":
        pytest.xfail(judgement.message)
    if judgement.outcome == "fail":
        pytest.fail(judgement.message)
    assert judgement.outcome == "pass", judgement


@pytest.mark.claim
def test_recorded_run_numbers() -> None:
    """The lfw run behind the claims (a finished one under ``DMBENCH_RESULTS``, as ``nox -s
    reproduce`` sets it; else the claims' own run, CI's cold 60 identities) reproduces the
    numbers recorded for its size (``fixtures/run_numbers_*.json``: 555 and 60 identities):
    exactly on the CPU class and lock they were recorded with, within tolerance elsewhere
    (benchmark/reproduction.py says which, and which identities differ). A change meant
    to move a number re-records the file and says why."""
    from benchmark.reproduction import RunNumbers, check

    if os.environ.get("DMBENCH_CLAIMS_PROFILE", "lfw") != "lfw":
        pytest.skip("numbers are recorded for the lfw profile only")
    verdict = check(RunNumbers.of(study_results("lfw")))
    print(f"reproduction: {verdict.message}")
    if verdict.outcome == "none":
        pytest.skip(verdict.message)  # said plainly, in the -rA summary
    assert verdict.outcome in {"exact", "tolerance"}, verdict.message
