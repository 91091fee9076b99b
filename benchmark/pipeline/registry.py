"""Backends found by name: each stage role has one registry.

A registry is a map from a backend's name to where its class lives (``"module:Class"``)
and the optional extra it needs, written in the stage's ``types.py``. Nothing is imported
until a backend is asked for, so ``dmbench --help`` and ``dmbench list backends`` load no
model library; a backend whose optional package is missing says which extra to install;
an unknown name gets close-name suggestions.

A backend class subclasses its role's protocol (``benchmark.pipeline.backend``: its
``name``, the ``assets`` it needs as manifest names, its optional capabilities) and has a
constructor ``(store, device)``. A plug-in registers a class it has already imported with
``@REGISTRY.register(name)``; our own backends carry the same decorator, which the map
checks (``test_registries.py``: every map entry names the class that registers under it).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from benchmark.errors import MissingDependencyError, UsageError
from benchmark.pipeline.backend import implements

T = TypeVar("T")


@dataclass(frozen=True)
class BackendPath:
    """Where a backend lives, and the ``dmbench[extra]`` that installs what it imports."""

    target: str  # "package.module:Class"
    extra: str = ""

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def qualname(self) -> str:
        return self.target.partition(":")[2]


class Registry(Generic[T]):
    def __init__(
        self,
        role: str,
        backends: Mapping[str, str | BackendPath] | None = None,
        default: str | None = None,
        *,
        protocol: type,
    ) -> None:
        self.role = role
        self.protocol = protocol
        self._paths: dict[str, BackendPath] = {
            name: path if isinstance(path, BackendPath) else BackendPath(path)
            for name, path in (backends or {}).items()
        }
        self._classes: dict[str, type[T]] = {}
        if default is not None and default not in self._paths:
            raise ValueError(f"{role}: default backend '{default}' is not in the registry")
        self.default = default

    def register(self, name: str, *, default: bool = False) -> Callable[[type[T]], type[T]]:
        """Decorator: a class registers under ``name`` (a plug-in, or a backend of ours
        that the map already names: it must be the class the map names)."""

        def decorate(cls: type[T]) -> type[T]:
            self._check_protocol(name, cls)
            path = self._paths.get(name)
            target = f"{cls.__module__}:{cls.__qualname__}"
            if path is not None and path.target != target:
                raise ValueError(f"{self.role}: '{name}' is {path.target} in the map, not {target}")
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.role}: backend '{name}' registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            if default:
                self.default = name
            return cls

        return decorate

    def names(self) -> list[str]:
        return sorted(set(self._paths) | set(self._classes))

    def path(self, name: str) -> BackendPath | None:
        """Where a mapped backend lives (None for a plug-in registered by class)."""
        return self._paths.get(name)

    def cls(self, name: str | None) -> type[T]:
        """The backend's class, imported now; an unknown name or a missing optional
        package is one clear error."""
        name = name or self.default
        if name in self._classes:
            return self._classes[name]
        if name not in self._paths:
            close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise UsageError(
                f"unknown {self.role} backend '{name}'{hint}; choose one of: "
                f"{', '.join(self.names())}"
            )
        path = self._paths[name]
        try:
            module = importlib.import_module(path.module)
        except ImportError as exc:
            if exc.name is None or exc.name.split(".")[0] == "benchmark":
                raise  # our own module is missing: a bug, not an extra to install
            how = f"pip install 'dmbench[{path.extra}]'" if path.extra else "see README"
            raise MissingDependencyError(
                f"the {self.role} backend '{name}' needs the Python package '{exc.name}', "
                f"which is not installed: {how}"
            ) from exc
        cls = getattr(module, path.qualname)
        self._check_protocol(name, cls)
        cls.name = name  # type: ignore[attr-defined]
        self._classes[name] = cls
        return cls

    def _check_protocol(self, name: str, cls: type) -> None:
        if not implements(cls, self.protocol):
            raise TypeError(
                f"{self.role} backend '{name}' ({cls.__module__}.{cls.__qualname__}) must "
                f"subclass {self.protocol.__module__}.{self.protocol.__qualname__}"
            )

    def create(self, name: str | None, **kwargs: Any) -> T:
        """An instance; a ``DevicePlan`` given as ``device`` is resolved for this role."""
        if "device" in kwargs:
            kwargs["device"] = self.device_of(name, kwargs["device"])
        return self.cls(name)(**kwargs)

    def device_of(self, name: str | None, device: Any) -> str:
        """The device ``create`` would give this backend (for the record of a run)."""
        from benchmark.device import DevicePlan

        if isinstance(device, DevicePlan):
            return device.for_backend(self.role.split(".")[-1], self.cls(name))
        return str(device)
