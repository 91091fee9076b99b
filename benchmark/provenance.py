"""What computed a result: the source of dmbench's own code and the libraries it calls.

A cache key must change when the code that computes an entry changes, or a researcher who
edits a backend and reruns gets the old numbers back. ``CodeStamp.of(modules)`` follows
the imports of the given ``benchmark`` modules (statically, through the AST: lazy imports
inside functions count too, and nothing is imported) to every ``benchmark`` module they
reach and every third-party library they import, and hashes

* the source of each reached module and of the packages' ``__init__`` files above it;
* the installed version of each third-party distribution they import (``cv2`` names both
  OpenCV wheels, ``eos`` names eos-py, ...);
* the sources of the upstream stages' packages, so that an edit to prep moves the keys of
  mask and recognize too (their inputs came from it).

The stamp lists what it hashed, so ``dmbench cache prune`` can tell later whether the code
and libraries behind an entry are still those installed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "benchmark"
# Libraries that schedule, report or fetch but never compute a number: their versions are
# not part of a key (a run on Ray and a local run share their cache).
NOT_COMPUTING = frozenset({"ray", "tqdm", "platformdirs", "pooch"})
_ROOT = Path(__file__).resolve().parent


def module_path(name: str, root: Path | None = None) -> Path | None:
    """The source file of ``benchmark`` module ``name`` (a package: its ``__init__.py``)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = (root or _ROOT).joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.cache
def _imports_of(name: str, root: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(benchmark modules, third-party top-level modules) that module ``name`` imports."""
    path = module_path(name, root)
    if path is None:
        return frozenset(), frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    ours: set[str] = set()
    theirs: set[str] = set()

    def add(target: str) -> None:
        top = target.split(".")[0]
        if top == PACKAGE:
            if module_path(target, root) is not None:
                ours.add(target)
        elif top not in sys.stdlib_module_names and top not in NOT_COMPUTING | {"__future__"}:
            theirs.add(top)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            add(base)
            for alias in node.names:  # `from benchmark.x import y`: y may be a module
                if base.split(".")[0] == PACKAGE and module_path(f"{base}.{alias.name}", root):
                    ours.add(f"{base}.{alias.name}")
    return frozenset(ours), frozenset(theirs)


def closure(modules: Iterable[str], root: Path | None = None) -> tuple[list[str], list[str]]:
    """Every ``benchmark`` module the given ones reach by import (with the packages above
    them), and every third-party top-level module among their imports, both sorted."""
    root = root or _ROOT
    seen: set[str] = set()
    libraries: set[str] = set()
    todo = [m for m in modules if module_path(m, root) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        ours, theirs = _imports_of(name, root)
        libraries |= theirs
        todo += [m for m in (*ours, *_parents(name)) if m not in seen]
    return sorted(seen), sorted(libraries)


def package_modules(package: str, root: Path | None = None) -> list[str]:
    """Every module of a ``benchmark`` package (``benchmark.pipeline.prep``), sorted."""
    path = module_path(package, root)
    if path is None or path.name != "__init__.py":
        return []
    folder = path.parent
    names = []
    for file in sorted(folder.rglob("*.py")):
        relative = file.relative_to(folder).with_suffix("").parts
        if relative[-1] == "__init__":
            relative = relative[:-1]
        names.append(".".join([package, *relative]))
    return names


@functools.cache
def _distributions() -> dict[str, tuple[str, ...]]:
    return {
        k: tuple(sorted(set(v))) for k, v in importlib.metadata.packages_distributions().items()
    }


def library_versions(top_level: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` of the installed distributions that provide the given
    top-level modules (``cv2`` → both OpenCV wheels); one not installed is ``absent:NAME``."""
    versions: dict[str, str] = {}
    for module in top_level:
        dists = _distributions().get(module)
        if not dists:
            versions[f"absent:{module}"] = "absent"
            continue
        for dist in dists:
            versions[dist] = _version(dist)
    return dict(sorted(versions.items()))


@functools.cache
def _version(dist: str) -> str:
    """A distribution's version, read once per process (each read parses its METADATA)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _source_digest(modules: Iterable[str], root: Path) -> dict[str, str]:
    digests = {}
    for name in modules:
        path = module_path(name, root)
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path else "missing"
    return digests


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CodeStamp:
    """What an entry was computed by: ``modules`` (the roots followed), ``upstream`` (the
    packages of the stages before it) and the digest of their sources and libraries."""

    modules: tuple[str, ...]
    upstream: tuple[str, ...]
    digest: str

    @classmethod
    def of(
        cls, modules: Iterable[str], upstream: Iterable[str] = (), root: Path | None = None
    ) -> CodeStamp:
        modules, upstream = tuple(sorted(set(modules))), tuple(sorted(set(upstream)))
        return cls(modules, upstream, _stamp_digest(modules, upstream, root or _ROOT))

    def as_record(self) -> dict[str, Any]:
        return {
            "modules": list(self.modules),
            "upstream": list(self.upstream),
            "digest": self.digest,
        }

    @classmethod
    def is_current(cls, record: object, root: Path | None = None) -> bool:
        """Whether a stored stamp still matches the installed code and libraries."""
        if not isinstance(record, dict):
            return False
        modules, upstream = record.get("modules"), record.get("upstream")
        if not (isinstance(modules, list) and isinstance(upstream, list)):
            return False
        if not all(isinstance(m, str) for m in (*modules, *upstream)):
            return False
        now = _stamp_digest(tuple(sorted(modules)), tuple(sorted(upstream)), root or _ROOT)
        return record.get("digest") == now


@functools.cache
def _stamp_digest(modules: tuple[str, ...], upstream: tuple[str, ...], root: Path) -> str:
    reached, libraries = closure(modules, root)
    upstream_modules = sorted({m for p in upstream for m in package_modules(p, root)})
    return _digest(
        {
            "sources": _source_digest(reached, root),
            "libraries": library_versions(libraries),
            "upstream": _source_digest(upstream_modules, root),
        }
    )


def forget() -> None:
    """Drop what was read from disk (tests that edit a module's source call this)."""
    _imports_of.cache_clear()
    _version.cache_clear()
    _stamp_digest.cache_clear()
