"""How well a cut's face region agrees with the original's, measured on real prep crops.

The original cut the face as the convex hull of dlib's 81 landmarks (68 iBUG + 13
forehead points up to the hairline). That model is user-supplied and absent here, so the
REFERENCE region is the hull of dlib's real 68 points plus the 13 points of the reference
forehead rule (``face_region.reference_81_like_hull``). Per crop and per candidate cut:

* ``iou`` — intersection over union of the two regions;
* ``inside`` — share of the reference area that the candidate covers;
* ``outside`` — share of the candidate area that lies outside the reference;
* ``share`` / ``reference_share`` — each region's share of the crop.

A crop where dlib finds no face or several is skipped for every cut; one where a cut
fails (``MaskFailure``) is skipped for that cut; both with their reasons counted.

``python -m benchmark.region_agreement --out benchmark/specs/region_agreement.json``
measures every kept prep crop of LFW-dev (the default prep, as configured now) and also
re-runs the grid that chose the ``mediapipe-forehead`` constants. The JSON holds
summaries only, so it is small enough to commit; rerun the command after the prep
default changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmark.assets import AssetStore
from benchmark.imageio import write_bytes_atomic
from benchmark.pipeline.mask.face_region import (
    FOREHEAD_HEIGHT,
    FOREHEAD_WIDTH,
    mesh_forehead_polygon,
    reference_81_like_hull,
)
from benchmark.pipeline.mask.types import CUTS, FaceCut, MaskFailure, hull_region
from benchmark.settings import progress_bars

DLIB_68_ASSET = ("dlib-face-recognition-models", "models/shape_predictor_68_face_landmarks.dat")
DEFAULT_CUTS = ("mediapipe-forehead", "mediapipe-hull")
HISTOGRAM_BIN = 0.05
DEFAULT_OUT = Path(__file__).parent / "specs" / "region_agreement.json"
COMMAND = "python -m benchmark.region_agreement --out benchmark/specs/region_agreement.json"
# Grid re-run by the command for the mediapipe-forehead constants (face_region).
GRID_WIDTHS = tuple(np.round(np.arange(0.80, 1.101, 0.05), 2))
GRID_HEIGHTS = tuple(np.round(np.arange(1.0, 1.601, 0.05), 2))


class ReferenceHull:
    """The reference region: convex hull of dlib's 68 points + the reference forehead."""

    def __init__(self, store: AssetStore) -> None:
        from benchmark.pipeline.common.landmarks_dlib import DlibLandmarker

        self.landmarker = DlibLandmarker(store.file(*DLIB_68_ASSET), n_points=68)

    def points(self, crop: np.ndarray) -> np.ndarray:
        """The 81 points; MaskFailure when dlib finds no face or several."""
        return reference_81_like_hull(self.landmarker.landmarks(crop))

    def region(self, crop: np.ndarray) -> np.ndarray:
        return hull_region(self.points(crop), crop.shape[:2])


