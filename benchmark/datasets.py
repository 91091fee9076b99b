"""Face datasets as identity → session → frame, in an order that never depends on the disk.

Four layouts are read, the strict ones first:

* YouTube Faces DB: ``frame_images_DB/<Name>/<video>/<video>.<frame>.jpg`` — a session is
  a video, frames are numbered.
* LFW: ``images/<Name>/<Name>_NNNN.jpg`` (or the identity folders directly under the
  root) — every photo is its own session of one frame.
* ``photos``: ``<identity>/<image>`` with any image file names (one's own photos) — as in
  LFW, every image is its own session of one frame.
* ``videos``: ``<identity>/<video>/<frame image>`` with any image file names — as in
  YouTube Faces, a session is a video; its frames are numbered 0, 1, … in natural order of
  their file names.

The generic two only read a folder that looks like neither YouTube Faces nor LFW, so a
misnamed photo in a real LFW copy is still reported rather than taken.

Everything is sorted by (identity, session number, frame number) with numbers compared
as numbers, so ``os.listdir`` order (the original's defect) cannot change a draw.
Entries that do not fit the layout are not silently dropped: they are listed in
``Dataset.problems`` with the reason, and the run records them. So are folders that
cannot be read and names with control or line-separator characters (they would break the
run's CSV tables); only an unreadable dataset folder, or one without a single usable
image, is an error.

YouTube Faces also ships ``frame_images_DB/<Name>.labeled_faces.txt`` beside the identity
folders: one line per frame with the face box of its own detector. Those boxes are kept in
``Dataset.labels`` (by frame path); a bad line, or a line naming a frame that is not on
disk, is a problem. Frames without a line are normal and only counted.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmark.errors import DatasetLayoutError, UsageError
from benchmark.runfolder import breaks_lines, name_fault

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_LFW_NAME = re.compile(r"^(?P<name>.+)_(?P<num>\d{4})\.[A-Za-z]+$")
_YTF_NAME = re.compile(r"^(?P<video>\d+)\.(?P<frame>\d+)\.[A-Za-z]+$")
YTF_LABEL_SUFFIX = ".labeled_faces.txt"
_YTF_LABEL_FIELDS = 8  # path, 0, x_center, y_center, width, height, 0, 1
_SAMPLE_IDENTITIES = 20  # layout detection looks into this many identity folders…
_SAMPLE_VIDEOS = 3  # …and this many video folders of each

# Layouts in which every photo is its own session of one frame: a session's one kept
# frame stands for both sides, and recognition pairs different sessions.
SINGLE_FRAME_LAYOUTS = frozenset({"lfw", "photos"})


def single_frame_layout(layout: str) -> bool:
    """Whether every photo of ``layout`` is its own session (see SINGLE_FRAME_LAYOUTS); takes
    the layout string a run records, so consumers of a finished run need no Dataset."""
    return layout in SINGLE_FRAME_LAYOUTS


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
    layout: str  # "youtube-faces" | "lfw" | "photos" | "videos"
    frames: list[Frame]
    problems: list[tuple[str, str]] = field(default_factory=list)
    expected_sha256: dict[str, str] = field(default_factory=dict)
    labels: dict[str, FaceBox] = field(default_factory=dict)  # by Frame.rel

    @property
    def single_frame_sessions(self) -> bool:
        """Every photo is its own session (LFW, one's own photos): see single_frame_layout."""
        return single_frame_layout(self.layout)

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

    def check_outside(self, folder: Path | str, what: str = "--out folder") -> None:
        """Refuse a run folder at or inside this dataset: the next run would read it back
        as an identity, its crops as photos. Checked before anything is written."""
        where, root = Path(folder).resolve(), self.root.resolve()
        if where.is_relative_to(root):
            place = "is the dataset folder" if where == root else "lies inside the dataset"
            raise UsageError(
                f"{what} {folder} {place} {self.root}, where a later run would read it as "
                "data; choose a folder outside the dataset"
            )

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
            # an identity's problems go with it; those of the folder itself stay
            problems=[p for p in self.problems if "/" not in p[0] or p[0].split("/")[0] in keep],
            expected_sha256=self.expected_sha256,
            labels={f.rel: self.labels[f.rel] for f in frames if f.rel in self.labels},
        )


def _has_image_suffix(file_name: str) -> bool:
    return file_name[file_name.rfind(".") :].lower() in IMAGE_SUFFIXES


