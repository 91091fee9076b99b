"""Dataset readers: both layouts, file-system-independent order, clear layout errors."""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path

import pytest

from benchmark.datasets import (
    Dataset,
    FaceBox,
    natural_key,
    open_dataset,
    resolve_dataset,
)
from benchmark.errors import DatasetLayoutError, UsageError


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


# -- unreadable folders (issue 10, item 7) ---------------------------------------------
def _deny(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    """Make ``folders`` unlistable, as ``chmod 000`` would for a user who is not root."""
    denied = {os.fspath(f) for f in folders}
    real_scandir, real_listdir = os.scandir, os.listdir

    def check(path: object) -> None:
        if os.fspath(path).rstrip("/") in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    def scandir(path: object = ".") -> object:
        check(path)
        return real_scandir(path)

    def listdir(path: object = ".") -> list[str]:
        check(path)
        return real_listdir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)


def _make_lfw(base: Path, names: tuple[str, ...] = ("Al_A", "Bob_B", "Cy_C")) -> None:
    for name in names:
        for i in (1, 2):
            _touch(base / name / f"{name}_{i:04d}.jpg")


def test_an_unreadable_lfw_identity_is_a_problem(tmp_path: Path, monkeypatch) -> None:
    _make_lfw(tmp_path / "images")
    _deny(monkeypatch, tmp_path / "images" / "Bob_B")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "lfw" and dataset.identities() == ["Al_A", "Cy_C"]
    assert dataset.problems == [("Bob_B/", "images/Bob_B/: unreadable folder (Permission denied)")]


def test_unreadable_ytf_identity_and_video_are_problems(tmp_path: Path, monkeypatch) -> None:
    _make_ytf(tmp_path, 1)
    _touch(tmp_path / "frame_images_DB/Cy_C/0/0.1.jpg")
    _deny(monkeypatch, tmp_path / "frame_images_DB/Amy_A", tmp_path / "frame_images_DB/Zed_Z/2")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "youtube-faces" and dataset.identities() == ["Cy_C", "Zed_Z"]
    assert dataset.sessions()["Zed_Z"] == ["0", "10"]
    assert dataset.problems == [
        ("Amy_A/", "frame_images_DB/Amy_A/: unreadable folder (Permission denied)"),
        ("Zed_Z/2/", "frame_images_DB/Zed_Z/2/: unreadable folder (Permission denied)"),
    ]


@pytest.mark.parametrize("where", ["", "frame_images_DB"])
def test_an_unreadable_dataset_folder_is_one_clear_error(
    tmp_path: Path, monkeypatch, where: str
) -> None:
    _make_ytf(tmp_path, 1)
    folder = tmp_path / where if where else tmp_path
    _deny(monkeypatch, folder)
    with pytest.raises(DatasetLayoutError) as caught:
        open_dataset(tmp_path)
    assert str(caught.value) == f"{folder}: unreadable dataset folder (Permission denied)"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_a_chmod_000_identity_is_a_problem(tmp_path: Path) -> None:
    _make_lfw(tmp_path / "images")
    bob = tmp_path / "images" / "Bob_B"
    bob.chmod(0)
    try:
        dataset = open_dataset(tmp_path)
    finally:
        bob.chmod(0o755)
    assert dataset.identities() == ["Al_A", "Cy_C"]
    assert dataset.problems == [("Bob_B/", "images/Bob_B/: unreadable folder (Permission denied)")]


# -- paths that are not dataset folders (item 13) ---------------------------------------
@pytest.mark.parametrize("spec", ["layouts/nonexistent", "./nope", "~/nope", "ABSOLUTE"])
def test_a_missing_path_says_the_folder_does_not_exist(
    tmp_path: Path, monkeypatch, spec: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    if spec == "ABSOLUTE":
        spec = str(tmp_path / "nope")
    with pytest.raises(DatasetLayoutError) as caught:
        resolve_dataset(spec)
    assert str(caught.value) == f"{Path(spec).expanduser()}: folder does not exist"


def test_a_plain_unknown_name_is_still_an_unknown_asset(tmp_path: Path, monkeypatch) -> None:
    from benchmark.errors import AssetError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssetError, match="unknown asset 'nonexistent'"):
        resolve_dataset("nonexistent")


