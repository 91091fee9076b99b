"""Dataset readers: both layouts, file-system-independent order, clear layout errors."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from benchmark.datasets import FaceBox, natural_key, open_dataset
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


# -- YouTube Faces label files ---------------------------------------------------------
def _label_line(name: str, video: int, frame: int, x: float = 100, w: float = 60) -> str:
    return f"{name}\\{video}\\{video}.{frame}.jpg,0,{x},120,{w},{w},0,1"


def test_ytf_label_files_give_each_frame_its_box(tmp_path: Path) -> None:
    """CRLF endings and a trailing empty line are normal; label files sit beside the
    identity folders and are not reported as stray files; unlabelled frames only counted."""
    _make_ytf(tmp_path, 1)
    base = tmp_path / "frame_images_DB"
    lines = [_label_line("Amy_A", 0, 9, x=101.5), _label_line("Amy_A", 10, 100)]
    (base / "Amy_A.labeled_faces.txt").write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode())
    zed = [_label_line("Zed_Z", v, f) for v in (0, 2, 10) for f in (9, 10, 100)]
    (base / "Zed_Z.labeled_faces.txt").write_text("\n".join(zed) + "\n")
    dataset = open_dataset(tmp_path)
    assert dataset.problems == []
    first = dataset.frames[0]
    assert first.rel == "frame_images_DB/Amy_A/0/0.9.jpg"
    assert dataset.face_box(first) == FaceBox(101.5, 120.0, 60.0, 60.0)
    assert dataset.face_box(dataset.frames[1]) is None  # Amy_A/0/0.10.jpg has no line
    assert dataset.labelled_frames() == 2 + 9 and dataset.unlabelled_frames() == 18 - 11
    assert dataset.subset(1, seed=0).labelled_frames() in (2, 9)


def test_ytf_label_problems_name_the_file_and_line(tmp_path: Path) -> None:
    _make_ytf(tmp_path, 1)
    base = tmp_path / "frame_images_DB"
    lines = [
        _label_line("Amy_A", 0, 9),  # 1 fine
        "Amy_A\\0\\0.10.jpg,0,1,2,3",  # 2 too few fields
        _label_line("Amy_A", 0, 100).replace(",100,", ",abc,"),  # 3 non-numeric box
        _label_line("Amy_A", 2, 9, w=-4),  # 4 negative size
        _label_line("Zed_Z", 0, 9),  # 5 another identity's frame
        _label_line("Amy_A", 3, 9),  # 6 no such video on disk
        _label_line("Amy_A", 0, 9, x=5),  # 7 second line for line 1's frame
        "",  # 8 blank: skipped
        "Amy_A/2/2.10.jpg,0,1,2,3,4,0,1",  # 9 fine ('/' separators are accepted too)
    ]
    (base / "Amy_A.labeled_faces.txt").write_text("\n".join(lines))
    (base / "Ghost_G.labeled_faces.txt").write_text(_label_line("Ghost_G", 0, 1))
    dataset = open_dataset(tmp_path)
    assert len(dataset.frames) == 18, "label problems never drop frames"
    reasons = {r.split(": ", 1)[0]: r for _, r in dataset.problems}
    where = "frame_images_DB/Amy_A.labeled_faces.txt line"
    assert "malformed label line" in reasons[f"{where} 2"]
    assert "malformed face box" in reasons[f"{where} 3"]
    assert "malformed face box" in reasons[f"{where} 4"]
    assert "not of 'Amy_A'" in reasons[f"{where} 5"]
    assert "frame_images_DB/Amy_A/3/3.9.jpg, which is not a frame on disk" in reasons[f"{where} 6"]
    assert "second label line" in reasons[f"{where} 7"]
    ghost = reasons["frame_images_DB/Ghost_G.labeled_faces.txt"]
    assert "no folder frame_images_DB/Ghost_G/" in ghost
    assert len(dataset.problems) == 7
    assert all(w.split("/")[0] in ("Amy_A", "Ghost_G") for w, _ in dataset.problems)
    assert dataset.labels == {
        "frame_images_DB/Amy_A/0/0.9.jpg": FaceBox(100.0, 120.0, 60.0, 60.0),
        "frame_images_DB/Amy_A/2/2.10.jpg": FaceBox(1.0, 2.0, 3.0, 4.0),
    }
    assert dataset.unlabelled_frames() == 16
    assert [w for w, _ in dataset.subset(1, seed=0).problems] in (
        [w for w, _ in dataset.problems if w.startswith("Amy_A/")],
        [],
    )


def test_ytf_problems_inside_videos_are_sorted(tmp_path: Path) -> None:
    _make_ytf(tmp_path, 1)
    for name in ("b10.txt", "b9.txt", "a.jpg"):
        _touch(tmp_path / "frame_images_DB/Amy_A/0" / name)
    _touch(tmp_path / "frame_images_DB/Amy_A/readme.txt")
    wheres = [w for w, _ in open_dataset(tmp_path).problems]
    assert wheres == ["Amy_A/0/a.jpg", "Amy_A/0/b9.txt", "Amy_A/0/b10.txt", "Amy_A/readme.txt"]


def test_aligned_images_db_beside_frame_images_db_is_not_read(tmp_path: Path) -> None:
    _make_ytf(tmp_path, 1)
    for rel in ("Amy_A/0/aligned_detect_0.9.jpg", "Nobody_N/1/aligned_detect_1.5.jpg"):
        _touch(tmp_path / "aligned_images_DB" / rel)
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "youtube-faces" and dataset.problems == []
    assert dataset.identities() == ["Amy_A", "Zed_Z"] and len(dataset.frames) == 18
    assert all(f.rel.startswith("frame_images_DB/") for f in dataset.frames)


def test_ytf_without_frame_images_db_folder(tmp_path: Path) -> None:
    """Pointing at frame_images_DB itself: the same frames, paths relative to it."""
    _make_ytf(tmp_path, 1)
    base = tmp_path / "frame_images_DB"
    (base / "Amy_A.labeled_faces.txt").write_text(_label_line("Amy_A", 0, 9))
    dataset = open_dataset(base)
    assert dataset.frames[0].rel == "Amy_A/0/0.9.jpg" and dataset.problems == []
    assert dataset.face_box(dataset.frames[0]) is not None


def test_same_natural_key_names_have_one_order(tmp_path: Path) -> None:
    """'A1'/'A01' keep a fixed order; '0.9.jpg' and '0.09.jpg' share one frame number, so
    the first in name order is the frame and the other a recorded problem (one uid each)."""
    for rel in ("A1/0/0.9.jpg", "A01/0/0.09.jpg", "A01/0/0.9.jpg"):
        _touch(tmp_path / "frame_images_DB" / rel)
    dataset = open_dataset(tmp_path)
    rels = [f.rel.removeprefix("frame_images_DB/") for f in dataset.frames]
    assert rels == ["A01/0/0.09.jpg", "A1/0/0.9.jpg"]
    assert len({f.uid for f in dataset.frames}) == len(dataset.frames)
    assert [p[0] for p in dataset.problems] == ["A01/0/0.9.jpg"]
    assert "frame number 9 already used" in dataset.problems[0][1]


def test_a_frame_of_another_video_is_a_problem(tmp_path: Path) -> None:
    for rel in ("Amy_A/1/1.3.jpg", "Amy_A/1/5.4.jpg"):
        _touch(tmp_path / "frame_images_DB" / rel)
    dataset = open_dataset(tmp_path)
    assert [f.rel for f in dataset.frames] == ["frame_images_DB/Amy_A/1/1.3.jpg"]
    assert dataset.problems[0][0] == "Amy_A/1/5.4.jpg"


def test_a_label_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    _touch(tmp_path / "frame_images_DB" / "Amy_A" / "0" / "0.9.jpg")
    label = "Amy_A\\0\\0.9.jpg,0,100,120,60,60,0,1\r\n"
    (tmp_path / "frame_images_DB" / "Amy_A.labeled_faces.txt").write_bytes(
        b"\xef\xbb\xbf" + label.encode()
    )
    dataset = open_dataset(tmp_path)
    assert dataset.problems == [] and dataset.labelled_frames() == 1


def test_data_info_shows_ytf_label_counts(tmp_path: Path, capsys) -> None:
    import json

    from benchmark.cli import main

    _make_ytf(tmp_path, 1)
    lines = [_label_line("Amy_A", 0, f) for f in (9, 10)] + ["broken"]
    (tmp_path / "frame_images_DB/Amy_A.labeled_faces.txt").write_text("\n".join(lines))
    assert main(["data", "info", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "youtube-faces" and info["frames"] == 18
    assert (info["labelled_frames"], info["unlabelled_frames"]) == (2, 16)
    assert info["layout_problems"] == 1
