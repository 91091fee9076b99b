"""The three stages share one base: asset hashes, construction by names, the cache key,
counts and reasons normalised one way, one atomic run.json writer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark import provenance
from benchmark.assets import AssetStore
from benchmark.cache import Cache
from benchmark.pipeline.mask.stage import MaskStage, run_mask
from benchmark.pipeline.mask.utility import UtilityStage
from benchmark.pipeline.prep.stage import PrepStage, run_prep
from benchmark.pipeline.recognize.stage import RecognizeStage
from benchmark.pipeline.stage_base import Stage, count_reasons, reason_class
from benchmark.tests.fresh_interpreter import imported_by

ZEROS, ONES = "0" * 64, "1" * 64


def _keys(store: AssetStore) -> dict[str, str]:
    """The key of an all-zero input in every stage, as a run builds them."""
    return {
        "prep": PrepStage.from_names(store=store).key(ZEROS),
        "prep retinaface": PrepStage.from_names("retinaface-caffe", store=store).key(ZEROS),
        "mask": MaskStage.from_names(store=store).key(ZEROS),
        "mask sfm-eos": MaskStage.from_names("sfm-eos", store=store).key(ZEROS),
        "mask blank": MaskStage.for_control("blank", store=store).key(ZEROS),
        "recognize sface": RecognizeStage.from_names("sface", store=store).key(ZEROS),
        "recognize dlib aligned": RecognizeStage.from_names("dlib-resnet", store=store).key(
            ZEROS, ONES
        ),
        "utility": UtilityStage.from_names(store=store).key(ZEROS),
    }


@pytest.fixture
def editable_code(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """A copy of the package's sources that the code stamps read instead of the installed
    ones, so a test can edit a module the way a researcher edits a backend."""
    copy = tmp_path / "benchmark"
    shutil.copytree(provenance._ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "_ROOT", copy)
    provenance.forget()
    yield copy
    provenance.forget()


def _edit(root: Path, relative: str) -> None:
    path = root / relative
    path.write_text(path.read_text() + "\n# a researcher's local edit\n")
    provenance.forget()


def _moved(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_the_same_code_gives_the_same_keys(store: AssetStore, editable_code: Path) -> None:
    before = _keys(store)
    provenance.forget()
    assert _keys(store) == before
    assert len(set(before.values())) == len(before)


@pytest.mark.parametrize(
    ("module", "moves"),
    [
        # A backend: its own keys, and those of every stage that reads its outputs.
        (
            "pipeline/mask/sfm_eos.py",
            {"mask sfm-eos", "recognize sface", "recognize dlib aligned", "utility"},
        ),
        ("pipeline/prep/detectors.py", "all"),
        ("pipeline/recognize/sface.py", {"recognize sface"}),
        ("pipeline/recognize/dlib_resnet.py", {"recognize dlib aligned"}),
        # A stage's module: its keys and every stage downstream.
        ("pipeline/prep/stage.py", "all"),
        (
            "pipeline/mask/stage.py",
            {
                "mask",
                "mask sfm-eos",
                "mask blank",
                "recognize sface",
                "recognize dlib aligned",
                "utility",
            },
        ),
        ("pipeline/recognize/stage.py", {"recognize sface", "recognize dlib aligned"}),
        # A shared helper every stage imports.
        ("cache.py", "all"),
        ("imageio.py", "all"),
        # Modules that compute nothing a stage caches: no key moves.
        ("report.py", set()),
        ("report_html.py", set()),
        ("cli.py", set()),
        ("study.py", set()),
        ("leaderboard.py", set()),
    ],
)
def test_an_edit_moves_the_keys_of_the_code_it_touches_and_downstream(
    store: AssetStore, editable_code: Path, module: str, moves: set[str] | str
) -> None:
    before = _keys(store)
    _edit(editable_code, module)
    after = _keys(store)
    assert _moved(before, after) == (set(before) if moves == "all" else moves)


def test_a_library_version_moves_the_keys_of_the_stages_that_call_it(
    store: AssetStore, editable_code: Path, monkeypatch
) -> None:
    import importlib.metadata

    before = _keys(store)
    real = importlib.metadata.version

    def other_onnxruntime(name: str) -> str:
        return "0.0.1" if name == "onnxruntime" else real(name)

    monkeypatch.setattr(importlib.metadata, "version", other_onnxruntime)
    provenance.forget()
    after = _keys(store)
    # Every stage runs an ONNX model or imports the module that loads them.
    assert _moved(before, after) == set(before)
    stamp = provenance.closure(["benchmark.pipeline.recognize.sface"])
    assert {"cv2", "numpy", "onnxruntime"} <= set(stamp[1])
    assert "ray" not in stamp[1] and "tqdm" not in stamp[1]  # schedule and report only


def test_an_entry_of_edited_code_is_a_miss_and_prunable(
    store: AssetStore, editable_code: Path, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    stage = RecognizeStage.from_names("sface", store=store, cache=cache)
    cache.put("recognize", stage.key(ZEROS), {"reason": ""}, code=stage.code)
    assert cache.stats().unreachable == 0
    _edit(editable_code, "pipeline/recognize/sface.py")
    edited = RecognizeStage.from_names("sface", store=store, cache=cache)
    assert cache.get("recognize", edited.key(ZEROS)) is None  # recomputed, never stale
    assert cache.stats().unreachable == 1
    assert cache.prune() == 1 and cache.stats().entries == 0


def test_every_stage_is_built_by_names_on_one_base(store: AssetStore) -> None:
    stages = [
        PrepStage.from_names("yunet", "mediapipe-mesh", store=store),
        MaskStage.from_names("mediapipe-mesh", "numpy", "mediapipe-forehead", store=store),
        MaskStage.from_names(control="blur", cut="mediapipe-forehead", store=store),
        RecognizeStage.from_names("sface", store=store),
    ]
    assert all(isinstance(stage, Stage) for stage in stages)
    assert [stage.backend for stage in stages] == [
        "yunet+mediapipe-mesh",
        "mediapipe-mesh+numpy+mediapipe-forehead",
        "blur+mediapipe-forehead",
        "sface",
    ]
    assert list(stages[2].backends) == ["control", "cut"]
    for stage in stages:  # public, one shape: {asset: {file: sha256}}
        used = {a for backend in stage.backends.values() for a in backend.assets}
        assert set(stage.asset_sha256) == used
        for files in stage.asset_sha256.values():
            assert all(len(sha) == 64 or sha.startswith("tofu:") for sha in files.values())
    # Different parameters, different keys; the same stage twice, the same key.
    assert stages[0].key("a" * 64) == PrepStage.from_names(store=store).key("a" * 64)
    assert len({stage.key("a" * 64) for stage in stages}) == len(stages)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("more than one face (2 detections with score ≥ 0.63)", "more than one face (…)"),
        (
            "head pose outside |yaw| < 20, |pitch| < 20 (yaw -37.6, pitch 10.2)",
            "head pose outside |yaw| < N, |pitch| < N (…)",
        ),
        ("2 faces found by the MediaPipe face mesh", "N faces found by the MediaPipe face mesh"),
        ("Anna/Anna_0001.jpg: unreadable file (Permission denied)", "unreadable file (…)"),
        ("/data/x y/1.jpg: not an image", "not an image"),
        ("reconstruction crashed: RuntimeError: bad", "reconstruction crashed: RuntimeError: bad"),
    ],
)
def test_reasons_are_normalised_one_way(reason: str, expected: str) -> None:
    assert reason_class(reason) == expected


def test_reasons_count_up_most_frequent_first() -> None:
    reasons = ["no face (0.2)", "2 faces", "3 faces", "no face (0.1)", "4 faces"]
    assert count_reasons(reasons) == {"N faces": 3, "no face (…)": 2}


@pytest.mark.integration
def test_prep_and_mask_write_one_run_record(lfw20, default_prep, store, tmp_path: Path) -> None:
    """Both run.json files come from one writer: the same keys, the stage's own facts, and
    counts and reasons that add up to the table's rows."""
    run = run_prep(lfw20.subset(4, seed=3), tmp_path, default_prep, progress=False)
    masked = run_mask(tmp_path, MaskStage.for_control("blank", store=store), progress=False)
    prep_record = json.loads((tmp_path / "run.json").read_text())
    mask_record = json.loads((masked.out_dir / "run.json").read_text())
    shared = {
        "stage",
        "dmbench_version",
        "backend",
        "backends",
        "params",
        "assets",
        "cache",
        "platform",
        "counts",
        "reasons",
        "seconds",
    }
    assert shared <= set(prep_record) and shared <= set(mask_record)
    assert (prep_record["stage"], mask_record["stage"]) == ("prep", "mask")
    assert prep_record["backends"] == {"detector": "yunet", "pose": "mediapipe-mesh"}
    assert mask_record["backends"] == {"control": "blank", "cut": "mediapipe-forehead"}
    assert sum(prep_record["counts"].values()) == len(run.results)
    not_kept = len(run.results) - prep_record["counts"].get("kept", 0)
    assert sum(prep_record["reasons"].values()) == not_kept
    assert sum(mask_record["counts"].values()) == len(masked.frames)
    assert sum(mask_record["reasons"].values()) == mask_record["counts"].get("failed", 0)
    assert list(tmp_path.glob("*.tmp*")) == [] and list(masked.out_dir.glob("*.tmp*")) == []


