"""Prep stage: detect, keep frames with exactly one confident face and a near-frontal
head pose, crop to 224×224, and draw the database/query frames of every session.

Backends (``prep_detectors.py``, ``prep_pose.py``) only turn pixels into boxes and
angles; the rules (thresholds, crop geometry, selection) live here once, with the
original's values as defaults, except the one-face rule's two scores: those are each
detector's, calibrated to the original's detector (``benchmark/calibration.py``). Every
frame gets a row in the run's table saying whether it was kept and, if not, why.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.assets import AssetStore
from benchmark.cache import Cache
from benchmark.datasets import Dataset, Frame, natural_key
from benchmark.device import DevicePlan
from benchmark.errors import (
    DmbenchError,
    FrameError,
    ImageReadError,
    OutputError,
    RunTableError,
    UsageError,
)
from benchmark.geometry import crop_resize, detection_to_xywh, prep_crop_box, square_box
from benchmark.imageio import (
    DECODING,
    atomic_writer,
    decode_png,
    encode_png,
    ensure_folder,
    load_image,
    write_png_atomic,
)
from benchmark.pipeline.executor import Executor, Miss, SerialExecutor, run_through_cache
from benchmark.pipeline.prep.rules import check_calibrated_model, rule_for
from benchmark.pipeline.prep.types import (
    DETECTORS,
    POSES,
    FaceDetector,
    PoseEstimator,
    Selection,
)
from benchmark.pipeline.stage_base import RunOutcomes, Stage, create_backends, write_run_record
from benchmark.runfolder import RunPaths, check_names, read_table

STAGE = "prep"
PREP_CHUNK = 8  # frames per executor task (a detection and a pose each)


@dataclass(frozen=True)
class PrepParams:
    """The original's thresholds (filter_images_config.ini) as defaults.

    The one-face rule's two scores default to None: "the detector's calibrated
    thresholds" (benchmark/specs/detectors.toml; the original's 0.9 / 0.1 for its own
    detector and for one without an entry), since detectors score on different scales.
    ``PrepStage`` fills them in, so run.json and the cache key hold the numbers used.
    """

    min_best_score: float | None = None  # keep if best > this
    other_face_score: float | None = None  # ... and exactly one detection ≥ this
    max_yaw: float = 20.0  # keep if |yaw| < this
    max_pitch: float = 20.0  # keep if |pitch| < this
    margin: float = 1.5  # crop margin, in half box sizes, on every side
    crop_size: int = 224
    seed: int = 42
    # Reproduce the original's defect: its pose step passed float paddings to
    # cv2.copyMakeBorder, which raises, so every face whose square box leaves the image
    # was silently dropped. Off by default (we zero-pad, as the code intended).
    reference_quirks: bool = False

    def __post_init__(self) -> None:
        """Thresholds that mean something: a NaN would switch a filter off without a word."""
        ranges = {
            "min_best_score": (0.0, 1.0),
            "other_face_score": (0.0, 1.0),
            "max_yaw": (0.0, 180.0),
            "max_pitch": (0.0, 180.0),
            "margin": (0.0, 10.0),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not (
                isinstance(value, int | float) and math.isfinite(value) and low <= value <= high
            ):
                raise UsageError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
        if self.seed < 0 or self.crop_size < 32:
            raise UsageError(
                f"seed must be ≥ 0 and crop_size ≥ 32, not {self.seed} and {self.crop_size}"
            )

    def for_detector(self, detector: str) -> PrepParams:
        """These params with unset one-face thresholds taken from ``detector``'s entry."""
        rule = rule_for(detector)
        return replace(
            self,
            min_best_score=(
                rule.min_best_score if self.min_best_score is None else self.min_best_score
            ),
            other_face_score=(
                rule.other_face_score if self.other_face_score is None else self.other_face_score
            ),
        )


RECORD_FIELDS = (
    "status",
    "reason",
    "note",
    "n_faces",
    "best_score",
    "box",
    "yaw",
    "pitch",
    "roll",
    "crop_box",
)


