"""Paths in a run folder: no link on the way may lead out of it, however many paths one
pass checks (``RunPaths`` resolves each folder once per pass)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.errors import RunTableError
from benchmark.runfolder import RunPaths, inside


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "crops" / "a").mkdir(parents=True)
    (run / "crops" / "a" / "1.png").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.png").write_bytes(b"v")
    return run


def test_plain_paths_and_links_that_stay_inside_pass(run: Path) -> None:
    (run / "crops" / "b").symlink_to(run / "crops" / "a")
    (run / "crops" / "a" / "2.png").symlink_to(run / "crops" / "a" / "1.png")
    paths = RunPaths(run)
    for rel in ("crops/a/1.png", "crops/a/2.png", "crops/b/1.png", "crops/new/3.png", "x.csv"):
        assert paths.inside(rel) == run.resolve() / rel
        assert inside(run, rel) == run.resolve() / rel


@pytest.mark.parametrize("where", ["file", "folder", "loop"])
def test_a_link_out_is_refused_on_every_path_of_a_pass(run: Path, where: str) -> None:
    outside = run.parent / "outside"
    if where == "file":
        (run / "crops" / "a" / "2.png").symlink_to(outside / "victim.png")
        bad = ["crops/a/2.png"]
    elif where == "folder":
        (run / "crops" / "c").symlink_to(outside)
        bad = ["crops/c/victim.png", "crops/c/other.png"]
    else:
        (run / "crops" / "a" / "2.png").symlink_to(run / "crops" / "a" / "2.png")
        bad = ["crops/a/2.png"]
    paths = RunPaths(run)
    assert paths.inside("crops/a/1.png")  # the folder is resolved once, and shared
    for rel in bad:
        with pytest.raises(RunTableError, match=r"leads outside|cannot be resolved"):
            paths.inside(rel)
        with pytest.raises(RunTableError, match=r"leads outside|cannot be resolved"):
            paths.contained(rel, run / "frames.csv", 2)


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "../x.png", "crops/../../x", "a\0b"])
def test_a_table_path_that_is_not_relative_and_inside_is_refused(run: Path, rel: str) -> None:
    with pytest.raises(RunTableError, match=r"frames\.csv line 7"):
        RunPaths(run).contained(rel, run / "frames.csv", 7)
