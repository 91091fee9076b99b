"""Face datasets as identity → session → frame, in an order that never depends on the disk.

Two layouts are read:

* YouTube Faces DB: ``frame_images_DB/<Name>/<video>/<video>.<frame>.jpg`` — a session is
  a video, frames are numbered.
* LFW: ``images/<Name>/<Name>_NNNN.jpg`` (or the identity folders directly under the
  root) — every photo is its own session of one frame.

Everything is sorted by (identity, session number, frame number) with numbers compared
as numbers, so ``os.listdir`` order (the original's defect) cannot change a draw.
Entries that do not fit the layout are not silently dropped: they are listed in
``Dataset.problems`` with the reason, and the run records them.

YouTube Faces also ships ``frame_images_DB/<Name>.labeled_faces.txt`` beside the identity
folders: one line per frame with the face box of its own detector. Those boxes are kept in
``Dataset.labels`` (by frame path); a bad line, or a line naming a frame that is not on
disk, is a problem. Frames without a line are normal and only counted.
"""

from __future__ import annotations

import functools
import math
import os
import re
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmark.errors import DatasetLayoutError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_LFW_NAME = re.compile(r"^(?P<name>.+)_(?P<num>\d{4})\.[A-Za-z]+$")
_YTF_NAME = re.compile(r"^(?P<video>\d+)\.(?P<frame>\d+)\.[A-Za-z]+$")
YTF_LABEL_SUFFIX = ".labeled_faces.txt"
_YTF_LABEL_FIELDS = 8  # path, 0, x_center, y_center, width, height, 0, 1


def keyed_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator of its own for one identity (or one session): its draws depend on the
    seed and its names only, never on which other identities were drawn or in what order,
    so a study can grow its draw without changing anyone's frames or pairs."""
    return np.random.default_rng([seed, zlib.crc32("/".join(names).encode("utf-8"))])


def natural_key(text: str) -> tuple:
    """Sort 'v10' after 'v9': digits compare as integers."""
    return tuple(int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text))


@dataclass(frozen=True, order=True)
class Frame:
    identity: str
    session: str
    index: int
    path: Path = field(compare=False)
    rel: str = field(compare=False)  # path relative to the dataset root, "/"-separated

    @property
    def uid(self) -> str:
        return f"{self.identity}/{self.session}/{self.index}"


class FaceBox(NamedTuple):
    """The face box a dataset ships for a frame (YTF: its own detector's), in pixels.

    A plain tuple, so 621k of them stay small; kept beside the frames rather than in
    ``Frame`` so frame order and equality do not change.
    """

    x_center: float
    y_center: float
    width: float
    height: float