def test_a_worker_turns_a_frame_error_into_its_row(store, lfw20, monkeypatch) -> None:
    """What a worker runs on cache misses records an error as that frame's row, as the
    serial run always did, instead of ending the run."""
    from benchmark.errors import DmbenchError

    stage = PrepStage.from_names(store=store)

    def broken(frame, data):
        raise DmbenchError("the disk went away")

    monkeypatch.setattr(stage, "_compute", broken)
    frame = lfw20.frames[0]
    rows = stage.compute_frames([(frame, b"", "0" * 64)])
    assert [(r.status, r.reason) for r in rows] == [("error", "the disk went away")]


def _loaded(stage: Stage) -> dict[str, bool]:
    """Whether each backend of a stage, and each helper it holds, has built its models."""
    from benchmark.pipeline.backend import LoadsOnFirstUse

    found = {}
    for role, backend in stage.backends.items():
        for name, part in [
            (role, backend),
            *((f"{role}.{k}", v) for k, v in vars(backend).items()),
        ]:
            if isinstance(part, LoadsOnFirstUse):
                found[name] = bool(part.__dict__.get("_models_loaded"))
    return found


@pytest.mark.integration
def test_models_are_built_on_the_first_miss_only(lfw20, store, tmp_path: Path) -> None:
    """A warm run builds no model (MediaPipe's mesh, dlib's landmarks, eos, the embedders'
    sessions); a cold one builds them before its first miss."""
    frames = lfw20.subset(2, seed=3)
    stages = lambda cache: (  # noqa: E731
        PrepStage.from_names(store=store, cache=cache),
        MaskStage.from_names("sfm-eos", store=store, cache=cache),
    )
    cold = stages(Cache(tmp_path / "cache"))
    assert all(not v for stage in cold for v in _loaded(stage).values()), "built at construction"
    assert set(_loaded(cold[0])) >= {"pose.mesh"} and set(_loaded(cold[1])) >= {"reconstruct"}
    run_prep(frames, tmp_path / "run", cold[0], progress=False)
    run_mask(tmp_path / "run", cold[1], progress=False)
    assert all(v for stage in cold for v in _loaded(stage).values()), _loaded(cold[1])
    warm = stages(Cache(tmp_path / "cache"))
    run_prep(frames, tmp_path / "run2", warm[0], progress=False)
    run_mask(tmp_path / "run2", warm[1], progress=False)
    assert warm[0].cache.misses == warm[1].cache.misses == 0
    assert not any(v for stage in warm for v in _loaded(stage).values()), "a warm run built one"