def _shown(text: str) -> str:
    """``text`` with those characters escaped (``\\r``, ``\\u2028``), so a problem stays one
    line of one CSV row."""
    if text.isprintable():
        return text
    return "".join(ascii(char)[1:-1] if breaks_lines(char) else char for char in text)


def _not_a_file(entry: os.DirEntry) -> str | None:
    """What ``entry`` is when it is not a regular file (or a link to one), else None.

    One description for every layout, so a folder or a link loop named like a photo is
    reported as what it is, not as a misnamed photo.
    """
    try:
        if entry.is_file():
            return None
        if entry.is_dir():
            return "a folder"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        return f"unreadable ({exc.strerror or exc})"
    if entry.is_symlink():
        if os.path.exists(entry.path):  # a link to /dev/zero, say: it leads somewhere
            return "a link to a special file (device, pipe or socket)"
        return "a broken symbolic link"
    return "a special file (device, pipe or socket)"


def _is_dir(entry: os.DirEntry) -> bool:
    return _not_a_file(entry) == "a folder"


def _scan(folder: str | Path) -> list[os.DirEntry]:
    """Visible entries (no dot names) in the order the disk gives; raises OSError."""
    with os.scandir(folder) as listing:
        return [entry for entry in listing if not entry.name.startswith(".")]


def _scan_quietly(folder: str | Path) -> list[os.DirEntry]:
    """``_scan`` for layout detection: an unreadable folder is skipped there (the reader
    reports it)."""
    try:
        return _scan(folder)
    except OSError:
        return []


def _by_name(entries: Iterable[os.DirEntry]) -> list[os.DirEntry]:
    """Natural order; the name breaks ties ('a1' vs 'a01')."""
    return sorted(entries, key=lambda e: (natural_key(e.name), e.name))


def _unreadable(folder: Path, exc: OSError) -> DatasetLayoutError:
    return DatasetLayoutError(f"{folder}: unreadable dataset folder ({exc.strerror or exc})")


def _base_entries(base: Path) -> list[os.DirEntry]:
    """Everything directly under a layout's base folder. The base is the dataset itself,
    so an unreadable one is one clear error, not a problem."""
    try:
        return _scan(base)
    except OSError as exc:
        raise _unreadable(base, exc) from None


def _identities(base: Path) -> list[os.DirEntry]:
    """The identity folders under ``base`` (files beside them are not read)."""
    return _by_name(entry for entry in _base_entries(base) if _is_dir(entry))


@dataclass
class _Read:
    """What a layout reader found under its base folder."""

    frames: list[Frame] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, FaceBox] = field(default_factory=dict)

    def problem(self, where: str, reason: str) -> None:
        """Record a layout problem; names in it are escaped (see ``_shown``)."""
        self.problems.append((_shown(where), _shown(reason)))


def _rel_prefix(root: Path, base: Path) -> str:
    """``base`` relative to ``root`` with a trailing '/' ('' when they are the same)."""
    rel = base.relative_to(root).as_posix()
    return "" if rel == "." else rel + "/"


def _entries(folder: str, where: str, prefix: str, out: _Read) -> list[os.DirEntry]:
    """The entries of a folder inside the dataset (``where``: its path from the base,
    ending in '/'); an unreadable one is a problem and reads as empty."""
    try:
        return _scan(folder)
    except OSError as exc:
        out.problem(where, f"{prefix}{where}: unreadable folder ({exc.strerror or exc})")
        return []


def _bad_name(entry: os.DirEntry, where: str, prefix: str, out: _Read) -> bool:
    """Record a problem and say True when ``entry``'s name cannot be used (``name_fault``)."""
    fault = name_fault(entry.name)
    if fault is None:
        return False
    path = f"{where}{entry.name}" + ("/" if _is_dir(entry) else "")
    out.problem(path, f"{prefix}{path}: {fault}")
    return True


# -- what each layout calls a photo or a frame -----------------------------------------
def _lfw_session(identity: str, file_name: str) -> str | None:
    """``<Name>_NNNN.jpg`` of its own identity folder → session 'NNNN'."""
    match = _LFW_NAME.match(file_name)
    if match is None or match["name"] != identity or not _has_image_suffix(file_name):
        return None
    return f"{int(match['num']):04d}"


def _photo_session(identity: str, file_name: str) -> str | None:
    """Any image file is a session of its own, named by its file name (unique in the
    folder, unlike the stem: 'a.jpg' and 'a.png')."""
    return file_name if _has_image_suffix(file_name) else None


