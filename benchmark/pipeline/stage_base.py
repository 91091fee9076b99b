"""What the three stages (prep, mask, recognize) share, written once.

* the backends in play, by role, and their public asset hashes (the manifest files they
  load and any file they derived from them), recorded and keyed;
* construction from registry names;
* the cache key: stage, backends, input, parameters, assets and the code stamp (the
  sources of the stage's module, its backends' modules and what they import, the
  packages of the stages before it, the versions of the libraries they call);
* a run's counts per status and its reasons, normalised one way (``reason_class``);
* one atomic ``run.json`` writer, so a killed run leaves the old record or the new one.
"""

from __future__ import annotations

import importlib
import json
import platform
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from benchmark import __version__
from benchmark.assets import AssetStore
from benchmark.cache import Cache, cache_key
from benchmark.device import DevicePlan
from benchmark.imageio import write_bytes_atomic
from benchmark.pipeline.backend import Backend, load_helpers
from benchmark.pipeline.registry import Registry
from benchmark.provenance import CodeStamp


def create_backends(
    chosen: Mapping[str, tuple[Registry, str | None]],
    store: AssetStore,
    device: str | DevicePlan,
    **options: Any,
) -> dict[str, Any]:
    """``{role: backend}`` from ``{role: (registry, name or None for the default)}``."""
    return {
        role: registry.create(name, store=store, device=device, **options)
        for role, (registry, name) in chosen.items()
    }


def asset_hashes(store: AssetStore, backends: Iterable[Backend]) -> dict[str, Any]:
    """sha256 of every manifest file the backends load (``{asset: {file: sha256}}``), and of
    every file a backend derived from them (``{"backend:file": sha256}``)."""
    backends = list(backends)
    names = dict.fromkeys(asset for backend in backends for asset in backend.assets)
    hashes: dict[str, Any] = {name: store.sha256_of(name) for name in names}
    for backend in backends:
        hashes |= {f"{backend.name}:{k}": v for k, v in backend.derived_sha256().items()}
    return hashes


@dataclass(frozen=True)
class StageRecipe:
    """How to build a stage again in another process: its class, its backends' names and
    what ``from_names`` took. Workers build their stage from it once (models load once)."""

    stage_class: str  # "module:Class"
    names: dict[str, str]  # role → backend name, as from_names takes them
    params: Any
    store: AssetStore
    device: str | DevicePlan
    cache_root: Path | None  # None: the cache is off
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Stage:
        module, _, qualname = self.stage_class.partition(":")
        cls = getattr(importlib.import_module(module), qualname)
        cache = Cache(self.cache_root) if self.cache_root else Cache(enabled=False)
        return cls.from_names(
            **self.names,
            store=self.store,
            device=self.device,
            params=self.params,
            cache=cache,
            **self.extra,
        )


class Stage:
    """One stage's backends (by role), parameters, cache and asset hashes."""

    name: ClassVar[str]  # "prep" | "mask" | "recognize": the cache folder, run.json's stage
    # The packages of the stages whose outputs this one reads: an edit there moves our keys.
    upstream: ClassVar[tuple[str, ...]] = ()
    recipe: StageRecipe | None = None  # set by from_names; None: built from objects

    def __init__(
        self,
        backends: Mapping[str, Backend],
        params: Any,
        cache: Cache | None,
        store: AssetStore | None,
    ) -> None:
        self.backends = dict(backends)
        self.params = params
        self.cache = cache or Cache(enabled=False)
        self.asset_sha256 = asset_hashes(store or AssetStore(), self.backends.values())
        self.backend = "+".join(b.name for b in self.backends.values())  # names the outputs
        self.code = CodeStamp.of(
            [type(self).__module__, *(type(b).__module__ for b in self.backends.values())],
            self.upstream,
        )

    def load_models(self) -> None:
        """Build every backend's models, once: called before the first miss is computed,
        so a warm run builds none and a model that cannot load stops the run."""
        for backend in self.backends.values():
            backend.load()
        load_helpers(self)  # a stage's own (the utility stage's mesh and landmarks)

    def remember(
        self,
        store: AssetStore,
        device: str | DevicePlan,
        names: dict[str, str] | None = None,
        **extra: Any,
    ) -> Self:
        """Record how ``from_names`` built this stage, so that a worker process can build
        it too: its keywords are the roles' backend names unless ``names`` says otherwise."""
        self.recipe = StageRecipe(
            f"{type(self).__module__}:{type(self).__qualname__}",
            names or {role: backend.name for role, backend in self.backends.items()},
            self.params,
            store,
            device,
            self.cache.root.parent if self.cache.enabled else None,
            dict(extra),
        )
        return self

    def key_params(self) -> dict[str, Any]:
        """The parameters that change a result (the cache key's ``params``)."""
        return asdict(self.params)

    def key(self, input_sha256: str, **more_params: Any) -> str:
        return cache_key(
            stage=self.name,
            backend=self.backend,
            input_sha256=input_sha256,
            params=self.key_params() | more_params,
            asset_sha256=self.asset_sha256,
            code=self.code.digest,
        )

    def record(self) -> dict[str, Any]:
        """What every stage's run.json says about the stage itself."""
        return {
            "stage": self.name,
            "dmbench_version": __version__,
            "backend": self.backend,
            "backends": {role: b.name for role, b in self.backends.items()},
            "params": asdict(self.params) if is_dataclass(self.params) else self.params,
            "assets": self.asset_sha256,
            "code": self.code.as_record(),
            "cache": {
                "hits": self.cache.hits,
                "misses": self.cache.misses,
                "enabled": self.cache.enabled,
            },
            "platform": platform_facts(),
        }


def platform_facts() -> dict[str, str]:
    import cv2

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


_PATH_FIRST = re.compile(r"^[^\s:]*[/\\][^:]*: ")  # "Name/0001.jpg: why" names its file
_DETAIL = re.compile(r"\([^()]*\)")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def reason_class(reason: str) -> str:
    """A reason with what differs from item to item taken out, so that reasons count up:
    a leading file name goes, details in parentheses become ``(…)``, numbers ``N``."""
    return _NUMBER.sub("N", _DETAIL.sub("(…)", _PATH_FIRST.sub("", reason)))


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    """``{status: count}`` in order of first appearance."""
    return dict(Counter(statuses))


def count_reasons(reasons: Iterable[str]) -> dict[str, int]:
    """``{reason class: count}``, most frequent first (ties in order of appearance)."""
    counted = Counter(reason_class(reason) for reason in reasons)
    return dict(sorted(counted.items(), key=lambda kv: -kv[1]))


def write_run_record(path: Path, stage: Stage, **run: Any) -> None:
    """``run.json``: the stage's record and the run's facts, written atomically."""
    info = stage.record() | run
    text = json.dumps(info, indent=2, default=str, allow_nan=False)  # NaN is not JSON
    write_bytes_atomic(Path(path), text.encode())


class RunOutcomes:
    """Counts and reasons of a finished run, from each item's (status, reason, identity)."""

    success: ClassVar[str]  # the status of an item that went through ("kept", "masked")

    def outcomes(self) -> Iterable[tuple[str, str, str]]:
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        return count_statuses(status for status, _, _ in self.outcomes())

    def reasons(self, identities: set[str] | None = None) -> dict[str, int]:
        """Why items did not go through, in reason classes, over every item or over the
        items of ``identities``."""
        return count_reasons(
            reason
            for status, reason, identity in self.outcomes()
            if status != self.success and (identities is None or identity in identities)
        )