@dataclass
class Dataset:
    name: str
    root: Path
    layout: str  # "youtube-faces" | "lfw"
    frames: list[Frame]
    problems: list[tuple[str, str]] = field(default_factory=list)
    expected_sha256: dict[str, str] = field(default_factory=dict)
    labels: dict[str, FaceBox] = field(default_factory=dict)  # by Frame.rel

    def face_box(self, frame: Frame) -> FaceBox | None:
        """The dataset's own face box for ``frame`` (None when it has no label line)."""
        return self.labels.get(frame.rel)

    def labelled_frames(self) -> int:
        return sum(f.rel in self.labels for f in self.frames)

    def unlabelled_frames(self) -> int:
        """Frames on disk without a label line: normal in YTF, so counted, not a problem."""
        return len(self.frames) - self.labelled_frames()

    def identities(self) -> list[str]:
        return sorted({f.identity for f in self.frames}, key=natural_key)

    def sessions(self) -> dict[str, list[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for f in self.frames:
            out[f.identity].add(f.session)
        return {k: sorted(v, key=natural_key) for k, v in out.items()}

    def subset(self, max_identities: int | None, seed: int = 42, min_sessions: int = 1) -> Dataset:
        """Keep identities with ``min_sessions`` sessions; draw ``max_identities`` of them.

        The draw uses ``default_rng(seed)`` over the sorted eligible names, so it is
        the same on every machine; the kept names come back sorted.
        """
        sessions = self.sessions()
        eligible = [i for i in self.identities() if len(sessions[i]) >= min_sessions]
        if max_identities is not None and max_identities < len(eligible):
            rng = np.random.default_rng(seed)
            picked = rng.choice(len(eligible), size=max_identities, replace=False)
            eligible = [eligible[i] for i in sorted(picked)]
        return self.restrict(eligible)

    def draw_order(self, seed: int = 42, min_sessions: int = 1) -> list[str]:
        """Identities with ``min_sessions`` sessions in a seeded random order.

        Every prefix is a fair random draw, so a study that needs N *valid* identities
        can take the first k, find too few valid, and draw further without dropping the
        ones it has; their pairs are drawn per identity (``keyed_rng``), so they do not
        change either. (Which two frames of a YouTube Faces video are selected follows the
        original's one generator over all videos, so there a larger draw can select other
        frames of a video; LFW photos are sessions of one frame.)
        """
        sessions = self.sessions()
        eligible = [i for i in self.identities() if len(sessions[i]) >= min_sessions]
        order = np.random.default_rng(seed).permutation(len(eligible))
        return [eligible[i] for i in order]

    def restrict(self, identities: list[str] | set[str]) -> Dataset:
        """The same dataset with only these identities (frames, problems and labels)."""
        keep = set(identities)
        frames = [f for f in self.frames if f.identity in keep]
        return Dataset(
            name=self.name,
            root=self.root,
            layout=self.layout,
            frames=frames,
            problems=[p for p in self.problems if p[0].split("/")[0] in keep],
            expected_sha256=self.expected_sha256,
            labels={f.rel: self.labels[f.rel] for f in frames if f.rel in self.labels},
        )


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _subdirs(path: Path) -> list[Path]:
    """Visible sub-folders in natural order; the name breaks ties ('a1' vs 'a01')."""
    return sorted(
        (p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: (natural_key(p.name), p.name),
    )


def _looks_like_ytf(base: Path) -> bool:
    for identity in _subdirs(base)[:20]:
        for video in _subdirs(identity)[:3]:
            if any(_YTF_NAME.match(p.name) for p in video.iterdir() if _is_image(p)):
                return True
    return False


def _looks_like_lfw(base: Path) -> bool:
    for identity in _subdirs(base)[:20]:
        if any(_LFW_NAME.match(p.name) for p in identity.iterdir() if _is_image(p)):
            return True
    return False


@dataclass
class _Read:
    """What a layout reader found under its base folder."""

    frames: list[Frame] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, FaceBox] = field(default_factory=dict)


def _rel_prefix(root: Path, base: Path) -> str:
    """``base`` relative to ``root`` with a trailing '/' ('' when they are the same)."""
    rel = base.relative_to(root).as_posix()
    return "" if rel == "." else rel + "/"


def _read_ytf(root: Path, base: Path) -> _Read:
    """Walk ``<Name>/<video>/<video>.<frame>.jpg``, then read each name's label file.

    ``os.scandir`` and string paths instead of a stat and ``relative_to`` per file: the
    real DB has ~621k frames (about 7 s here instead of 17 s)."""
    out = _Read()
    prefix = _rel_prefix(root, base)
    identities = _subdirs(base)
    for identity in identities:
        name = identity.name
        identity_frames: list[Frame] = []
        with os.scandir(identity) as listing:
            entries = sorted(listing, key=lambda e: (natural_key(e.name), e.name))
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                out.problems.append(
                    (
                        f"{name}/{entry.name}",
                        f"{prefix}{name}/{entry.name}: a file where video folders are expected",
                    )
                )
                continue
            identity_frames.extend(_read_ytf_video(identity / entry.name, name, prefix, out))
        out.frames.extend(identity_frames)
        label_file = base / f"{name}{YTF_LABEL_SUFFIX}"
        if label_file.is_file():
            _read_ytf_labels(label_file, name, prefix, identity_frames, out)
    names = {identity.name for identity in identities}
    with os.scandir(base) as listing:
        orphans = sorted(
            e.name
            for e in listing
            if e.name.endswith(YTF_LABEL_SUFFIX)
            and not e.name.startswith(".")
            and not e.is_dir()
            and e.name[: -len(YTF_LABEL_SUFFIX)] not in names
        )
    for file_name in orphans:
        owner = file_name[: -len(YTF_LABEL_SUFFIX)]
        out.problems.append(
            (
                f"{owner}/{file_name}",
                f"{prefix}{file_name}: face labels for '{owner}', who has no folder "
                f"{prefix}{owner}/",
            )
        )
    return out


def _read_ytf_video(video: Path, name: str, prefix: str, out: _Read) -> list[Frame]:
    """One video folder's frames by frame number (file name breaks ties); other entries
    become problems, in name order."""
    found: list[tuple[int, str]] = []
    strays: list[str] = []
    with os.scandir(video) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            file_name = entry.name
            match = _YTF_NAME.match(file_name)
            if (
                match is None
                or file_name[file_name.rfind(".") :].lower() not in IMAGE_SUFFIXES
                or not entry.is_file()
            ):
                strays.append(file_name)
            elif match["video"] != video.name:
                strays.append(file_name)  # 5.3.jpg inside folder 1: whose frame is it?
            else:
                found.append((int(match["frame"]), file_name))
    found.sort()
    session = video.name
    for file_name in sorted(strays, key=lambda n: (natural_key(n), n)):
        where = f"{name}/{session}/{file_name}"
        out.problems.append(
            (where, f"{prefix}{where}: not a frame named {session}.<frame>.jpg of this video")
        )
    folder = f"{prefix}{name}/{session}/"
    frames, seen = [], set()
    for index, file_name in found:
        if index in seen:  # 0.1.jpg and 0.01.jpg: one frame number, two files
            where = f"{name}/{session}/{file_name}"
            out.problems.append(
                (where, f"{prefix}{where}: frame number {index} already used by another file")
            )
            continue
        seen.add(index)
        frames.append(Frame(name, session, index, video / file_name, folder + file_name))
    return frames


def _read_ytf_labels(
    label_file: Path, name: str, prefix: str, frames: list[Frame], out: _Read
) -> None:
    """Parse ``<Name>.labeled_faces.txt``: ``Name\\video\\file.jpg,0,xc,yc,w,h,0,1`` lines.

    Line endings may be LF or CRLF; blank lines are skipped. The box is keyed by the
    frame's own ``rel`` string, so 621k labels add no second copy of the paths.
    """
    file_rel = f"{prefix}{label_file.name}"
    try:
        data = label_file.read_bytes()
    except OSError as exc:
        out.problems.append((f"{name}/{label_file.name}", f"{file_rel}: unreadable ({exc})"))
        return
    on_disk = {f.rel: f.rel for f in frames}

    def problem(line_no: int, where: str, reason: str) -> None:
        out.problems.append((where, f"{file_rel} line {line_no}: {reason}"))

    for line_no, raw in enumerate(data.splitlines(), start=1):
        line_where = f"{name}/{label_file.name}:{line_no}"
        try:
            line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").strip()
        except UnicodeDecodeError:
            problem(line_no, line_where, "not UTF-8 text")
            continue
        if not line:
            continue
        fields = line.split(",")
        parts = fields[0].strip().replace("\\", "/").split("/")
        if len(fields) != _YTF_LABEL_FIELDS or len(parts) != 3 or not all(parts):
            problem(
                line_no,
                line_where,
                f"malformed label line {line[:80]!r} (expected "
                "<Name>\\<video>\\<video>.<frame>.jpg,0,x_center,y_center,width,height,0,1)",
            )
            continue
        if parts[0] != name:
            problem(line_no, line_where, f"labels a frame of '{parts[0]}', not of '{name}'")
            continue
        box = _parse_box(fields[2:6])
        if box is None:
            problem(
                line_no,
                line_where,
                f"malformed face box {','.join(fields[2:6])!r} (need four finite numbers, "
                "width and height > 0)",
            )
            continue
        where = "/".join(parts)
        rel = on_disk.get(f"{prefix}{where}")
        if rel is None:
            problem(line_no, where, f"labels {prefix}{where}, which is not a frame on disk")
        elif rel in out.labels:
            problem(line_no, where, f"a second label line for {rel} (the first one is kept)")
        else:
            out.labels[rel] = box


def _parse_box(values: list[str]) -> FaceBox | None:
    """Four finite numbers with a positive size, or None."""
    try:
        box = FaceBox(float(values[0]), float(values[1]), float(values[2]), float(values[3]))
    except ValueError:
        return None
    if not math.isfinite(sum(box)) or box.width <= 0 or box.height <= 0:
        return None
    return box


def _read_lfw(root: Path, base: Path) -> _Read:
    out = _Read()
    frames, problems = out.frames, out.problems
    for identity in _subdirs(base):
        for path in sorted(identity.iterdir(), key=lambda p: natural_key(p.name)):
            if path.name.startswith("."):
                continue
            rel = path.relative_to(root).as_posix()
            match = _LFW_NAME.match(path.name)
            if not _is_image(path) or match is None or match["name"] != identity.name:
                problems.append(
                    (
                        f"{identity.name}/{path.name}",
                        f"{rel}: not a photo named <Name>_NNNN.jpg in its identity folder",
                    )
                )
                continue
            number = int(match["num"])
            frames.append(Frame(identity.name, f"{number:04d}", 0, path, rel))
    return out


def open_dataset(path: Path | str, name: str | None = None) -> Dataset:
    """Read a dataset folder, detecting its layout; raise one clear error otherwise."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: dataset folder does not exist")
    candidates = [
        ("youtube-faces", root / "frame_images_DB"),
        ("youtube-faces", root),
        ("lfw", root / "images"),
        ("lfw", root / "images_deepfunneled"),
        ("lfw", root),
    ]
    readers: dict[str, tuple[Callable[[Path], bool], Callable[[Path, Path], _Read]]] = {
        "youtube-faces": (_looks_like_ytf, _read_ytf),
        "lfw": (_looks_like_lfw, _read_lfw),
    }
    for layout, base in candidates:
        looks_like, read = readers[layout]
        if not base.is_dir() or not looks_like(base):
            continue
        found = read(root, base)
        # Readers already emit this order; the stable sort states the guarantee. One
        # natural_key per distinct name, not two per frame.
        key = functools.cache(natural_key)
        found.frames.sort(key=lambda f: (key(f.identity), key(f.session), f.index))
        return Dataset(
            name or layout, root, layout, found.frames, found.problems, labels=found.labels
        )
    raise DatasetLayoutError(
        f"{root}: not a dataset layout dmbench can read. Expected YouTube Faces "
        "(frame_images_DB/<Name>/<video>/<video>.<frame>.jpg) or LFW "
        "(images/<Name>/<Name>_NNNN.jpg, or <Name>/<Name>_NNNN.jpg directly under the folder)."
    )


def load_expected_hashes(sums_file: Path) -> dict[str, str]:
    """Parse a sha256sum listing into {relative path: sha256}."""
    out = {}
    for line in sums_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split(maxsplit=1)
            out[rel.strip().lstrip("*")] = digest.lower()
    return out


def resolve_dataset(spec: str | Path, store=None) -> Dataset:
    """A dataset by folder path, or by manifest name (``lfw``, ``youtube-faces``).

    A name is looked up in the asset store's local folders and cache; files are later
    verified one by one against the manifest's hashes as they are read.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return open_dataset(path)
    from benchmark.assets import AssetStore
    from benchmark.errors import AssetError

    store = store or AssetStore()
    asset = store[str(spec)]
    if asset.kind != "dataset":
        raise AssetError(f"'{spec}' is an asset of kind {asset.kind}, not a dataset")
    for folder in store.candidate_dirs(asset):
        if folder.is_dir():
            dataset = open_dataset(folder, name=asset.name)
            dataset.expected_sha256 = {f.path: f.sha256 for f in asset.files if f.sha256}
            return dataset
    raise AssetError(f"dataset '{spec}' is not available locally.\n{asset.how_to_obtain()}")


def fetch_dataset(store, name: str, max_identities: int | None = None, seed: int = 42) -> Path:
    """Download a manifest-listed dataset (or the ``max_identities`` drawn subset of it)."""
    from tqdm import tqdm

    asset = store[name]
    entries = list(asset.files)
    if max_identities is not None:
        by_identity: dict[str, list] = defaultdict(list)
        for entry in entries:
            by_identity[entry.path.split("/")[1]].append(entry)
        eligible = sorted((k for k, v in by_identity.items() if len(v) >= 2), key=natural_key)
        if max_identities < len(eligible):
            rng = np.random.default_rng(seed)
            eligible = [
                eligible[i]
                for i in sorted(rng.choice(len(eligible), max_identities, replace=False))
            ]
        entries = [e for k in eligible for e in by_identity[k]]
    target = store.cache_dir / asset.name
    for entry in tqdm(entries, desc=f"fetch {name}", unit="file"):
        store._resolve_entry(asset, entry)
    return target
