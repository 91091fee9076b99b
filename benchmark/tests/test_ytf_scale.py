"""YouTube Faces DB at full identity scale: 1,595 names, 3,425 videos, with the real
videos-per-person histogram and a label file per name (synthetic, empty frame files)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmark.datasets import Dataset, natural_key, open_dataset
from benchmark.tests.ytf_synthetic import (
    IDENTITIES,
    VIDEOS,
    VIDEOS_PER_PERSON,
    make_ytf_tree,
)

FRAMES_PER_VIDEO = 3


@pytest.fixture(scope="module")
def ytf_full(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("ytf_full")
    written = make_ytf_tree(root, FRAMES_PER_VIDEO, crlf=True)
    assert written == Counter(VIDEOS_PER_PERSON)
    # aligned_images_DB sits beside frame_images_DB in the real archive.
    aligned = root / "aligned_images_DB" / "Person_0_V1" / "0"
    aligned.mkdir(parents=True)
    (aligned / "aligned_detect_0.9.jpg").write_bytes(b"")
    return open_dataset(root)


def test_full_scale_identities_and_videos(ytf_full: Dataset) -> None:
    assert (IDENTITIES, VIDEOS) == (1595, 3425)
    sessions = ytf_full.sessions()
    assert len(ytf_full.identities()) == IDENTITIES
    assert sum(len(v) for v in sessions.values()) == VIDEOS
    assert Counter(len(v) for v in sessions.values()) == Counter(VIDEOS_PER_PERSON)
    assert len(ytf_full.frames) == VIDEOS * FRAMES_PER_VIDEO
    assert ytf_full.problems == [], "label files are not strays; aligned_images_DB unread"


def test_full_scale_labels_and_order(ytf_full: Dataset) -> None:
    assert ytf_full.labelled_frames() == len(ytf_full.frames)
    assert ytf_full.unlabelled_frames() == 0
    frames = ytf_full.frames
    order = [(natural_key(f.identity), natural_key(f.session), f.index) for f in frames]
    assert order == sorted(order) and len(set(order)) == len(order)
    # Natural order: Person_2 before Person_10, frame 9 before frame 10.
    names = ytf_full.identities()
    assert names.index("Person_2_V1") < names.index("Person_10_V1")
    assert [f.index for f in frames[:FRAMES_PER_VIDEO]] == [9, 10, 11]
    assert ytf_full.face_box(frames[1]) == (110.0, 120.0, 64.0, 64.0)


def test_full_scale_subset_keeps_labels(ytf_full: Dataset) -> None:
    small = ytf_full.subset(50, seed=42, min_sessions=2)
    assert len(small.identities()) == 50
    assert small.labelled_frames() == len(small.frames) == len(small.labels)
    assert small.identities() == ytf_full.subset(50, seed=42, min_sessions=2).identities()


def test_reader_does_not_open_frame_files(tmp_path: Path, monkeypatch) -> None:
    """Empty frame files are valid here because opening a dataset only lists folders;
    open() is only called on the label files."""
    make_ytf_tree(tmp_path, 2)
    import builtins
    import io

    opened: list[str] = []
    real_open = io.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    dataset = open_dataset(tmp_path)
    assert len(dataset.frames) == 2 * VIDEOS
    assert opened and all(p.endswith(".labeled_faces.txt") for p in opened)