def test_building_the_default_stages_imports_no_mediapipe(tmp_path: Path) -> None:
    """MediaPipe (and TensorFlow, which it imports where installed) cost seconds: only a
    stage that runs the mesh imports it."""
    code = (
        "from benchmark.pipeline.prep.stage import PrepStage\n"
        "from benchmark.pipeline.mask.stage import MaskStage\n"
        "from benchmark.pipeline.recognize.stage import RecognizeStage\n"
        "from benchmark.pipeline.mask.utility import UtilityStage\n"
        "PrepStage.from_names(); MaskStage.from_names(); MaskStage.from_names('sfm-eos')\n"
        "RecognizeStage.from_names('sface'); RecognizeStage.from_names('dlib-resnet-onnx')\n"
        "UtilityStage.from_names()\n"
    )
    assert imported_by(code, ("mediapipe", "tensorflow")) == []


@pytest.mark.integration
def test_run_folder_images_are_the_cache_s_copies(lfw20, store, tmp_path: Path) -> None:
    """Crops and masks are hard-linked from the cache, not written twice; a copy changed
    in place (which changes both) fails its entry's hash, and the next run rebuilds both."""
    frames = lfw20.subset(2, seed=3)
    cache = Cache(tmp_path / "cache")
    prep = PrepStage.from_names(store=store, cache=cache)
    mask = MaskStage.from_names(store=store, cache=cache)
    run_prep(frames, tmp_path / "run", prep, progress=False)
    run_mask(tmp_path / "run", mask, progress=False)
    images = sorted((tmp_path / "run").rglob("*.png"))
    crops = [p for p in images if "crops" in p.parts]
    masks = [p for p in images if "masks" in p.parts and p.name != "contact_sheet.png"]
    assert crops and masks
    cached = {f.stat().st_ino for f in (tmp_path / "cache").rglob("*.png")}
    assert all(p.stat().st_ino in cached and p.stat().st_nlink == 2 for p in crops + masks)
    original = masks[0].read_bytes()
    masks[0].write_bytes(b"changed in place")  # through the link: the cache's copy too
    again = MaskStage.from_names(store=store, cache=Cache(tmp_path / "cache"))
    run_mask(tmp_path / "run", again, progress=False)
    assert again.cache.misses == 1, "the damaged entry is rebuilt, the others are hits"
    assert masks[0].read_bytes() == original and masks[0].stat().st_ino in {
        f.stat().st_ino for f in (tmp_path / "cache").rglob("*.png")
    }
