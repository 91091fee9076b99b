"""Scenarios, profiles and claims of the study, as data (TOML beside this file)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).resolve().parent
IMAGE_VARIANTS = ("face", "overlay", "mask_only", "mask_only_black")


def _load(name: str) -> dict[str, Any]:
    with open(SPEC_DIR / name, "rb") as handle:
        return tomllib.load(handle)


@dataclass(frozen=True)
class Scenario:
    name: str
    query: str
    database: str
    family: str  # Face2Face | Mask2Face | Mask2Mask
    description: str

    def variants(self, reference_quirks: bool = False) -> tuple[str, str]:
        """(query, database) variants actually loaded; the original's bug behind a switch."""
        if reference_quirks and self.name == "MaskOnlyBlack2Face":
            return ("mask_only_black", "mask_only_black")
        return (self.query, self.database)


def load_scenarios() -> list[Scenario]:
    return [Scenario(**raw) for raw in _load("scenarios.toml")["scenario"]]


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
    seed: int = 42
    reference_quirks: bool = False
    identity_rule: str = "usable-sessions"  # see benchmark.pipeline.recognize.pairing
    extra: dict[str, Any] = field(default_factory=dict)


def load_profiles() -> dict[str, Profile]:
    out = {}
    for raw in _load("profiles.toml")["profile"]:
        raw = dict(raw)
        raw.setdefault("identities", None)  # none given: every identity of the dataset
        for key in ("reconstruct", "embedders", "controls"):
            raw[key] = tuple(raw.get(key, ()))
        known = Profile.__dataclass_fields__
        extra = {k: raw.pop(k) for k in list(raw) if k not in known}
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
    # {recogniser (or "recogniser/reconstruct" for per-source claims): finding} for each
    # case in which the claim was found NOT to hold on the profile's default run. A finding
    # is {value, tolerance, n, measured}: the monitored statistic, the band it must stay in
    # (at n; wider on smaller runs), and the numbers as measured. Reported as strict xfail.
    known_failures: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_claims() -> list[Claim]:
    claims = []
    for raw in _load("claims.toml")["claim"]:
        raw = dict(raw)
        params = raw.pop("params", {})
        failures = raw.pop("known_failures", {})
        claims.append(Claim(**raw, params=params, known_failures=failures))
    return claims