@dataclass
class FrameResult:
    """One row of the run table; ``crop`` is only set for kept frames."""

    frame: Frame
    status: str  # kept | dropped | error | skipped (lazy selection did not need it)
    reason: str = ""
    input_sha256: str = ""
    note: str = ""
    n_faces: int = 0
    best_score: float | None = None
    box: tuple[float, ...] | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    crop_box: tuple[int, ...] | None = None
    cached: bool = False
    crop: np.ndarray | None = field(default=None, repr=False)
    crop_png: bytes | None = field(default=None, repr=False)  # the crop as stored

    def record(self) -> dict[str, Any]:
        """What the cache stores for this frame (everything but the frame and the crop)."""
        return {k: getattr(self, k) for k in RECORD_FIELDS}

    def crop_image(self) -> np.ndarray | None:
        """The crop's pixels; a cached row holds only its PNG until they are asked for (a
        warm run copies ~19,000 crops and decodes none)."""
        if self.crop is None and self.crop_png is not None:
            self.crop = decode_png(self.crop_png)
        return self.crop

    @property
    def has_crop(self) -> bool:
        return self.crop is not None or self.crop_png is not None


class PrepStage(Stage):
    """Runs one detector + one pose backend over frames, through the cache."""

    name = STAGE

    def __init__(
        self,
        detector: FaceDetector,
        pose: PoseEstimator,
        params: PrepParams | None = None,
        cache: Cache | None = None,
        store: AssetStore | None = None,
    ) -> None:
        given = params or PrepParams()
        backends = {"detector": detector, "pose": pose}
        super().__init__(backends, given.for_detector(detector.name), cache, store)
        self.detector, self.pose = detector, pose
        if given.min_best_score is None or given.other_face_score is None:
            check_calibrated_model(detector.name, self.asset_sha256.get(detector.name, {}))

    @classmethod
    def from_names(
        cls,
        detector: str | None = None,
        pose: str | None = None,
        *,
        store: AssetStore | None = None,
        device: str | DevicePlan = "cpu",
        params: PrepParams | None = None,
        cache: Cache | None = None,
    ) -> PrepStage:
        store = store or AssetStore()
        chosen = {"detector": (DETECTORS, detector), "pose": (POSES, pose)}
        made = create_backends(chosen, store, device)
        return cls(**made, params=params, cache=cache, store=store).remember(store, device)

    def key_params(self) -> dict[str, Any]:
        params = {k: v for k, v in asdict(self.params).items() if k != "seed"}
        params["decoding"] = DECODING  # how a file becomes pixels (EXIF orientation applied)
        return params

    # -- one frame --------------------------------------------------------------
    def run_frame(self, frame: Frame, expected_sha256: str | None = None) -> FrameResult:
        """One frame, with its crop's pixels (decoded when they came from the cache).
        A frame's own error is raised as a ``FrameError``; a model that cannot load, as
        itself."""
        try:
            found = self.look_up(frame, expected_sha256)
        except DmbenchError as exc:
            raise FrameError(str(exc)) from exc
        if isinstance(found, FrameResult):
            found.crop_image()
            return found
        self.load_models()
        try:
            return self.compute_frame(frame, *found)
        except DmbenchError as exc:
            raise FrameError(str(exc)) from exc

    def compute_frames(self, items: list[tuple[Frame, bytes, str]]) -> list[FrameResult]:
        """``compute_frame`` on cache misses (what an executor's worker runs); an error
        is that frame's row, as in ``run_prep``, never the end of the run."""
        self.load_models()
        results = []
        for frame, data, digest in items:
            try:
                result = self.compute_frame(frame, data, digest)
                if result.crop_png is not None:
                    result.crop = None  # the PNG goes back alone: half the bytes to send
                results.append(result)
            except DmbenchError as exc:
                results.append(FrameResult(frame, "error", str(exc), input_sha256=digest))
        return results

    def look_up(
        self, frame: Frame, expected_sha256: str | None = None
    ) -> FrameResult | tuple[bytes, str]:
        """The frame's row from the cache, or its read error; on a miss, its bytes and
        sha256 for ``compute_frame``. No model runs here."""
        try:
            data = Path(frame.path).read_bytes()
        except OSError as exc:
            return FrameResult(frame, "error", f"{frame.rel}: unreadable file ({exc.strerror})")
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 and digest != expected_sha256:
            return FrameResult(
                frame,
                "error",
                f"{frame.rel}: sha256 does not match the dataset "
                "manifest (modified or corrupt copy)",
                input_sha256=digest,
            )
        key = self.key(digest)
        entry = self.cache.get(STAGE, key)
        if entry is not None:
            rec = entry.record
            result = FrameResult(
                frame,
                input_sha256=digest,
                cached=True,
                **{k: (tuple(v) if isinstance(v, list) else v) for k, v in rec.items()},
            )
            if result.status == "kept":
                result.crop_png = entry.files["crop.png"]  # decoded by crop_image(), if asked
            return result
        return data, digest

    def compute_frame(self, frame: Frame, data: bytes, digest: str) -> FrameResult:
        """Detect, check the pose and crop, then store the row in the cache."""
        key = self.key(digest)
        result = self._compute(frame, data)
        result.input_sha256 = digest
        if result.crop is not None:
            result.crop_png = encode_png(result.crop)
        files = {"crop.png": result.crop_png} if result.crop_png is not None else {}
        self.cache.put(STAGE, key, result.record(), files, code=self.code)
        return result

    def _compute(self, frame: Frame, data: bytes) -> FrameResult:
        params = self.params
        min_best, other_face = params.min_best_score, params.other_face_score
        assert min_best is not None and other_face is not None  # set in __init__
        try:
            loaded = load_image(frame.path, data)
        except ImageReadError as exc:
            return FrameResult(frame, "error", f"{frame.rel}: {exc.reason}")
        rgb = loaded.rgb
        height, width = rgb.shape[:2]
        try:
            detections = sorted(self.detector.detect(rgb), key=lambda d: -d.score)
        except Exception as exc:
            return FrameResult(
                frame,
                "error",
                f"{frame.rel}: detector failed: {type(exc).__name__}: {exc}",
                note=loaded.note,
            )
        confident = [d for d in detections if d.score >= other_face]
        result = FrameResult(frame, "dropped", note=loaded.note, n_faces=len(confident))
        if not detections:
            result.reason = "no face detected"
            return result
        best = detections[0]
        result.best_score = round(float(best.score), 6)
        result.box = tuple(round(float(v), 3) for v in best.box)
        if best.score <= min_best:
            result.reason = f"no confident face (best score {best.score:.3f} ≤ {min_best})"
            return result
        if len(confident) != 1:
            result.reason = (
                f"more than one face ({len(confident)} detections with score ≥ {other_face})"
            )
            return result
        box_xywh = detection_to_xywh(best.box)
        square = square_box(box_xywh, width, height)
        if params.reference_quirks and square.needs_padding:
            result.reason = (
                "reference quirk: the face's square box leaves the image, where "
                "the original pipeline crashed and dropped the frame"
            )
            return result
        try:
            pose = self.pose.estimate(rgb, box_xywh)
        except Exception as exc:
            result.status = "error"
            result.reason = f"pose estimation failed: {type(exc).__name__}: {exc}"
            return result
        if pose is None:
            result.reason = "pose: no landmarks found in the face box"
            return result
        result.yaw, result.pitch, result.roll = (
            round(float(a), 3) for a in (pose.yaw, pose.pitch, pose.roll)
        )
        if abs(pose.yaw) >= params.max_yaw or abs(pose.pitch) >= params.max_pitch:
            result.reason = (
                f"head pose outside |yaw| < {params.max_yaw:g}, |pitch| < "
                f"{params.max_pitch:g} (yaw {pose.yaw:.1f}, pitch {pose.pitch:.1f})"
            )
            return result
        crop_box = prep_crop_box(square.clipped, width, height, params.margin)
        result.crop_box = crop_box
        result.crop = crop_resize(rgb, crop_box, params.crop_size)
        result.status = "kept"
        return result


