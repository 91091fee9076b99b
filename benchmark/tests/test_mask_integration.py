"""The mask stage on ~20 real LFW-dev identities, for both reconstruct backends."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.pipeline.mask.stage import VARIANTS, MaskStage, run_mask
from benchmark.pipeline.prep.stage import run_prep

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prep_dir(lfw20, default_prep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prep20")
    run_prep(lfw20, out, default_prep, progress=False)
    return out


@pytest.mark.parametrize("reconstruct", ["mediapipe-mesh", "sfm-eos"])
def test_both_reconstructors_mask_real_crops(prep_dir, store, cache, reconstruct) -> None:
    stage = MaskStage.from_names(reconstruct, store=store, cache=cache)
    run = run_mask(prep_dir, stage, progress=False)
    masked = [f for f in run.frames if f.result.status == "masked"]
    # Prep crops hold one frontal face each: a working reconstructor masks most of them.
    assert len(masked) >= 0.8 * len(run.frames)
    rows = list(csv.DictReader((run.out_dir / "masks.csv").read_text().splitlines()))
    assert len(rows) == len(run.frames)
    for row, item in zip(rows, run.frames, strict=True):
        crop = np.asarray(Image.open(prep_dir / item.crop).convert("RGB"))
        if row["status"] == "failed":
            assert row["reason"] and not any(row[v] for v in VARIANTS)
            continue
        outputs = {v: np.asarray(Image.open(prep_dir / row[v])) for v in VARIANTS}
        changed = (outputs["overlay"] != crop).any(axis=-1)
        assert 0.05 < changed.mean() < 0.9, "the overlay replaces the face, not the whole crop"
        assert (outputs["mask_only"][~changed] == 255).all()
        assert (outputs["mask_only_black"][~changed] == 0).all()
    info = json.loads((run.out_dir / "run.json").read_text())
    assert info["counts"]["masked"] == len(masked)
    again = run_mask(prep_dir, stage, progress=False)
    assert all(f.result.cached for f in again.frames)


def test_cli_mask_writes_sheet_and_probe(prep_dir, capsys) -> None:
    assert main(["mask", str(prep_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "contact sheet:" in out and "geometry-only re-identification" in out
    folder = prep_dir / "masks" / "mediapipe-mesh+numpy+mediapipe-forehead"  # the defaults
    sheet = Image.open(folder / "contact_sheet.png")
    assert sheet.size[0] > 4 * 100 and sheet.size[1] > 6 * 100
    probe = json.loads((folder / "leakage_probe.json").read_text())
    assert probe["protocol"] == "cross-session" and probe["n"] >= 5
    assert 0.0 <= probe["rank1"] <= 1.0 and probe["chance"] == pytest.approx(1 / probe["n"])


def test_cli_mask_runs_a_control_over_the_same_cut(prep_dir, capsys) -> None:
    assert main(["mask", str(prep_dir), "--control", "blank", "--quiet"]) == 0
    assert "contact sheet:" in capsys.readouterr().out
    folder = prep_dir / "masks" / "blank+mediapipe-forehead"
    rows = list(csv.DictReader((folder / "masks.csv").read_text().splitlines()))
    assert rows and sum(r["status"] == "masked" for r in rows) >= 0.8 * len(rows)
    assert not (folder / "leakage_probe.json").exists()  # a control has no geometry
