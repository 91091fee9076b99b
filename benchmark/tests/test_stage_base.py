"""The three stages share one base: asset hashes, construction by names, the cache key,
counts and reasons normalised one way, one atomic run.json writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark import __version__
from benchmark.assets import AssetStore
from benchmark.pipeline.mask.stage import MaskStage, run_mask
from benchmark.pipeline.prep.stage import PrepStage, run_prep
from benchmark.pipeline.recognize.stage import RecognizeStage
from benchmark.pipeline.stage_base import Stage, count_reasons, reason_class

# Cache keys of an all-zero input, recorded before the stages moved onto one base
# (dmbench 0.1.0, commit 9b52e76). A key that changes orphans every cached result, so a
# change here must be deliberate (a new parameter, a new version) and say why.
KEYS_0_1_0 = {
    "prep": "5114bb8b6bcb2b5cb670b47ef764233345ddf623a48814abd1b940e33f2c5630",
    "mask": "0454a2cccb1777538e3080b418fb5dc27444c2409ed599076dcb5cdd9524ec28",
    "mask sfm-eos": "bba49edfc00334fd6d1451f57e709d196e3d9c8a9a977eca690b920419714a68",
    "mask blank": "2ebeb95d0dfce1d2c9058ce46de0735b5497c4d125bbdeb97f11b16ddea41326",
    "recognize sface": "c82866719ba234d2b7295ace83ae21147bee50cd18e77fdf32c004c1bc40f459",
    "recognize dlib aligned": "c03af0e2ce7b42e1ee134a9dc317ce6e7fce6a08ca3fe5c93aa977445d1eaad8",
}


@pytest.mark.skipif(__version__ != "0.1.0", reason="keys recorded for dmbench 0.1.0")
def test_cache_keys_did_not_move(store: AssetStore) -> None:
    zeros, ones = "0" * 64, "1" * 64
    keys = {
        "prep": PrepStage.from_names(store=store).key(zeros),
        "mask": MaskStage.from_names(store=store).key(zeros),
        "mask sfm-eos": MaskStage.from_names("sfm-eos", store=store).key(zeros),
        "mask blank": MaskStage.for_control("blank", store=store).key(zeros),
        "recognize sface": RecognizeStage.from_names("sface", store=store).key(zeros),
        "recognize dlib aligned": RecognizeStage.from_names("dlib-resnet", store=store).key(
            zeros, ones
        ),
    }
    assert keys == KEYS_0_1_0


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
