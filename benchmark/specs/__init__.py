"""Scenarios, profiles and claims of the study, as data (TOML beside this file)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).resolve().parent
# The images of the study, defined once: the mask stage writes MASK_VARIANTS for every
# crop; a scenario embeds one of IMAGE_VARIANTS on each side ("face" is the prep crop).
MASK_VARIANTS = ("overlay", "mask_only", "mask_only_black")
IMAGE_VARIANTS = ("face", *MASK_VARIANTS)


def _load(name: str) -> dict[str, Any]:
    with open(SPEC_DIR / name, "rb") as handle:
        return tomllib.load(handle)


def _checked(file: str, table: str, raw: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """``raw`` when every key is known; else one error naming the file, the entry and the
    key (a misspelt key silently ignored would change a run without a word)."""
    unknown = sorted(set(raw) - known)
    if unknown:
        from benchmark.errors import DmbenchError

        entry = raw.get("name", raw.get("id", "?"))
        raise DmbenchError(
            f"{SPEC_DIR / file}: [[{table}]] '{entry}' has unknown key(s) "
            f"{', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )
    return raw


@dataclass(frozen=True)
class Scenario:
    name: str
    query: str
    database: str
    family: str  # Face2Face | Mask2Face | Mask2Mask
    description: str
    # What the original actually loaded instead (its bug), used under reference_quirks.
    quirk_variants: tuple[str, str] | None = None
    quirk: str = ""  # why

    def variants(self, reference_quirks: bool = False) -> tuple[str, str]:
        """(query, database) variants actually loaded; the original's bug behind a switch."""
        if reference_quirks and self.quirk_variants is not None:
            return self.quirk_variants
        return (self.query, self.database)


def load_scenarios() -> list[Scenario]:
    out = []
    for raw in _load("scenarios.toml")["scenario"]:
        raw = dict(_checked("scenarios.toml", "scenario", raw, set(Scenario.__dataclass_fields__)))
        if "quirk_variants" in raw:
            raw["quirk_variants"] = tuple(raw["quirk_variants"])
        for side in ("query", "database"):
            if raw[side] not in IMAGE_VARIANTS:
                raise ValueError(f"scenario {raw['name']}: unknown {side} variant {raw[side]!r}")
        out.append(Scenario(**raw))
    return out


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    dataset: str
    identities: int | None  # VALID identities to score (drawn until reached); None: all
    protocol: str
    detector: str
    pose: str
    reconstruct: tuple[str, ...]
    render: str
    cut: str
    embedders: tuple[str, ...]
    controls: tuple[str, ...] = ()  # mask_controls run over the same cut, beside the masks
    # Any anonymizers scored beside (or instead of) the reconstructions: built-in names,
    # installed plug-ins, module:callable, folder:DIR (`dmbench evaluate --anonymizer`).
    anonymizers: tuple[str, ...] = ()
    seed: int = 42
    reference_quirks: bool = False
    identity_rule: str = "usable-sessions"  # see benchmark.pipeline.recognize.pairing
    # Optional keys: claims_from (judge this profile against another's claims: paper-fixed
    # against the paper's). Its required assets are derived from its backends
    # (benchmark.study.required_assets), not listed.
    extra: dict[str, Any] = field(default_factory=dict)


PROFILE_EXTRA_KEYS = frozenset({"claims_from"})


def load_profiles() -> dict[str, Profile]:
    out = {}
    known = set(Profile.__dataclass_fields__) - {"extra"}
    for raw in _load("profiles.toml")["profile"]:
        raw = dict(_checked("profiles.toml", "profile", raw, known | PROFILE_EXTRA_KEYS))
        raw.setdefault("identities", None)  # none given: every identity of the dataset
        for key in ("reconstruct", "embedders", "controls", "anonymizers"):
            raw[key] = tuple(raw.get(key, ()))
        extra = {k: raw.pop(k) for k in list(raw) if k in PROFILE_EXTRA_KEYS}
        out[raw["name"]] = Profile(**raw, extra=extra)
    return out


@dataclass(frozen=True)
class Claim:
    id: str
    profile: str
    kind: str
    statement: str
    citation: str
    reasoning: str
    params: dict[str, Any]
    # The alternative the claim's power is computed against (and an optional floor_n); the
    # minimum n follows from it (``benchmark.claims.minimum_n``) and is stated in ``min_n``.
    power: dict[str, Any]
    min_n: int
    per_source: bool = False  # judged once per reconstruction backend, not only the first
    # {embedder (or "embedder/reconstruct" for per-source claims): finding} for each
    # case in which the claim was found NOT to hold on the profile's default run. A finding
    # is {value, tolerance, n, measured}: the monitored statistic, the band it must stay in
    # (at n; wider on smaller runs), and the numbers as measured. Reported as strict xfail.
    known_failures: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_claims() -> list[Claim]:
    claims = []
    for raw in _load("claims.toml")["claim"]:
        raw = dict(_checked("claims.toml", "claim", raw, set(Claim.__dataclass_fields__)))
        params = raw.pop("params", {})
        failures = raw.pop("known_failures", {})
        claims.append(Claim(**raw, params=params, known_failures=failures))
    return claims


RESULTS_SCHEMA_VERSION = 1  # the version of results.schema.json that this dmbench reads and writes


def results_problems(data: Any) -> list[str]:
    """Why ``data`` is not a results.json of this dmbench, as short lines (none: it is):
    its ``schema_version``, the schema's rules (benchmark/specs/results.schema.json), and
    the scenario names, which must be this version's (benchmark/specs/scenarios.toml)."""
    import json

    import jsonschema

    if not isinstance(data, dict):
        return [f"the file holds a JSON {type(data).__name__}, not an object"]
    version = data.get("schema_version", 0)
    if version != RESULTS_SCHEMA_VERSION:
        return [
            f"schema_version {json.dumps(version)[:40]}: this dmbench reads schema_version "
            f"{RESULTS_SCHEMA_VERSION} only (render it with the dmbench that wrote it)"
        ]
    schema = json.loads((SPEC_DIR / "results.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    problems = [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message[:200]}"
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        return problems
    known = {s.name for s in load_scenarios()}
    for index, row in enumerate(data["scenarios"]):
        if row["scenario"] not in known:
            problems.append(
                f"scenarios/{index}/scenario: {json.dumps(row['scenario'])[:80]} is not a "
                "scenario of this dmbench"
            )
    return problems