def _ytf_frame(video: str, file_name: str) -> int | None:
    """``<video>.<frame>.jpg`` of its own video folder → the frame number (``5.3.jpg``
    inside folder 1: whose frame is it? none)."""
    match = _YTF_NAME.match(file_name)
    if match is None or match["video"] != video or not _has_image_suffix(file_name):
        return None
    return int(match["frame"])


def _video_frame(video: str, file_name: str) -> tuple | None:
    """Any image file is a frame; frames are numbered by position in this order."""
    return (natural_key(file_name), file_name) if _has_image_suffix(file_name) else None


_IMAGE_KINDS = ", ".join(sorted(IMAGE_SUFFIXES))
_NOT_AN_IMAGE = f"not an image file ({_IMAGE_KINDS})"


@dataclass(frozen=True)
class _Layout:
    """A layout: where it may sit and what it calls a photo (or a video's frame)."""

    name: str
    bases: tuple[str, ...]  # folders under the root it may sit in ('' is the root)
    videos: bool  # <identity>/<video>/<frame> (else <identity>/<photo>)
    accept: Callable[[str, str], object]  # (folder, file name) → session / sort key or None
    expected: str  # why a file it does not accept is no photo or frame ('{folder}')
    numbered: bool = False  # videos: ``accept`` gives the frame number (else: position)
    labels: bool = False  # YouTube Faces <Name>.labeled_faces.txt beside the identities


_GENERIC_BASES = ("frame_images_DB", "images", "images_deepfunneled", "")
_STRICT_LAYOUTS = (
    _Layout(
        "youtube-faces",
        ("frame_images_DB", ""),
        videos=True,
        accept=_ytf_frame,
        expected="not a frame named {folder}.<frame>.jpg of this video",
        numbered=True,
        labels=True,
    ),
    _Layout(
        "lfw",
        ("images", "images_deepfunneled", ""),
        videos=False,
        accept=_lfw_session,
        expected="not a photo named <Name>_NNNN.jpg in its identity folder",
    ),
)
_GENERIC_LAYOUTS = (
    _Layout("photos", _GENERIC_BASES, videos=False, accept=_photo_session, expected=_NOT_AN_IMAGE),
    _Layout("videos", _GENERIC_BASES, videos=True, accept=_video_frame, expected=_NOT_AN_IMAGE),
)


def _candidates(root: Path) -> Iterator[tuple[_Layout, Path]]:
    """(layout, base) in the order they are tried: YouTube Faces and LFW names first;
    then, folder by folder, one's own photos before videos (a photo folder never looks
    like videos, but the parent of photo folders would)."""
    for layout in _STRICT_LAYOUTS:
        for base in layout.bases:
            yield layout, root / base
    for base in _GENERIC_BASES:
        for layout in _GENERIC_LAYOUTS:
            yield layout, root / base


def _looks_like(layout: _Layout, base: Path) -> bool:
    """Whether a sample of ``base``'s folders holds one file ``layout`` accepts."""
    folders: Iterator[tuple[str, list[os.DirEntry]]] = (
        (identity.name, _scan_quietly(identity.path))
        for identity in _identities(base)[:_SAMPLE_IDENTITIES]
    )
    if layout.videos:
        folders = (
            (video.name, _scan_quietly(video.path))
            for _, entries in folders
            for video in _by_name(e for e in entries if _is_dir(e))[:_SAMPLE_VIDEOS]
        )
    return any(
        layout.accept(folder, entry.name) is not None and _not_a_file(entry) is None
        for folder, entries in folders
        for entry in entries
    )


# -- readers ---------------------------------------------------------------------------
def _read(root: Path, base: Path, layout: _Layout) -> _Read:
    """Walk ``<identity>/…`` under ``base``; then, for YouTube Faces, the label files.

    ``os.scandir`` and string paths instead of a stat and ``relative_to`` per file: the
    real YouTube Faces DB has ~621k frames (about 7 s here instead of 17 s)."""
    out = _Read()
    prefix = _rel_prefix(root, base)
    identities = _identities(base)
    _not_identities(base, prefix, layout, out)
    for identity in identities:
        name = identity.name
        if _bad_name(identity, "", prefix, out):
            continue
        entries = _by_name(_entries(identity.path, f"{name}/", prefix, out))
        if layout.videos:
            frames = _read_videos(entries, name, prefix, layout, out)
        else:
            frames = _read_photos(entries, name, prefix, layout, out)
        out.frames.extend(frames)
        if layout.labels and (label_file := base / f"{name}{YTF_LABEL_SUFFIX}").is_file():
            _read_ytf_labels(label_file, name, prefix, frames, out)
    if layout.labels:
        _orphan_labels(base, {identity.name for identity in identities}, prefix, out)
    return out


