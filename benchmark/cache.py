"""Content-addressed cache of stage outputs.

A key is the sha256 of everything that determines an output: the input's sha256,
the stage, the backend, its parameters, the sha256 of every asset it used, the package
version, and the digest of the code that computed it (``benchmark.provenance``: the
sources of the modules it runs and the stages before it, the versions of the libraries
they call). Each entry keeps that code stamp, so ``prune`` can remove the entries that no
key of the installed code can reach. An entry is a folder holding the output files and ``meta.json``
(the record, each file's sha256, and a digest of both). It is built in a temporary
folder and moved into place with one rename, so readers see either nothing or a whole
entry. An entry whose meta is missing, unreadable or fails its own digest, or whose
files do not match their hashes, is a miss (and is removed), never a crash: one flipped
byte in a record (``kept`` → ``kepu``) must not change a result.

A cache that cannot be written (read-only, full disk) degrades to reading what it has,
with one warning per run; a cache write never fails a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.errors import DmbenchError
from benchmark.provenance import CodeStamp
from benchmark.settings import cache_root

_META = "meta.json"
# Every stage that caches; `cache clear --stage` accepts only these names.
STAGES = ("prep", "mask", "recognize", "utility", "attacker", "decoded")
DECODED = "decoded"  # a memo, not a stage: an image file's sha256 → its pixels' sha256


def _decoder_code() -> CodeStamp:
    """The code that decodes images (and the OpenCV and Pillow it calls)."""
    return CodeStamp.of(["benchmark.imageio"])


def _decoded_key(file_sha256: str, decoder: str) -> str:
    code = _decoder_code().digest
    return hashlib.sha256(f"{file_sha256}|{decoder}|{code}".encode()).hexdigest()


class CacheWarning(UserWarning):
    """The cache could not be written; the run goes on without caching new work."""


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _is_file_name(name: object) -> bool:
    """One plain file name inside an entry's folder (never meta.json, never a path)."""
    return (
        isinstance(name, str)
        and name not in {"", ".", "..", _META}
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _check_shape(meta: object) -> None:
    """Raise ValueError unless ``meta`` has the shape ``put`` writes: anyone who can write
    the cache can also write a matching digest, but never make a record name a file
    outside its entry."""
    if not (
        isinstance(meta, dict)
        and isinstance(meta.get("record"), dict)
        and isinstance(meta.get("files"), dict)
        and isinstance(meta.get("digest"), str)
        and all(_is_file_name(n) and isinstance(d, str) for n, d in meta["files"].items())
    ):
        raise ValueError("meta.json does not have the shape of a cache entry")


def record_digest(record: Mapping[str, Any], files: Mapping[str, str]) -> str:
    """sha256 of an entry's record and file hashes, as canonical JSON."""
    text = json.dumps(
        {"record": record, "files": files}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(
    *,
    stage: str,
    backend: str,
    input_sha256: str,
    params: Mapping[str, Any],
    asset_sha256: Mapping[str, Any],
    code: str,
    version: str = __version__,
) -> str:
    """Stable key: canonical JSON of all determinants, hashed. ``code``: the digest of a
    ``CodeStamp`` of the modules that compute the entry."""
    payload = {
        "code": code,
        "stage": stage,
        "backend": backend,
        "input": input_sha256,
        "params": params,
        "assets": asset_sha256,
        "version": version,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CacheEntry:
    key: str
    record: dict[str, Any]
    files: dict[str, bytes]


@dataclass
class CacheStats:
    root: Path
    entries: int
    bytes: int
    by_stage: dict[str, int]
    unreachable: int = 0  # entries whose code or libraries are no longer those installed
    # What each stage's entries take on the disk (allocated blocks of their files and
    # folders: a 600-byte vector in its own folder takes 12 kB), hard links counted once.
    disk_by_stage: dict[str, int] = field(default_factory=dict)


class Cache:
    """Stage outputs on disk; ``enabled=False`` (``--no-cache``) reads and writes nothing."""

    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = (root or cache_root()) / "intermediates"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self.write_failures = 0  # puts that the disk refused (read-only, full, ...)

    def counts(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "write_failures": self.write_failures}

    def add_counts(self, counts: Mapping[str, int]) -> None:
        """Add what a worker process counted on its own copy of this cache."""
        self.hits += counts.get("hits", 0)
        self.misses += counts.get("misses", 0)
        self.write_failures += counts.get("write_failures", 0)

    def decoded_sha256(self, file_sha256: str, decoder: str) -> str | None:
        """The sha256 of the pixels ``decoder`` made of the file with ``file_sha256``, as
        remembered (``None``: never decoded, or the cache is off). Not a stage result, so
        not counted as a hit or a miss."""
        counts = (self.hits, self.misses)
        entry = self.get(DECODED, _decoded_key(file_sha256, decoder))
        self.hits, self.misses = counts
        return None if entry is None else str(entry.record.get("pixels_sha256"))

    def remember_decoded(self, file_sha256: str, decoder: str, pixels_sha256: str) -> None:
        """Remember what an image file decodes to, so that a warm run need not decode it
        again to find its key (the mask stage keys a crop by its pixels)."""
        self.put(
            DECODED,
            _decoded_key(file_sha256, decoder),
            {"pixels_sha256": pixels_sha256},
            code=_decoder_code(),
        )

    def _dir(self, stage: str, key: str) -> Path:
        return Path(self._folder(stage, key))

    def _folder(self, stage: str, key: str) -> str:
        """An entry's folder as a plain string: a warm study reads ~90,000 entries, and
        building Paths for them cost seconds."""
        return os.path.join(os.fspath(self.root), stage, key[:2], key)

    def file_path(self, stage: str, key: str, name: str) -> Path | None:
        """Where an entry keeps one of its files, for a run folder to hard-link (None: the
        cache is off, or no such file lies inside the cache). Not verified here: whoever
        links it first checks that it holds the bytes it means."""
        if not self.enabled or not key or not _is_file_name(name):
            return None
        path = self._dir(stage, key) / name
        try:
            if not path.is_file() or not path.resolve().is_relative_to(self.root.resolve()):
                return None
        except (OSError, RuntimeError):
            return None
        return path

    def get(self, stage: str, key: str) -> CacheEntry | None:
        if not self.enabled:
            return None
        folder = self._folder(stage, key)
        try:
            meta = json.loads(_read(os.path.join(folder, _META)))
            _check_shape(meta)
            # JSON-valid damage to the record itself: its own digest catches it.
            if meta["digest"] != record_digest(meta["record"], meta["files"]):
                raise ValueError("meta.json does not match its digest")
            files = {}
            for name, digest in meta["files"].items():
                data = _read(os.path.join(folder, name))
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ValueError(f"{name} does not match its hash")
                files[name] = data
            record = meta["record"]
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            self.misses += 1
            shutil.rmtree(folder, ignore_errors=True)  # corrupt or partial: rebuild it
            return None
        self.hits += 1
        return CacheEntry(key=key, record=record, files=files)

    def put(
        self,
        stage: str,
        key: str,
        record: Mapping[str, Any],
        files: Mapping[str, bytes] | None = None,
        *,
        code: CodeStamp,
    ) -> None:
        """Store an entry; ``code`` is the stamp of what computed it (in its key too)."""
        if not self.enabled:
            return
        files = dict(files or {})
        for name in files:
            if not _is_file_name(name):
                raise ValueError(f"bad cache file name {name!r}")
        final = self._dir(stage, key)
        tmp: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
            digests = {}
            for name, data in files.items():
                (tmp / name).write_bytes(data)
                digests[name] = hashlib.sha256(data).hexdigest()
            # A round trip through JSON first, so the digest covers what a reader will see.
            saved = json.loads(json.dumps(dict(record), sort_keys=True, default=str))
            meta = {
                "record": saved,
                "files": digests,
                "digest": record_digest(saved, digests),
                "created": time.time(),
                "code": code.as_record(),
            }
            (tmp / _META).write_text(json.dumps(meta, sort_keys=True))
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except OSError as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if final.is_dir() and (final / _META).exists():
                return  # another process won the race: the same key means the same content
            self._write_failed(exc)
        except BaseException:  # Ctrl-C mid-write: leave no half-made folder behind
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_failed(self, exc: OSError) -> None:
        """A cache write failing must not fail the run; say so once, then go on."""
        self.write_failures += 1
        if self.write_failures == 1:
            reason = exc.strerror or type(exc).__name__
            warnings.warn(
                f"cache {self.root} cannot be written ({reason}); this run goes on without "
                "caching new results (entries already there are still read)",
                CacheWarning,
                stacklevel=3,
            )

    def _entry_folders(self) -> list[tuple[str, Path]]:
        """``(stage folder name, entry folder)`` of every whole entry (never a write cut
        short by a crash, never a link out of the cache)."""
        found = []
        if self.root.is_dir():
            for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
                if stage_dir.is_symlink():
                    continue
                for meta in sorted(stage_dir.glob(f"*/*/{_META}")):
                    if not meta.parent.name.startswith(".tmp-"):
                        found.append((stage_dir.name, meta.parent))
        return found

    @staticmethod
    def _is_reachable(stage: str, folder: Path) -> bool:
        """Whether a key of the installed code can reach this entry: its stage is one of
        ours and its code stamp matches the installed sources and libraries (an entry from
        before stamps, or with an unreadable meta, cannot be reached)."""
        if stage not in STAGES:
            return False
        try:
            meta = json.loads((folder / _META).read_text())
        except (OSError, ValueError, RecursionError):
            return False
        return isinstance(meta, dict) and CodeStamp.is_current(meta.get("code"))

    def stats(self) -> CacheStats:
        entries, size, by_stage, unreachable = 0, 0, {}, 0
        disk: dict[str, int] = {}
        seen: set[tuple[int, int]] = set()  # (device, inode): a hard link counts once

        def allocated(info: os.stat_result) -> int:
            if (info.st_dev, info.st_ino) in seen:
                return 0
            seen.add((info.st_dev, info.st_ino))
            return info.st_blocks * 512

        if self.root.exists():
            for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
                by_stage[stage_dir.name] = disk[stage_dir.name] = 0
        for stage, folder in self._entry_folders():
            by_stage[stage] = by_stage.get(stage, 0) + 1
            entries += 1
            files = [f.lstat() for f in folder.iterdir() if f.is_file()]
            size += sum(info.st_size for info in files)
            used = allocated(folder.lstat()) + sum(allocated(info) for info in files)
            disk[stage] = disk.get(stage, 0) + used
            unreachable += not self._is_reachable(stage, folder)
        return CacheStats(
            root=self.root,
            entries=entries,
            bytes=size,
            by_stage=by_stage,
            unreachable=unreachable,
            disk_by_stage=disk,
        )

    def prune(self) -> int:
        """Remove every entry no key of the installed code can reach; returns how many."""
        removed = 0
        for stage, folder in self._entry_folders():
            if not self._is_reachable(stage, folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def clear(self, stage: str | None = None) -> int:
        """Remove all entries (or one stage's); returns how many were removed.

        Only the cache's own stage folders are ever deleted: ``stage`` must be one of
        ``STAGES``, so no name (``../x``, ``/abs``) can reach outside the cache root.
        """
        if stage is not None and stage not in STAGES:
            raise DmbenchError(f"unknown cache stage {stage!r}; choose one of: {', '.join(STAGES)}")
        targets = [self.root / name for name in ((stage,) if stage else STAGES)]
        removed = 0
        for target in targets:
            if target.is_symlink() or not target.is_dir():
                continue  # never follow a link out of the cache
            removed += sum(1 for m in target.rglob(_META) if not m.parent.name.startswith(".tmp-"))
            shutil.rmtree(target)
        return removed