# -- selection --------------------------------------------------------------------
def select_frames(
    results: list[FrameResult], seed: int = 42, single_frame_sessions: bool = False
) -> list[Selection]:
    """Draw the database and query frame of every session with ≥ 2 kept frames.

    One ``default_rng(seed)`` walks the sessions in sorted order and draws 2 kept
    frames without replacement (as the original's ``rng.choice(..., 2)``): the first
    goes to the database, the second to the query set. With
    ``single_frame_sessions`` (LFW, every photo its own session) a session's one kept
    frame stands for both sides; the recognize protocol then pairs different
    sessions.
    """
    rng = np.random.default_rng(seed)
    kept: dict[tuple[str, str], list[FrameResult]] = defaultdict(list)
    for res in results:
        if res.status == "kept":
            kept[(res.frame.identity, res.frame.session)].append(res)
    out = []
    for identity, session in sorted(kept, key=lambda k: (natural_key(k[0]), natural_key(k[1]))):
        frames = sorted(kept[(identity, session)], key=lambda r: r.frame.index)
        if len(frames) >= 2:
            first, second = rng.choice(len(frames), size=2, replace=False)
            out.append(
                Selection(identity, session, frames[first].frame.uid, frames[second].frame.uid)
            )
        elif single_frame_sessions:
            out.append(Selection(identity, session, frames[0].frame.uid, frames[0].frame.uid))
    return out