def _not_identities(base: Path, prefix: str, layout: _Layout, out: _Read) -> None:
    """Record every entry beside the identity folders that is not one (a file, a broken
    link, a link loop, a hidden or odd name): counted and named in the run, never skipped
    without a word. YouTube Faces' label files are expected there."""
    with os.scandir(base) as listing:
        entries = _by_name(listing)
    for entry in entries:
        if layout.labels and entry.name.endswith(YTF_LABEL_SUFFIX):
            continue
        kind = _not_a_file(entry)
        if entry.name.startswith("."):
            why = "a hidden entry, not read as an identity"
        elif kind == "a folder":
            continue
        else:
            why = f"{kind or 'a file'}, not an identity folder"
        out.problem(entry.name, f"{prefix}{entry.name}: {why}")


def _accept(entry: os.DirEntry, folder: str, layout: _Layout, what: str) -> tuple[object, str]:
    """(session or sort key, '') for a file ``layout`` takes from ``folder``, else
    (None, why not): its name, what it is when not a file, or the layout's naming rule."""
    fault = name_fault(entry.name)
    if fault is not None:
        return None, fault
    kind = _not_a_file(entry)
    if kind is not None:
        return None, f"{kind}, not {what}"
    key = layout.accept(folder, entry.name)
    if key is None:
        return None, layout.expected.format(folder=folder)
    return key, ""


def _read_photos(
    entries: list[os.DirEntry], name: str, prefix: str, layout: _Layout, out: _Read
) -> list[Frame]:
    """An identity folder's photos, each its own session of one frame (in name order)."""
    frames: list[Frame] = []
    seen: dict[object, str] = {}  # session → file name
    for entry in entries:
        where = f"{name}/{entry.name}"
        session, why = _accept(entry, name, layout, "a photo")
        if not why and session in seen:  # Bob_0001.jpg and Bob_0001.png
            why = f"photo number {session} already used by {seen[session]}"
        if why:
            out.problem(where, f"{prefix}{where}: {why}")
            continue
        seen[session] = entry.name
        frames.append(Frame(name, str(session), 0, Path(entry.path), prefix + where))
    return frames


def _read_videos(
    entries: list[os.DirEntry], name: str, prefix: str, layout: _Layout, out: _Read
) -> list[Frame]:
    """An identity folder's video folders (in name order); anything else is a problem."""
    frames: list[Frame] = []
    for entry in entries:
        if _bad_name(entry, f"{name}/", prefix, out):
            continue
        kind = _not_a_file(entry)
        if kind == "a folder":
            frames.extend(_read_video(entry, name, prefix, layout, out))
        else:
            where = f"{name}/{entry.name}"
            what = "a file" if kind is None else kind
            out.problem(where, f"{prefix}{where}: {what} where video folders are expected")
    return frames


def _read_video(
    video: os.DirEntry, name: str, prefix: str, layout: _Layout, out: _Read
) -> list[Frame]:
    """One video folder's frames by frame number (file name breaks ties) or, without
    numbers, by position in natural order; other entries become problems, in name order."""
    session = video.name
    where = f"{name}/{session}/"
    found: list[tuple] = []
    strays: list[tuple[str, str]] = []  # (file name, why)
    for entry in _entries(video.path, where, prefix, out):
        key, why = _accept(entry, session, layout, "a frame")
        if why:
            strays.append((entry.name, why))
        else:
            found.append((key, entry.name))
    found.sort()
    video_path = Path(video.path)
    folder = prefix + where
    frames, seen = [], set()
    for position, (key, file_name) in enumerate(found):
        index = key if layout.numbered else position
        if index in seen:  # 0.1.jpg and 0.01.jpg: one frame number, two files
            strays.append((file_name, f"frame number {index} already used by another file"))
            continue
        seen.add(index)
        frames.append(Frame(name, session, index, video_path / file_name, folder + file_name))
    for file_name, why in sorted(strays, key=lambda s: (natural_key(s[0]), s[0])):
        out.problem(where + file_name, f"{folder}{file_name}: {why}")
    return frames


