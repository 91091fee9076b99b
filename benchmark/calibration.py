"""The one-face rule per detector, calibrated to the original's detector, never to a result.

The original keeps a frame when its Caffe RetinaFace's best face scores > 0.9 and exactly
one face scores ≥ 0.1. Another detector scores on another scale (YuNet's int8 scores put
clear faces at 0.92–0.94 and give half its background faces 0.1–0.5), so the same two
numbers would be a different rule. Here a detector's two thresholds are chosen so that its
keep/drop decisions agree best with the Caffe model's at 0.9 / 0.1 on the same photos.
Only the detection decision is compared (no head pose, no crop, no recognition), so
nothing is tuned on rank-1.

``python -m benchmark.calibration [--out benchmark/specs/detectors.toml]`` reruns it; the
thresholds live in ``benchmark/specs/detectors.toml``, where prep reads them.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.imageio import write_bytes_atomic
from benchmark.pipeline.prep.rules import (
    COMMAND,
    ORIGINAL_RULE,
    OneFaceRule,
    load_detector_rules,
)
from benchmark.settings import cache_root, progress_bars

if TYPE_CHECKING:
    from benchmark.assets import AssetStore
    from benchmark.datasets import Dataset

REFERENCE_DETECTOR = "retinaface-caffe"
# Bump when what a cached score list means changes (detector preprocessing, score floor).
SCORES_FORMAT = 1


# The grid, in hundredths (integers, so grid points equal the TOML's decimals exactly).
BEST_GRID = tuple(range(50, 100))  # min_best_score 0.50 .. 0.99
OTHER_MIN = 5  # other_face_score 0.05 .. min_best_score (0.05 is the detectors' floor)


# -- decisions and their agreement ------------------------------------------------------
def top_two(score_lists: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Best and second-best score per photo; -inf where there is none.

    The rule needs no more: with best > t_best ≥ t_other, "exactly one score ≥ t_other"
    is "second < t_other".
    """
    best = np.full(len(score_lists), -np.inf)
    second = np.full(len(score_lists), -np.inf)
    for i, scores in enumerate(score_lists):
        ordered = sorted(scores, reverse=True)
        if ordered:
            best[i] = ordered[0]
        if len(ordered) > 1:
            second[i] = ordered[1]
    return best, second


def one_face_keeps(best: np.ndarray, second: np.ndarray, rule: OneFaceRule) -> np.ndarray:
    """Prep's detection decision (``PrepStage._compute``) for each photo; no face = drop."""
    if rule.other_face_score > rule.min_best_score:
        raise ValueError(f"other_face_score above min_best_score: {rule}")
    return (best > rule.min_best_score) & (second < rule.other_face_score)


