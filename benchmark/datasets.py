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
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.errors import DatasetLayoutError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_LFW_NAME = re.compile(r"^(?P<name>.+)_(?P<num>\d{4})\.[A-Za-z]+$")
_YTF_NAME = re.compile(r"^(?P<video>\d+)\.(?P<frame>\d+)\.[A-Za-z]+$")


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


@dataclass
class Dataset:
    name: str
    root: Path
    layout: str  # "youtube-faces" | "lfw"
    frames: list[Frame]
    problems: list[tuple[str, str]] = field(default_factory=list)
    expected_sha256: dict[str, str] = field(default_factory=dict)

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
        keep = set(eligible)
        return Dataset(
            name=self.name,
            root=self.root,
            layout=self.layout,
            frames=[f for f in self.frames if f.identity in keep],
            problems=[p for p in self.problems if p[0].split("/")[0] in keep],
            expected_sha256=self.expected_sha256,
        )


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _subdirs(path: Path) -> list[Path]:
    return sorted(
        (p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
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


def _read_ytf(root: Path, base: Path) -> tuple[list[Frame], list[tuple[str, str]]]:
    frames, problems = [], []
    for identity in _subdirs(base):
        for video in _subdirs(identity):
            for path in sorted(video.iterdir(), key=lambda p: natural_key(p.name)):
                rel = path.relative_to(root).as_posix()
                if path.name.startswith("."):
                    continue
                match = _YTF_NAME.match(path.name)
                if not _is_image(path) or match is None:
                    problems.append(
                        (
                            f"{identity.name}/{video.name}/{path.name}",
                            f"{rel}: not a frame named <video>.<frame>.jpg",
                        )
                    )
                    continue
                frames.append(Frame(identity.name, video.name, int(match["frame"]), path, rel))
        for stray in identity.iterdir():
            if stray.is_file() and not stray.name.startswith("."):
                problems.append(
                    (
                        f"{identity.name}/{stray.name}",
                        f"{stray.relative_to(root).as_posix()}: a file where video "
                        "folders are expected",
                    )
                )
    return frames, problems


def _read_lfw(root: Path, base: Path) -> tuple[list[Frame], list[tuple[str, str]]]:
    frames, problems = [], []
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
    return frames, problems


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
    for layout, base in candidates:
        if not base.is_dir():
            continue
        if layout == "youtube-faces" and _looks_like_ytf(base):
            frames, problems = _read_ytf(root, base)
        elif layout == "lfw" and _looks_like_lfw(base):
            frames, problems = _read_lfw(root, base)
        else:
            continue
        frames.sort(key=lambda f: (natural_key(f.identity), natural_key(f.session), f.index))
        return Dataset(name or layout, root, layout, frames, problems)
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