def _orphan_labels(base: Path, names: set[str], prefix: str, out: _Read) -> None:
    """``<Name>.labeled_faces.txt`` files whose ``<Name>/`` folder is missing."""
    orphans = sorted(
        entry.name
        for entry in _base_entries(base)
        if entry.name.endswith(YTF_LABEL_SUFFIX)
        and entry.name[: -len(YTF_LABEL_SUFFIX)] not in names
        and not _is_dir(entry)
    )
    for file_name in orphans:
        owner = file_name[: -len(YTF_LABEL_SUFFIX)]
        out.problem(
            f"{owner}/{file_name}",
            f"{prefix}{file_name}: face labels for '{owner}', who has no folder {prefix}{owner}/",
        )


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
        out.problem(f"{name}/{label_file.name}", f"{file_rel}: unreadable ({exc})")
        return
    on_disk = {f.rel: f.rel for f in frames}

    def problem(line_no: int, where: str, reason: str) -> None:
        out.problem(where, f"{file_rel} line {line_no}: {reason}")

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


def _check_folder(root: Path) -> None:
    """One clear error unless ``root`` is a folder that can be listed."""
    try:
        with os.scandir(root):
            return
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        if root.exists():
            raise DatasetLayoutError(f"{root} is a file, not a dataset folder") from None
    except OSError as exc:
        raise _unreadable(root, exc) from None
    raise DatasetLayoutError(f"{root}: folder does not exist")


def _no_usable_image(root: Path, layout: str, problems: list[tuple[str, str]]) -> str:
    count = len(problems)
    first = f", first: {problems[0][1]}" if problems else ""
    return (
        f"{root}: no usable image in this {layout} dataset "
        f"({count} layout problem{'' if count == 1 else 's'}{first})"
    )


def open_dataset(path: Path | str, name: str | None = None) -> Dataset:
    """Read a dataset folder, detecting its layout; raise one clear error otherwise.

    A dataset without a single usable image is an error too: an empty run that "succeeds"
    would hide that nothing was read.
    """
    root = Path(path).expanduser()
    _check_folder(root)
    for layout, base in _candidates(root):
        if not base.is_dir() or not _looks_like(layout, base):
            continue
        found = _read(root, base, layout)
        if not found.frames:
            raise DatasetLayoutError(_no_usable_image(root, layout.name, found.problems))
        # Readers already emit this order; the stable sort states the guarantee. One
        # natural_key per distinct name, not two per frame.
        key = functools.cache(natural_key)
        found.frames.sort(key=lambda f: (key(f.identity), key(f.session), f.index))
        return Dataset(
            name or layout.name,
            root,
            layout.name,
            found.frames,
            found.problems,
            labels=found.labels,
        )
    raise DatasetLayoutError(
        f"{root}: not a dataset layout dmbench can read (no usable image found). Expected "
        "YouTube Faces (frame_images_DB/<Name>/<video>/<video>.<frame>.jpg), LFW "
        "(images/<Name>/<Name>_NNNN.jpg, or <Name>/<Name>_NNNN.jpg directly under the "
        "folder), a folder per person of photos (<identity>/<image>) or of videos as frame "
        f"images (<identity>/<video>/<frame image>); images are {_IMAGE_KINDS}."
    )


def load_expected_hashes(sums_file: Path) -> dict[str, str]:
    """Parse a sha256sum listing into {relative path: sha256}."""
    out = {}
    for line in sums_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split(maxsplit=1)
            out[rel.strip().lstrip("*")] = digest.lower()
    return out


def _looks_like_a_path(spec: str) -> bool:
    """Whether ``spec`` names a folder rather than an asset (a path separator, a leading
    '.' or '~', or absolute): a missing one is then reported as a missing folder, not as
    an unknown asset."""
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    return (
        any(sep in spec for sep in separators)
        or spec.startswith((".", "~"))
        or Path(spec).is_absolute()
    )


def resolve_dataset(spec: str | Path, store=None) -> Dataset:
    """A dataset by folder path, or by manifest name (``lfw``, ``youtube-faces``).

    Anything that looks like a path, or exists, is opened as a folder.

    A name is looked up in the asset store's local folders and cache; files are later
    verified one by one against the manifest's hashes as they are read.
    """
    text = os.fspath(spec)
    if _looks_like_a_path(text) or os.path.lexists(text):
        return open_dataset(text)
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
