"""Each detector's one-face thresholds, as stored in ``benchmark/specs/detectors.toml``.

The prep stage reads them here; ``benchmark.calibration`` measures them (against the
original's detector) and writes that file. Data, not code: a detector without an entry
keeps the original's 0.9 / 0.1.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import NamedTuple

from benchmark.errors import DmbenchError
from benchmark.specs import SPEC_DIR

DETECTORS_TOML = SPEC_DIR / "detectors.toml"
COMMAND = "python -m benchmark.calibration --out benchmark/specs/detectors.toml"


class OneFaceRule(NamedTuple):
    """Keep a frame iff best score > min_best_score and exactly one score ≥ other_face_score."""

    min_best_score: float
    other_face_score: float


ORIGINAL_RULE = OneFaceRule(0.9, 0.1)  # filter_images_config.ini of the original


# -- the stored thresholds -------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def load_detector_rules(path: Path = DETECTORS_TOML) -> dict[str, OneFaceRule]:
    """Per-detector one-face thresholds from ``detectors.toml``; a missing file is an error
    (a silent fall-back would change YuNet's rule without a word)."""
    if not Path(path).exists():
        raise DmbenchError(f"{path}: the detectors' calibrated thresholds are missing")
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    return {
        name: OneFaceRule(float(table["min_best_score"]), float(table["other_face_score"]))
        for name, table in raw.items()
        if isinstance(table, dict) and "min_best_score" in table
    }


def check_calibrated_model(detector: str, digests: dict[str, str]) -> None:
    """Refuse a detector model other than the one its thresholds were calibrated on: a new
    model scores on its own scale, so its thresholds must be measured again."""
    with open(DETECTORS_TOML, "rb") as handle:
        stored = tomllib.load(handle).get(detector, {}).get("assets_sha256", {}).get(detector)
    if stored and stored != digests:
        raise DmbenchError(
            f"the {detector} model differs from the one its one-face thresholds were "
            f"calibrated on ({DETECTORS_TOML.name}); recalibrate with `{COMMAND}` or give "
            "--min-best-score and --other-face-score"
        )


def rule_for(detector: str) -> OneFaceRule:
    """The detector's stored thresholds; the original's 0.9 / 0.1 for one with no entry."""
    return load_detector_rules().get(detector, ORIGINAL_RULE)