# -- a whole run --------------------------------------------------------------------
TABLE_COLUMNS = (
    "identity",
    "session",
    "frame",
    "path",
    "input_sha256",
    *RECORD_FIELDS,
    "role",
    "crop",
    "cached",
)


@dataclass
class PrepRun(RunOutcomes):
    out_dir: Path
    results: list[FrameResult]
    selections: list[Selection]
    seconds: float
    success = "kept"

    def outcomes(self) -> Iterable[tuple[str, str, str]]:
        return ((r.status, r.reason, r.frame.identity) for r in self.results)


def crop_relpath(frame: Frame) -> str:
    return f"crops/{frame.identity}/{frame.session}/{frame.index:06d}_prep.png"


def lazy_visit_order(frames: list[Frame], rng: np.random.Generator) -> list[Frame]:
    """A session's frames in a seeded random order (lazy selection visits them so)."""
    return [frames[i] for i in rng.permutation(len(frames))]


def select_lazily(results_in_visit_order: list[FrameResult]) -> tuple[str, str] | None:
    """The first two kept frames of a randomly ordered visit: (database, query).

    The first two successes of a uniformly random permutation are a uniformly random
    ordered pair of distinct kept frames — the same distribution as drawing 2 of all kept
    frames (tested statistically), found without running the models on the rest.
    """
    kept = [r.frame.uid for r in results_in_visit_order if r.status == "kept"][:2]
    return (kept[0], kept[1]) if len(kept) == 2 else None