def cohen_kappa(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Cohen's kappa of two keep/drop vectors; NaN when chance agreement is 1 (undefined)."""
    candidate = np.asarray(candidate, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    observed = float(np.mean(candidate == reference))
    p_cand, p_ref = float(np.mean(candidate)), float(np.mean(reference))
    chance = p_cand * p_ref + (1 - p_cand) * (1 - p_ref)
    if chance >= 1.0:
        return math.nan
    return (observed - chance) / (1 - chance)


@dataclass(frozen=True)
class Agreement:
    """How one detector's keep/drop decisions compare with the reference's."""

    photos: int
    agreement: float  # share of photos with the same decision
    kappa: float
    # [[both keep, candidate keeps only], [reference keeps only, both drop]]
    confusion: tuple[tuple[int, int], tuple[int, int]]
    keep_candidate: int
    keep_reference: int


def compare(candidate: np.ndarray, reference: np.ndarray) -> Agreement:
    candidate = np.asarray(candidate, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    if candidate.shape != reference.shape or candidate.size == 0:
        raise ValueError("compare needs two non-empty decision vectors of equal length")
    both = int(np.sum(candidate & reference))
    cand_only = int(np.sum(candidate & ~reference))
    ref_only = int(np.sum(~candidate & reference))
    neither = int(np.sum(~candidate & ~reference))
    return Agreement(
        photos=int(candidate.size),
        agreement=float(np.mean(candidate == reference)),
        kappa=cohen_kappa(candidate, reference),
        confusion=((both, cand_only), (ref_only, neither)),
        keep_candidate=int(candidate.sum()),
        keep_reference=int(reference.sum()),
    )


def grid_search(
    best: np.ndarray,
    second: np.ndarray,
    reference_keep: np.ndarray,
    target: OneFaceRule = ORIGINAL_RULE,
) -> OneFaceRule:
    """The (min_best_score, other_face_score) pair whose decisions match ``reference_keep``
    on the most photos.

    Grid: min_best_score 0.50..0.99 and other_face_score 0.05..min_best_score, step 0.01.
    Ties go to the pair nearest to ``target`` (the original's 0.9 / 0.1, Euclidean), then
    to the larger min_best_score, then the larger other_face_score, so a flat optimum moves
    the thresholds no further from the original's than the data asks.
    """
    reference_keep = np.asarray(reference_keep, dtype=bool)
    t_best = round(target.min_best_score * 100)
    t_other = round(target.other_face_score * 100)
    above = {b: best > b / 100 for b in BEST_GRID}
    candidates = []
    for other in range(OTHER_MIN, max(BEST_GRID) + 1):
        below = second < other / 100
        for b in BEST_GRID:
            if other > b:
                continue
            matches = int(np.sum((above[b] & below) == reference_keep))
            distance = (b - t_best) ** 2 + (other - t_other) ** 2
            candidates.append((-matches, distance, -b, -other))
    _, _, neg_b, neg_other = min(candidates)
    return OneFaceRule(-neg_b / 100, -neg_other / 100)


# -- detector scores, cached -------------------------------------------------------------
@dataclass
class PhotoScores:
    """Sorted detection scores (≥ the detector floor) per photo, by dataset-relative path."""

    detector: str
    scores: dict[str, list[float]]
    excluded: dict[str, str]  # rel -> why the photo has no scores (unreadable, bad hash)


def _score_cache_path(detector: Any, store: AssetStore) -> Path:
    from benchmark.pipeline.prep.detectors import SCORE_FLOOR

    config = {
        "format": SCORES_FORMAT,
        "detector": detector.name,
        "assets": {name: store.sha256_of(name) for name in detector.assets},
        "score_floor": SCORE_FLOOR,
        "preprocess": {
            k: getattr(detector, k, None) for k in ("max_side", "target_area", "mean_bgr")
        },
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return cache_root() / "calibration" / f"{detector.name}-{digest[:16]}.json"


def collect_scores(
    dataset: Dataset,
    detector_name: str,
    store: AssetStore,
    *,
    use_cache: bool = True,
    progress: bool = False,
) -> PhotoScores:
    """Run one detector on every photo of ``dataset``; cached per detector, assets and photo.

    Photos are read and verified as prep reads them (sha256 against the manifest), and
    decoded with ``load_image``, so the scores are those prep sees.
    """
    from tqdm import tqdm

    from benchmark.errors import ImageReadError
    from benchmark.imageio import load_image
    from benchmark.pipeline.prep.types import DETECTORS

    detector = DETECTORS.create(detector_name, store=store, device="cpu")
    path = _score_cache_path(detector, store)
    cached: dict[str, list[float]] = {}
    if use_cache and path.exists():
        try:
            cached = dict(json.loads(path.read_text()).get("scores", {}))
        except (OSError, ValueError, TypeError, AttributeError):
            cached = {}  # a damaged score cache is recomputed, never trusted
    scores: dict[str, list[float]] = {}
    excluded: dict[str, str] = {}
    new = 0
    for frame in tqdm(dataset.frames, desc=f"scores {detector_name}", disable=not progress):
        try:
            data = Path(frame.path).read_bytes()
        except OSError as exc:
            excluded[frame.rel] = f"unreadable file ({exc.strerror})"
            continue
        digest = hashlib.sha256(data).hexdigest()
        expected = dataset.expected_sha256.get(frame.rel)
        if expected and digest != expected:
            excluded[frame.rel] = "sha256 does not match the dataset manifest"
            continue
        if digest in cached:
            scores[frame.rel] = cached[digest]
            continue
        try:
            rgb = load_image(frame.path, data).rgb
        except ImageReadError as exc:
            excluded[frame.rel] = exc.reason
            continue
        found = sorted((float(d.score) for d in detector.detect(rgb)), reverse=True)
        scores[frame.rel] = cached[digest] = found
        new += 1
        if use_cache and new % 500 == 0:
            write_bytes_atomic(
                path, json.dumps({"detector": detector_name, "scores": cached}).encode()
            )
    if use_cache and new:
        write_bytes_atomic(path, json.dumps({"detector": detector_name, "scores": cached}).encode())
    return PhotoScores(detector_name, scores, excluded)


# -- one calibration ---------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """A detector's calibrated rule with the figures that justify it."""

    detector: str
    reference: str
    rule: OneFaceRule
    before: Agreement  # the candidate at the original's 0.9 / 0.1
    after: Agreement  # the candidate at ``rule``
    holdout_rule: OneFaceRule  # calibrated on even-index identities only
    holdout_before: Agreement  # on odd-index identities, at 0.9 / 0.1
    holdout_after: Agreement  # on odd-index identities, at ``holdout_rule``
    excluded: int  # photos without scores from either detector


def calibrate(
    dataset: Dataset,
    candidate: PhotoScores,
    reference: PhotoScores,
    reference_rule: OneFaceRule = ORIGINAL_RULE,
) -> Calibration:
    """Fit ``candidate``'s rule to ``reference``'s decisions at ``reference_rule``.

    Hold-out: identities in name order, even index to calibrate, odd index to evaluate.
    """
    identity_index = {name: i for i, name in enumerate(dataset.identities())}
    frames = [f for f in dataset.frames if f.rel in candidate.scores and f.rel in reference.scores]
    if not frames:
        raise ValueError("no photo has scores from both detectors")
    rels = [f.rel for f in frames]
    odd = np.array([identity_index[f.identity] % 2 == 1 for f in frames])
    cand_best, cand_second = top_two([candidate.scores[r] for r in rels])
    ref_best, ref_second = top_two([reference.scores[r] for r in rels])
    ref_keep = one_face_keeps(ref_best, ref_second, reference_rule)

    rule = grid_search(cand_best, cand_second, ref_keep, reference_rule)
    even = ~odd
    holdout_rule = grid_search(cand_best[even], cand_second[even], ref_keep[even], reference_rule)
    return Calibration(
        detector=candidate.detector,
        reference=reference.detector,
        rule=rule,
        before=compare(one_face_keeps(cand_best, cand_second, reference_rule), ref_keep),
        after=compare(one_face_keeps(cand_best, cand_second, rule), ref_keep),
        holdout_rule=holdout_rule,
        holdout_before=compare(
            one_face_keeps(cand_best[odd], cand_second[odd], reference_rule), ref_keep[odd]
        ),
        holdout_after=compare(
            one_face_keeps(cand_best[odd], cand_second[odd], holdout_rule), ref_keep[odd]
        ),
        excluded=len(dataset.frames) - len(rels),
    )


# -- output ------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _inline_table(table: dict[str, Any]) -> str:
    """A (nested) dict of strings as a TOML inline table, keys quoted."""
    items = (
        f"{json.dumps(k)} = {_inline_table(v) if isinstance(v, dict) else json.dumps(v)}"
        for k, v in sorted(table.items())
    )
    return "{ " + ", ".join(items) + " }"


def _confusion_toml(agreement: Agreement) -> str:
    (a, b), (c, d) = agreement.confusion
    return f"[[{a}, {b}], [{c}, {d}]]"


def render_toml(
    results: Iterable[Calibration], dataset: Dataset, store: AssetStore, date: str
) -> str:
    """``detectors.toml``: the thresholds per detector, each with its figures beside it."""
    results = list(results)
    lines = [
        "# The one-face rule per face detector: keep a frame iff its best detection scores",
        "# > min_best_score and exactly one detection scores >= other_face_score (then the",
        "# head-pose filter). Prep uses these unless --min-best-score / --other-face-score",
        "# are given. Written by benchmark/calibration.py; do not edit by hand.",
        f"# Regenerate: {COMMAND}",
        "",
        f"[{REFERENCE_DETECTOR}]",
        f"min_best_score = {ORIGINAL_RULE.min_best_score}",
        f"other_face_score = {ORIGINAL_RULE.other_face_score}",
        "note = \"the original's thresholds (filter_images_config.ini) for the original's "
        'detector; the reference every other detector is calibrated against"',
    ]
    for cal in results:
        b, a, hb, ha = cal.before, cal.after, cal.holdout_before, cal.holdout_after
        assets = {name: store.sha256_of(name) for name in (cal.detector, cal.reference)}
        lines += [
            "",
            f"[{cal.detector}]",
            f"min_best_score = {cal.rule.min_best_score:.2f}",
            f"other_face_score = {cal.rule.other_face_score:.2f}",
            f'calibrated_against = "{cal.reference} at {ORIGINAL_RULE.min_best_score:g}/'
            f'{ORIGINAL_RULE.other_face_score:g}"',
            'objective = "agreement of the keep/drop decision of the one-face rule alone (no '
            "head pose, no recognition result) with the reference detector's, photo by photo\"",
            'grid = "min_best_score 0.50..0.99, other_face_score 0.05..min_best_score, '
            'step 0.01; ties: nearest to (0.9, 0.1), then the larger thresholds"',
            f'dataset = "{dataset.name} ({len(dataset.identities())} identities)"',
            f"photos = {b.photos}",
            f"photos_excluded = {cal.excluded}  # unreadable or without scores",
            f"agreement_before = {_fmt(b.agreement)}  # at 0.9 / 0.1",
            f"agreement_after = {_fmt(a.agreement)}",
            f"kappa_before = {_fmt(b.kappa)}",
            f"kappa_after = {_fmt(a.kappa)}",
            f"keep_before = {b.keep_candidate}  # photos this detector keeps at 0.9 / 0.1",
            f"keep_after = {a.keep_candidate}",
            f"keep_reference = {b.keep_reference}  # photos {cal.reference} keeps at 0.9 / 0.1",
            "# confusion: [[both keep, only this keeps], [only the reference keeps, both drop]]",
            f"confusion_before = {_confusion_toml(b)}",
            f"confusion_after = {_confusion_toml(a)}",
            'holdout_split = "identities in name order: even index calibrates, odd index '
            'evaluates"',
            f"holdout_min_best_score = {cal.holdout_rule.min_best_score:.2f}",
            f"holdout_other_face_score = {cal.holdout_rule.other_face_score:.2f}",
            f"holdout_photos = {hb.photos}",
            f"holdout_agreement_before = {_fmt(hb.agreement)}",
            f"holdout_agreement_after = {_fmt(ha.agreement)}",
            f"holdout_kappa_before = {_fmt(hb.kappa)}",
            f"holdout_kappa_after = {_fmt(ha.kappa)}",
            f'date = "{date}"',
            f'command = "{COMMAND}"',
            f"assets_sha256 = {_inline_table(assets)}",
        ]
    return "\n".join(lines) + "\n"


def _table(agreement: Agreement, name: str, reference: str) -> list[str]:
    (a, b), (c, d) = agreement.confusion
    width = max(len(name), len(reference)) + 6
    return [
        f"    {'':{width}s}{reference + ' keep':>24s}{reference + ' drop':>24s}",
        f"    {name + ' keep':{width}s}{a:>24d}{b:>24d}",
        f"    {name + ' drop':{width}s}{c:>24d}{d:>24d}",
    ]


def format_report(cal: Calibration) -> str:
    """A human-readable summary of one calibration."""
    b, a = cal.before, cal.after
    hb, ha = cal.holdout_before, cal.holdout_after
    r, h = cal.rule, cal.holdout_rule
    lines = [
        f"{cal.detector} calibrated against {cal.reference} at 0.9 / 0.1 "
        f"(one-face decision only, no head pose), {b.photos} photos "
        f"({cal.excluded} excluded):",
        f"  thresholds: min_best_score {r.min_best_score:.2f}, "
        f"other_face_score {r.other_face_score:.2f}",
        f"  agreement {b.agreement:.4f} -> {a.agreement:.4f}, kappa {b.kappa:.4f} -> {a.kappa:.4f}",
        f"  keeps: {cal.detector} {b.keep_candidate} -> {a.keep_candidate}, "
        f"{cal.reference} {b.keep_reference}",
        "  before (0.9 / 0.1):",
        *_table(b, cal.detector, cal.reference),
        "  after:",
        *_table(a, cal.detector, cal.reference),
        f"  hold-out (calibrated on even-index identities: {h.min_best_score:.2f} / "
        f"{h.other_face_score:.2f}; evaluated on {hb.photos} photos of odd-index ones): "
        f"agreement {hb.agreement:.4f} -> {ha.agreement:.4f}, "
        f"kappa {hb.kappa:.4f} -> {ha.kappa:.4f}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmark.calibration``: rerun the calibration, print it, write the TOML."""

    from benchmark.assets import AssetStore
    from benchmark.datasets import resolve_dataset
    from benchmark.pipeline.prep.types import DETECTORS

    parser = argparse.ArgumentParser(
        prog="python -m benchmark.calibration",
        description="Calibrate each detector's one-face thresholds to the original's "
        "detector at 0.9 / 0.1 (detection decisions only; nothing is tuned on rank-1).",
    )
    parser.add_argument("--dataset", default="lfw", help="dataset name or folder (lfw)")
    parser.add_argument(
        "--detector",
        action="append",
        choices=[n for n in DETECTORS.names() if n != REFERENCE_DETECTOR],
        help="detector to calibrate (repeatable; default: every one but the reference)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write the TOML here (default: print it)"
    )
    parser.add_argument("--no-cache", action="store_true", help="recompute every score")
    args = parser.parse_args(argv)

    progress = progress_bars()
    store = AssetStore()
    dataset = resolve_dataset(args.dataset, store)
    names = args.detector or [n for n in DETECTORS.names() if n != REFERENCE_DETECTOR]
    use_cache = not args.no_cache
    reference = collect_scores(
        dataset, REFERENCE_DETECTOR, store, use_cache=use_cache, progress=progress
    )
    results = []
    for name in names:
        scores = collect_scores(dataset, name, store, use_cache=use_cache, progress=progress)
        results.append(calibrate(dataset, scores, reference))
        print(format_report(results[-1]))
    text = render_toml(results, dataset, store, datetime.date.today().isoformat())
    if args.out is None:
        sys.stdout.write("\n" + text)
    else:
        write_bytes_atomic(args.out, text.encode())
        load_detector_rules.cache_clear()
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
