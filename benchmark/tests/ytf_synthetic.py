"""A synthetic YouTube Faces DB tree with the real identity/video distribution.

Frame files are empty: the reader lists folders and never decodes, so the tree tests
the layout code at full identity scale (1,595 names, 3,425 videos) in seconds.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

# Number of people with 1..6 videos (the YTF paper and its web page).
VIDEOS_PER_PERSON: dict[int, int] = {1: 591, 2: 471, 3: 307, 4: 167, 5: 51, 6: 8}
IDENTITIES = sum(VIDEOS_PER_PERSON.values())  # 1,595
VIDEOS = sum(k * n for k, n in VIDEOS_PER_PERSON.items())  # 3,425
FIRST_FRAME = 9  # 9, 10, 11, ...: numeric order differs from string order


def identity_names() -> list[tuple[str, int]]:
    """(name, number of videos) for every synthetic person, in creation order."""
    out, number = [], 0
    for videos, people in VIDEOS_PER_PERSON.items():
        for _ in range(people):
            out.append((f"Person_{number}_V{videos}", videos))
            number += 1
    return out


def make_ytf_tree(
    root: Path, frames_per_video: int = 3, labels: bool = True, crlf: bool = False
) -> Counter:
    """Write ``frame_images_DB`` (and one ``<Name>.labeled_faces.txt`` per name) under
    ``root``; return the histogram {videos per person: people} it wrote."""
    base = root / "frame_images_DB"
    base.mkdir(parents=True, exist_ok=True)
    newline = "\r\n" if crlf else "\n"
    histogram: Counter = Counter()
    for name, videos in identity_names():
        histogram[videos] += 1
        lines = []
        for video in range(videos):
            folder = base / name / str(video)
            folder.mkdir(parents=True)
            for frame in range(FIRST_FRAME, FIRST_FRAME + frames_per_video):
                file_name = f"{video}.{frame}.jpg"
                os.close(os.open(folder / file_name, os.O_CREAT | os.O_WRONLY, 0o644))
                lines.append(f"{name}\\{video}\\{file_name},0,{100 + frame},120,64,64,0,1")
        if labels:
            (base / f"{name}.labeled_faces.txt").write_bytes(
                (newline.join(lines) + newline).encode()
            )
    return histogram