def agreement(candidate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The per-crop measures (module docstring) of two boolean regions of one crop."""
    both = np.logical_and(candidate, reference).sum()
    union = np.logical_or(candidate, reference).sum()
    cand, ref = candidate.sum(), reference.sum()
    return {
        "iou": float(both / union),
        "inside": float(both / ref),
        "outside": float((cand - both) / cand),
        "share": float(cand / candidate.size),
        "reference_share": float(ref / reference.size),
    }


@dataclass
class CutAgreement:
    """The measures of one cut over many crops (kept per crop only until summarized)."""

    rows: list[dict[str, float]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        """Mean / median / 5th percentile of IoU, means of the rest, counts, histogram."""
        out: dict = {"n_measured": len(self.rows), "n_skipped": sum(self.skipped.values())}
        out["skipped"] = dict(sorted(self.skipped.items()))
        if not self.rows:
            return out
        iou = np.array([r["iou"] for r in self.rows])
        out["iou"] = {
            "mean": _r(iou.mean()),
            "median": _r(np.median(iou)),
            "p5": _r(np.percentile(iou, 5)),
            "min": _r(iou.min()),
        }
        for key in ("inside", "outside", "share", "reference_share"):
            out[f"{key}_mean"] = _r(np.mean([r[key] for r in self.rows]))
        edges = np.round(np.arange(0.0, 1.0 + HISTOGRAM_BIN / 2, HISTOGRAM_BIN), 2)
        counts, _ = np.histogram(iou, bins=edges)
        out["iou_histogram"] = {
            f"{lo:.2f}-{hi:.2f}": int(n)
            for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)
            if n
        }
        return out


def _r(value: float) -> float:
    return round(float(value), 4)


def measure(
    crops: Iterable[np.ndarray],
    cuts: dict[str, FaceCut],
    reference: ReferenceHull,
    on_crop: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> dict[str, CutAgreement]:
    """Agreement of each cut with the reference on every crop (skips counted by reason).

    ``on_crop(crop, reference_points)`` is called for every crop the reference measured
    (the calibration grid collects its inputs there).
    """
    results = {name: CutAgreement() for name in cuts}
    for crop in crops:
        try:
            ref_points = reference.points(crop)
        except MaskFailure as exc:
            for result in results.values():
                result.skipped[f"reference (dlib 68): {exc.reason}"] += 1
            continue
        ref_region = hull_region(ref_points, crop.shape[:2])
        if on_crop is not None:
            on_crop(crop, ref_points)
        for name, cut in cuts.items():
            try:
                region = cut.region(crop, None)
            except MaskFailure as exc:
                results[name].skipped[f"{name}: {exc.reason}"] += 1
                continue
            results[name].rows.append(agreement(region, ref_region))
    return results


def mean_iou_grid(
    meshes: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    widths: Sequence[float] = GRID_WIDTHS,
    heights: Sequence[float] = GRID_HEIGHTS,
    shape: tuple[int, int] = (224, 224),
) -> np.ndarray:
    """``len(widths) × len(heights) × len(meshes)`` IoU of the mesh forehead rule with the
    reference, for every pair of constants (how ``face_region``'s constants were chosen)."""
    ref_regions = [hull_region(p, shape) for p in references]
    out = np.zeros((len(widths), len(heights), len(meshes)))
    for i, width in enumerate(widths):
        for j, height in enumerate(heights):
            for k, (mesh, ref) in enumerate(zip(meshes, ref_regions, strict=True)):
                region = hull_region(mesh_forehead_polygon(mesh, width, height), shape)
                out[i, j, k] = agreement(region, ref)["iou"]
    return out


def grid_summary(
    iou: np.ndarray,
    groups: np.ndarray,
    widths: Sequence[float] = GRID_WIDTHS,
    heights: Sequence[float] = GRID_HEIGHTS,
) -> dict:
    """The grid's means (all crops, and two halves split by ``groups`` parity) and optima."""
    widths, heights = np.asarray(widths), np.asarray(heights)
    chosen = (
        int(np.argmin(abs(widths - FOREHEAD_WIDTH))),
        int(np.argmin(abs(heights - FOREHEAD_HEIGHT))),
    )
    out: dict = {
        "widths": [float(w) for w in widths],
        "heights": [float(h) for h in heights],
        "mean_iou": [[_r(v) for v in row] for row in iou.mean(axis=2)],
        "chosen": {"width": FOREHEAD_WIDTH, "height": FOREHEAD_HEIGHT},
    }
    for label, mask in (
        ("all", np.ones_like(groups, bool)),
        ("half_a", groups == 0),
        ("half_b", groups == 1),
    ):
        means = iou[:, :, mask].mean(axis=2)
        best = np.unravel_index(int(np.argmax(means)), means.shape)
        out[label] = {
            "n": int(mask.sum()),
            "best": {"width": float(widths[best[0]]), "height": float(heights[best[1]])},
            "best_mean_iou": _r(means[best]),
            "chosen_mean_iou": _r(means[chosen]),
        }
    return out


def lfw_dev_crops(store: AssetStore, info: dict) -> Iterator[tuple[str, np.ndarray]]:
    """(identity, crop) for every frame of LFW that the default prep keeps, in order.

    Fills ``info`` with the prep's backend, detector, parameters and frame counts."""
    from benchmark.cache import Cache
    from benchmark.datasets import resolve_dataset
    from benchmark.pipeline.prep.stage import PrepStage

    stage = PrepStage.from_names(store=store, cache=Cache())
    dataset = resolve_dataset("lfw", store)
    info.update(
        dataset=dataset.name,
        n_frames=len(dataset.frames),
        n_identities=len(dataset.identities()),
        prep_backend=stage.backend,
        prep_detector=stage.detector.name,
        prep_params={k: v for k, v in asdict(stage.params).items() if k != "seed"},
    )
    status: Counter = Counter()
    for n, frame in enumerate(dataset.frames, 1):
        result = stage.run_frame(frame)
        status[result.status] += 1
        info["prep_status"] = dict(status)
        if progress_bars() and n % 250 == 0:
            print(f"prep {n}/{len(dataset.frames)}: {dict(status)}", file=sys.stderr, flush=True)
        if result.status == "kept" and result.crop is not None:
            yield frame.identity, result.crop


def run(store: AssetStore, cut_names: Sequence[str], calibrate: bool = True) -> dict:
    """The whole measurement on LFW-dev's kept crops, as the JSON written by ``main``."""
    from benchmark.pipeline.common.mediapipe_mesh import MediaPipeFaceMesh

    started = time.time()
    info: dict = {}
    cuts = {name: CUTS.create(name, store=store, device="cpu") for name in cut_names}
    reference = ReferenceHull(store)
    mesher = MediaPipeFaceMesh(store, max_faces=2) if calibrate else None
    identities: list[str] = []
    grid_meshes: list[np.ndarray] = []
    grid_refs: list[np.ndarray] = []
    current: dict[str, str] = {}
    n_crops = 0

    def crops() -> Iterator[np.ndarray]:
        nonlocal n_crops
        for identity, crop in lfw_dev_crops(store, info):
            n_crops += 1
            current["identity"] = identity
            yield crop

    def collect(crop: np.ndarray, ref_points: np.ndarray) -> None:
        if mesher is None:
            return
        faces = mesher.faces(crop)
        if len(faces) == 1:
            grid_meshes.append(faces[0][:, :2])
            grid_refs.append(ref_points)
            identities.append(current["identity"])

    results = measure(crops(), cuts, reference, on_crop=collect)
    out = {
        "what": "agreement of cut regions with the reference region of the original's "
        "dlib-81 hull (dlib 68 + face_region.forehead_points), on kept prep crops",
        "command": COMMAND,
        "reference": "convex hull of dlib's 68 points (shape_predictor_68_face_landmarks) + "
        "13 points of benchmark.pipeline.mask.face_region.forehead_points",
        "measures": {
            "iou": "intersection over union of candidate and reference regions",
            "inside": "share of the reference area covered by the candidate",
            "outside": "share of the candidate area outside the reference",
            "share": "candidate region's share of the crop",
            "reference_share": "reference region's share of the crop (same crops)",
        },
        **info,
        "n_crops": n_crops,
        "crop_size": 224,
        "cuts": {name: result.summary() for name, result in results.items()},
    }
    if calibrate and grid_meshes:
        groups = np.array([zlib.crc32(i.encode()) % 2 for i in identities])
        grid = mean_iou_grid(grid_meshes, grid_refs, GRID_WIDTHS, GRID_HEIGHTS)
        out["mediapipe_forehead_grid"] = {
            "what": "mean IoU with the reference of the mediapipe-forehead rule for a grid "
            "of (width, height) constants; halves split by crc32(identity) parity",
            **grid_summary(grid, groups, GRID_WIDTHS, GRID_HEIGHTS),
        }
    out["seconds"] = round(time.time() - started, 1)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.region_agreement", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument(
        "--cuts", nargs="+", default=list(DEFAULT_CUTS), help="cut backends to measure"
    )
    parser.add_argument(
        "--no-grid", action="store_true", help="skip the mediapipe-forehead constants grid"
    )
    args = parser.parse_args(argv)
    result = run(AssetStore(), args.cuts, calibrate=not args.no_grid)
    write_bytes_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode())
    for name, summary in result["cuts"].items():
        iou = summary.get("iou", {})
        print(f"{name}: n={summary['n_measured']} IoU {iou}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