def run_prep(
    dataset: Dataset,
    out_dir: Path,
    stage: PrepStage,
    progress: bool = True,
    lazy: bool = False,
    executor: Executor | None = None,
) -> PrepRun:
    """Prep the frames of ``dataset``; write the table, the selection and the crops.

    Cache look-ups run here; the misses go to ``executor`` (this process by default).

    ``lazy``: per session, visit frames in a seeded random order and stop after two kept
    frames (unvisited frames are recorded as ``skipped``); otherwise every frame is prepped
    and two kept frames are drawn as the original does.
    """
    from tqdm import tqdm

    dataset.check_outside(out_dir, "run folder")
    out_dir = ensure_folder(Path(out_dir), "run folder")
    if not dataset.frames:
        raise DmbenchError(
            f"{dataset.root}: no frame to prep (0 identities drawn or readable); "
            f"{len(dataset.problems)} layout problems"
            + (f", first: {dataset.problems[0][1]}" if dataset.problems else "")
        )
    signature = run_signature(dataset, stage, lazy)
    take_over(out_dir, signature)
    start = time.perf_counter()
    results: list[FrameResult] = []
    bar = tqdm(
        total=len(dataset.frames), desc=f"prep {stage.backend}", unit="img", disable=not progress
    )

    def prep_one(frame: Frame) -> FrameResult:
        expected = dataset.expected_sha256.get(frame.rel)
        try:
            result = stage.run_frame(frame, expected)
        except FrameError as exc:  # this frame's fault; a model's stops the run
            result = FrameResult(frame, "error", str(exc))
        bar.update()
        return result

    def look_up(frame: Frame) -> FrameResult | Miss:
        try:
            found = stage.look_up(frame, dataset.expected_sha256.get(frame.rel))
        except DmbenchError as exc:
            return FrameResult(frame, "error", str(exc))
        return found if isinstance(found, FrameResult) else Miss((frame, *found))

    lazy_selections: list[Selection] = []
    if not lazy:
        results = run_through_cache(
            dataset.frames,
            look_up,
            executor or SerialExecutor(),
            stage,
            "compute_frames",
            chunk_size=PREP_CHUNK,
            done=bar.update,
        )
    else:  # one session's frames depend on each other: visited here, in order
        rng = np.random.default_rng(stage.params.seed)
        sessions: dict[tuple[str, str], list[Frame]] = defaultdict(list)
        for frame in dataset.frames:
            sessions[(frame.identity, frame.session)].append(frame)
        for (identity, session), frames in sessions.items():
            visited: list[FrameResult] = []
            kept = 0
            for frame in lazy_visit_order(frames, rng):
                if kept == 2:
                    visited.append(
                        FrameResult(
                            frame,
                            "skipped",
                            "not visited: lazy selection already has two kept frames",
                        )
                    )
                    bar.update()
                    continue
                visited.append(prep_one(frame))
                kept += visited[-1].status == "kept"
            pair = select_lazily(visited)
            if pair is not None:
                lazy_selections.append(Selection(identity, session, *pair))
            elif dataset.single_frame_sessions:
                single = [r.frame.uid for r in visited if r.status == "kept"]
                if single:
                    lazy_selections.append(Selection(identity, session, single[0], single[0]))
            results.extend(sorted(visited, key=lambda r: r.frame.index))
    bar.close()
    seconds = time.perf_counter() - start
    selections = (
        lazy_selections
        if lazy
        else select_frames(
            results, stage.params.seed, single_frame_sessions=dataset.single_frame_sessions
        )
    )
    roles: dict[str, str] = {}
    for sel in selections:
        roles[sel.database] = "database" if sel.database != sel.query else "both"
        if sel.query != sel.database:
            roles[sel.query] = "query"
    crops = RunPaths(out_dir)  # a linked crops/ leads nowhere
    for res in results:
        if res.frame.uid in roles and res.has_crop:
            crop = crops.inside(crop_relpath(res.frame))
            write_png_atomic(
                crop,
                res.crop_png or res.crop,
                same_as=lambda res=res: stage.cache.file_path(
                    STAGE, stage.key(res.input_sha256), "crop.png"
                ),
            )
    _write_table(out_dir / "frames.csv", results, roles, dataset.problems)
    with atomic_writer(out_dir / "selection.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["identity", "session", "database", "query"])
        for sel in selections:
            writer.writerow([sel.identity, sel.session, sel.database, sel.query])
    run = PrepRun(out_dir, results, selections, seconds)
    kept_times = len(run.results) or 1
    write_run_record(
        out_dir / "run.json",
        stage,
        run_signature=signature,
        dataset={
            "name": dataset.name,
            "root": str(dataset.root),
            "layout": dataset.layout,
            "frames": len(dataset.frames),
            "identities": len(dataset.identities()),
        },
        counts=run.counts(),
        reasons=run.reasons(),
        layout_problems=len(dataset.problems),
        selected_sessions=len(run.selections),
        seconds=round(run.seconds, 3),
        ms_per_image=round(1000 * run.seconds / kept_times, 3),
    )
    return run


# What a prep run writes into its folder (and the mask stage below it).
RUN_OUTPUTS = ("crops", "masks", "frames.csv", "selection.csv", "run.json")


def run_signature(dataset: Dataset, stage: PrepStage, lazy: bool) -> str:
    """What makes a prep run this run: the data folder, the backends, the params and the
    selection rule. A folder holds the outputs of one signature. Which identities of that
    data are drawn is not part of it: the study draws more of them run after run into one
    folder, and a frame's crop and masks do not depend on which others were drawn."""
    payload = {
        "dataset": [dataset.name, str(dataset.root), dataset.layout],
        "backend": stage.backend,
        "params": asdict(stage.params),
        "lazy": lazy,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def take_over(out_dir: Path, signature: str) -> None:
    """Make ``out_dir`` this run's folder: the outputs of another run there (other data,
    backends, params, or a run whose record is missing or damaged) are removed whole
    first, with a warning, so that one folder never mixes two runs' crops, tables and
    masks. A rerun of the same run keeps them. Links are removed, never followed."""
    present = [out_dir / name for name in RUN_OUTPUTS if os.path.lexists(out_dir / name)]
    if not present:
        return
    try:
        earlier = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = {}
    if isinstance(earlier, dict) and earlier.get("run_signature") == signature:
        return
    dataset = earlier.get("dataset") if isinstance(earlier, dict) else None
    what = dataset.get("root", "?") if isinstance(dataset, dict) else "?"  # any JSON at all
    for path in present:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            raise OutputError(
                f"{out_dir} holds another run, which cannot be removed: {exc}"
            ) from exc
    warnings.warn(
        f"{out_dir} held another run (of {str(what)!r}); it was replaced whole",
        stacklevel=2,
    )


def _write_table(
    path: Path, results: list[FrameResult], roles: dict[str, str], problems: list[tuple[str, str]]
) -> None:
    with atomic_writer(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        for res in results:
            row: dict[str, Any] = {k: getattr(res, k) for k in ("input_sha256", *RECORD_FIELDS)}
            row.update(
                identity=res.frame.identity,
                session=res.frame.session,
                frame=res.frame.index,
                path=res.frame.rel,
                role=roles.get(res.frame.uid, ""),
                crop=crop_relpath(res.frame) if res.frame.uid in roles else "",
                box=_fmt(res.box),
                crop_box=_fmt(res.crop_box),
                cached=res.cached,
            )
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        for where, reason in problems:
            identity = where.split("/")[0]
            writer.writerow(
                {"identity": identity, "path": where, "status": "error", "reason": reason}
            )


def _fmt(values: tuple | None) -> str:
    return "" if values is None else " ".join(f"{v:g}" for v in values)


def read_selection(run_dir: Path) -> list[Selection]:
    """The database/query draw a prep run wrote (``selection.csv``)."""
    path = Path(run_dir) / "selection.csv"
    if not path.exists():
        raise DmbenchError(f"{run_dir}: no selection.csv; run `dmbench prep` first")
    rows = read_table(path, ("identity", "session", "database", "query"))
    for line, row in enumerate(rows, start=2):
        check_names(path, line, row["identity"], row["session"])
    return [Selection(r["identity"], r["session"], r["database"], r["query"]) for r in rows]


def read_layout(run_dir: Path) -> str:
    """The dataset layout of a prep run (decides the default recognition protocol)."""
    path = Path(run_dir) / "run.json"
    try:
        return str(json.loads(path.read_text())["dataset"]["layout"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunTableError(f"{path}: not a prep run record ({exc})") from exc
