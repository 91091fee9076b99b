"""Dataset readers: both layouts, file-system-independent order, clear layout errors."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from benchmark.datasets import natural_key, open_dataset
from benchmark.errors import DatasetLayoutError


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8")


def _make_ytf(root: Path, shuffle_seed: int) -> None:
    files = [
        f"frame_images_DB/{name}/{video}/{video}.{frame}.jpg"
        for name in ("Zed_Z", "Amy_A")
        for video in (0, 2, 10)
        for frame in (9, 10, 100)
    ]
    random.Random(shuffle_seed).shuffle(files)  # creation order must not matter
    for rel in files:
        _touch(root / rel)


def test_youtube_faces_layout_and_numeric_order(tmp_path: Path) -> None:
    _make_ytf(tmp_path / "a", 1)
    dataset = open_dataset(tmp_path / "a")
    assert dataset.layout == "youtube-faces"
    assert dataset.identities() == ["Amy_A", "Zed_Z"]
    assert dataset.sessions()["Amy_A"] == ["0", "2", "10"]
    amy0 = [f.index for f in dataset.frames if f.identity == "Amy_A" and f.session == "0"]
    assert amy0 == [9, 10, 100]
    assert dataset.frames[0].rel == "frame_images_DB/Amy_A/0/0.9.jpg"


def test_order_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    _make_ytf(tmp_path / "a", 1)
    _make_ytf(tmp_path / "b", 2)
    a = [f.rel for f in open_dataset(tmp_path / "a").frames]
    b = [f.rel for f in open_dataset(tmp_path / "b").frames]
    assert a == b


def test_lfw_layout_each_photo_its_own_session(tmp_path: Path) -> None:
    for name, n in (("Bob_B", 3), ("Al_A", 1)):
        for i in range(1, n + 1):
            _touch(tmp_path / "images" / name / f"{name}_{i:04d}.jpg")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "lfw"
    assert dataset.sessions() == {"Al_A": ["0001"], "Bob_B": ["0001", "0002", "0003"]}
    assert {f.index for f in dataset.frames} == {0}
    assert dataset.subset(5, min_sessions=2).identities() == ["Bob_B"]


def test_stray_files_are_reported_not_hidden(tmp_path: Path) -> None:
    _touch(tmp_path / "images/Bob_B/Bob_B_0001.jpg")
    _touch(tmp_path / "images/Bob_B/notes.txt")
    _touch(tmp_path / "images/Bob_B/Alice_0001.jpg")
    dataset = open_dataset(tmp_path)
    assert len(dataset.frames) == 1
    reasons = " ".join(r for _, r in dataset.problems)
    assert "images/Bob_B/notes.txt" in reasons and "images/Bob_B/Alice_0001.jpg" in reasons


@pytest.mark.parametrize("layout", ["empty", "flat", "deep", "missing"])
def test_wrong_layout_is_one_clear_error(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "data"
    if layout == "flat":
        _touch(root / "photo_0001.jpg")
    elif layout == "deep":
        _touch(root / "a" / "b" / "c" / "d.jpg")
    elif layout == "empty":
        root.mkdir()
    with pytest.raises(DatasetLayoutError, match=str(root).replace("\\", "\\\\")):
        open_dataset(root)


def test_subset_is_seeded_and_sorted(lfw) -> None:
    a = lfw.subset(25, seed=42, min_sessions=2).identities()
    assert a == lfw.subset(25, seed=42, min_sessions=2).identities() == sorted(a, key=natural_key)
    assert a != lfw.subset(25, seed=7, min_sessions=2).identities()
    assert len(a) == 25


def test_shared_lfw_matches_the_manifest(lfw) -> None:
    """Every local LFW photo is one of the official deep-funneled files (by sha256)."""
    from benchmark.assets import sha256_file

    assert lfw.expected_sha256, "a named dataset carries its manifest hashes"
    for frame in lfw.frames[:: max(1, len(lfw.frames) // 50)]:
        assert sha256_file(frame.path) == lfw.expected_sha256[frame.rel]


def test_os_listdir_is_not_used_for_order(tmp_path: Path, monkeypatch) -> None:
    _make_ytf(tmp_path / "a", 3)
    expected = [f.rel for f in open_dataset(tmp_path / "a").frames]
    real = os.listdir

    def reversed_listdir(path="."):
        return list(reversed(real(path)))

    monkeypatch.setattr(os, "listdir", reversed_listdir)
    assert [f.rel for f in open_dataset(tmp_path / "a").frames] == expected