def test_a_file_is_not_a_dataset_folder(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    _touch(photo)
    for read in (open_dataset, resolve_dataset):
        with pytest.raises(DatasetLayoutError) as caught:
            read(str(photo))
        assert str(caught.value) == f"{photo} is a file, not a dataset folder"


# -- entries named like photos that are not files (item 14) -----------------------------
def _odd_entries(folder: Path, names: tuple[str, str, str]) -> None:
    """A folder, a symbolic link loop and a broken symbolic link, named ``names``."""
    (folder / names[0]).mkdir(parents=True)
    (folder / names[1]).symlink_to(folder / names[1])
    (folder / names[2]).symlink_to(folder / "nowhere.jpg")


def test_lfw_entries_that_are_not_files_say_what_they_are(tmp_path: Path) -> None:
    _make_lfw(tmp_path / "images", ("Bob_B",))
    _odd_entries(tmp_path / "images/Bob_B", ("Bob_B_0003.jpg", "Bob_B_0004.jpg", "Bob_B_0005.jpg"))
    dataset = open_dataset(tmp_path)
    assert len(dataset.frames) == 2
    assert dataset.problems == [
        ("Bob_B/Bob_B_0003.jpg", "images/Bob_B/Bob_B_0003.jpg: a folder, not a photo"),
        ("Bob_B/Bob_B_0004.jpg", "images/Bob_B/Bob_B_0004.jpg: a symbolic link loop, not a photo"),
        (
            "Bob_B/Bob_B_0005.jpg",
            "images/Bob_B/Bob_B_0005.jpg: a broken symbolic link, not a photo",
        ),
    ]


def test_ytf_entries_that_are_not_files_say_what_they_are(tmp_path: Path) -> None:
    base = tmp_path / "frame_images_DB"
    _touch(base / "Amy_A/0/0.1.jpg")
    _odd_entries(base / "Amy_A/0", ("0.2.jpg", "0.3.jpg", "0.4.jpg"))
    (base / "Amy_A/7").symlink_to(base / "Amy_A/7")
    dataset = open_dataset(tmp_path)
    assert [f.rel for f in dataset.frames] == ["frame_images_DB/Amy_A/0/0.1.jpg"]
    where = "frame_images_DB/Amy_A"
    assert dataset.problems == [
        ("Amy_A/0/0.2.jpg", f"{where}/0/0.2.jpg: a folder, not a frame"),
        ("Amy_A/0/0.3.jpg", f"{where}/0/0.3.jpg: a symbolic link loop, not a frame"),
        ("Amy_A/0/0.4.jpg", f"{where}/0/0.4.jpg: a broken symbolic link, not a frame"),
        ("Amy_A/7", f"{where}/7: a symbolic link loop where video folders are expected"),
    ]


# -- folders of one's own photos or videos (item 19) ------------------------------------
def _real_jpegs(lfw, n: int) -> list[Path]:
    return [f.path for f in lfw.frames[:n]]


def _own_photos(root: Path, jpegs: list[Path]) -> None:
    names = ("Alice/photo1.jpg", "Alice/IMG_2024.jpg", "Bob/Bob at the beach.JPG")
    for rel, jpeg in zip(names, jpegs, strict=True):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(jpeg, root / rel)


def test_a_folder_of_own_photos_is_read(lfw, tmp_path: Path) -> None:
    _own_photos(tmp_path, _real_jpegs(lfw, 3))
    dataset = open_dataset(tmp_path)
    assert (dataset.layout, dataset.problems) == ("photos", [])
    assert dataset.single_frame_sessions
    assert dataset.sessions() == {
        "Alice": ["IMG_2024.jpg", "photo1.jpg"],
        "Bob": ["Bob at the beach.JPG"],
    }
    assert [f.rel for f in dataset.frames] == [
        "Alice/IMG_2024.jpg",
        "Alice/photo1.jpg",
        "Bob/Bob at the beach.JPG",
    ]
    assert {f.index for f in dataset.frames} == {0}
    assert all(f.path.is_file() for f in dataset.frames)


def test_a_folder_of_own_videos_is_read(lfw, tmp_path: Path) -> None:
    jpegs = _real_jpegs(lfw, 3)
    for name in ("frame10.jpg", "frame9.jpg", "frame1.jpg"):
        shutil.copyfile(jpegs[0], _mkparent(tmp_path / "Alice/holiday clip" / name))
    shutil.copyfile(jpegs[1], _mkparent(tmp_path / "Bob/v2/a.png"))
    _touch(tmp_path / "Bob/v2/notes.txt")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "videos" and not dataset.single_frame_sessions
    assert [(f.uid, f.rel) for f in dataset.frames] == [
        ("Alice/holiday clip/0", "Alice/holiday clip/frame1.jpg"),
        ("Alice/holiday clip/1", "Alice/holiday clip/frame9.jpg"),
        ("Alice/holiday clip/2", "Alice/holiday clip/frame10.jpg"),
        ("Bob/v2/0", "Bob/v2/a.png"),
    ]
    assert [w for w, _ in dataset.problems] == ["Bob/v2/notes.txt"]
    assert "not an image file" in dataset.problems[0][1]


def test_own_photos_beside_lfw_names_still_read_as_photos(tmp_path: Path) -> None:
    """'IMG_2024.jpg' fits <Name>_NNNN.jpg, but not with the folder's name: not LFW."""
    for rel in ("Alice/IMG_2024.jpg", "Alice/IMG_2025.jpg", "Bob/DSC_0001.jpg"):
        _touch(tmp_path / rel)
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "photos" and dataset.problems == []
    assert dataset.identities() == ["Alice", "Bob"]


def test_single_frame_layouts_are_one_notion() -> None:
    from benchmark.datasets import single_frame_layout

    assert single_frame_layout("lfw") and single_frame_layout("photos")
    assert not single_frame_layout("youtube-faces") and not single_frame_layout("videos")


def test_data_info_reads_own_photos(lfw, tmp_path: Path, capsys) -> None:
    import json

    from benchmark.cli import main

    _own_photos(tmp_path, _real_jpegs(lfw, 3))
    assert main(["data", "info", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["layout"], info["identities"], info["frames"]) == ("photos", 2, 3)
    assert info["layout_problems"] == 0


@pytest.mark.parametrize("content", ["empty", "no images"])
def test_a_folder_without_images_is_an_error_in_the_cli(
    tmp_path: Path, capsys, content: str
) -> None:
    from benchmark.cli import main

    root = tmp_path / "data"
    root.mkdir()
    if content == "no images":
        for rel in ("Alice/notes.txt", "Bob/clip/readme.md", "list.csv"):
            _touch(root / rel)
    assert main(["data", "info", str(root)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"dmbench: error: {root}: not a dataset layout dmbench can read")
    assert "no usable image" in err
    assert "<identity>/<image>" in err and "<identity>/<video>/<frame image>" in err


def test_a_dataset_without_one_usable_image_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "Bad\rName" / "photo.jpg")
    with pytest.raises(DatasetLayoutError) as caught:
        open_dataset(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: no usable image in this photos dataset (1 layout problem, first: "
        "Bad\\rName/: name contains a control or line-separator character (U+000D); "
        "rename it)"
    )


def test_prep_of_own_photos_takes_each_photo_as_a_session(
    lfw20, default_prep, tmp_path: Path
) -> None:
    from benchmark.pipeline.prep.stage import run_prep

    _own_photos(tmp_path / "data", _real_jpegs(lfw20, 3))
    run = run_prep(open_dataset(tmp_path / "data"), tmp_path / "run", default_prep, progress=False)
    kept = [r.frame.uid for r in run.results if r.status == "kept"]
    assert kept, "LFW photos are kept by the default prep"
    assert [(s.database, s.query) for s in run.selections] == [(uid, uid) for uid in kept]


# -- names that would break the run's CSV tables ----------------------------------------
def test_names_with_control_or_line_separator_characters_are_problems(tmp_path: Path) -> None:
    base = tmp_path / "images"
    _make_lfw(base, ("Al_A", "Bad\u2028Name", "Bad\rName"))
    _touch(base / "Al_A" / "Al_A_0003\u2029.jpg")
    dataset = open_dataset(tmp_path)
    assert dataset.identities() == ["Al_A"] and len(dataset.frames) == 2
    assert dataset.problems == [
        (
            "Al_A/Al_A_0003\\u2029.jpg",
            "images/Al_A/Al_A_0003\\u2029.jpg: name contains a control or line-separator "
            "character (U+2029); rename it",
        ),
        (
            "Bad\\rName/",
            "images/Bad\\rName/: name contains a control or line-separator character "
            "(U+000D); rename it",
        ),
        (
            "Bad\\u2028Name/",
            "images/Bad\\u2028Name/: name contains a control or line-separator character "
            "(U+2028); rename it",
        ),
    ]


def test_ytf_video_names_with_control_characters_are_problems(tmp_path: Path) -> None:
    base = tmp_path / "frame_images_DB"
    _touch(base / "Amy_A/0/0.1.jpg")
    _touch(base / "Amy_A/1\x1bx/1.1.jpg")
    _touch(base / "Amy_A/2/2.1\u2028.jpg")
    dataset = open_dataset(tmp_path)
    assert [f.rel for f in dataset.frames] == ["frame_images_DB/Amy_A/0/0.1.jpg"]
    assert [w for w, _ in dataset.problems] == ["Amy_A/1\\x1bx/", "Amy_A/2/2.1\\u2028.jpg"]
    assert "(U+001B); rename it" in dataset.problems[0][1]
    for where, reason in dataset.problems:
        assert len((where + reason).splitlines()) == 1 and (where + reason).isprintable()


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_name_that_is_not_utf8_is_called_so() -> None:
    """An identity folder with the bytes ``Adam_\\xff``: the reason names the byte, not a
    "control character" (issue 22, item 7)."""
    from benchmark.runfolder import name_fault

    assert name_fault(os.fsdecode(b"Adam_\xff")) == (
        "name is not valid UTF-8 (byte 0xFF); rename it"
    )
    assert "U+001B" in name_fault("Adam\x1b[31m")


def test_a_run_folder_at_or_in_its_dataset_is_refused(tmp_path: Path) -> None:
    """Only the dataset's own folder and what lies below it, however the path is spelt (a
    link, ``..``); a sibling that shares a prefix and a parent that holds the data are fine."""
    data = tmp_path / "data"
    (data / "alice").mkdir(parents=True)
    (tmp_path / "via-link").symlink_to(data / "alice")
    dataset = Dataset("mine", data, "photos", [])
    for refused in (
        data,
        data / "alice",
        data / "alice" / "run",
        tmp_path / "via-link",
        data / ".." / "data" / "new",
    ):
        with pytest.raises(UsageError, match="a later run would read it as data"):
            dataset.check_outside(refused)
    for allowed in (tmp_path / "data-run", tmp_path, tmp_path / "out"):
        dataset.check_outside(allowed)
