"""The per-frame tables do not move when the code gets faster (issue 12, item 3).

``fixtures/frame_tables_lfw8.json`` holds digests of every per-frame table and image of a
cold study on 8 valid LFW identities, recorded with the code as it stood before the speed
work (``0c63898``: one process, no executor, no memo): prep's ``frames.csv`` (every frame's
detections, pose, status and reason; without the ``cached`` column, which says whether
this run computed it), ``selection.csv``, every mask run's ``masks.csv``, the sha256 of
every crop and mask image, and the digests of results.json's numbers. The test runs the
same study from a cold cache with 2 workers and requires every digest to be equal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from benchmark.settings import REPO_ROOT

FIXTURE = REPO_ROOT / "fixtures" / "frame_tables_lfw8.json"
IDENTITIES = 8
RUN_COLUMNS = ("cached",)  # says whether this run computed the row: not a decision


def _table_digest(path: Path, drop: tuple[str, ...] = ()) -> str:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(rows[0]) if name not in drop]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
    return hashlib.sha256(out.getvalue().encode()).hexdigest()


def frame_table_digests(prep_dir: Path) -> dict[str, str]:
    """Digests of a prep run folder's per-frame tables and of every image in it."""
    digests = {
        "frames.csv": _table_digest(prep_dir / "frames.csv", RUN_COLUMNS),
        "selection.csv": _table_digest(prep_dir / "selection.csv"),
    }
    for table in sorted((prep_dir / "masks").glob("*/masks.csv")):
        digests[str(table.relative_to(prep_dir))] = _table_digest(table)
    images = hashlib.sha256()
    for png in sorted(prep_dir.rglob("*.png")):
        if png.name != "contact_sheet.png":
            rel = str(png.relative_to(prep_dir))
            images.update(f"{rel} {hashlib.sha256(png.read_bytes()).hexdigest()}\n".encode())
    digests["images"] = images.hexdigest()
    return digests


@pytest.mark.integration
def test_frame_tables_equal_those_before_the_speed_work(store, tmp_path, monkeypatch) -> None:
    from benchmark.specs import load_profiles
    from benchmark.study import StudyOptions, run_study

    recorded = json.loads(FIXTURE.read_text())
    monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    options = StudyOptions(identities=IDENTITIES, progress=False, workers=2)
    results = run_study(load_profiles()["lfw"], tmp_path / "out", options, store)
    assert results.environment["workers"] == 2
    now = frame_table_digests(tmp_path / "out" / "prep")
    now["results"] = results.number_digests()
    assert now == recorded["digests"]
