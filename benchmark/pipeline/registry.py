"""Backends found by name: each stage role has one registry.

A backend is a class with a ``name``, the ``assets`` it needs (manifest names) and a
constructor ``(store, device)``. Registering is one decorator, so adding an
anonymizer or a detector is one file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from benchmark.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, role: str) -> None:
        self.role = role
        self._classes: dict[str, type[T]] = {}
        self.default: str | None = None

    def register(self, name: str, *, default: bool = False) -> Callable[[type[T]], type[T]]:
        def decorate(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.role}: backend '{name}' registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            if default:
                self.default = name
            return cls

        return decorate

    def names(self) -> list[str]:
        return sorted(self._classes)

    def cls(self, name: str | None) -> type[T]:
        name = name or self.default
        if name not in self._classes:
            raise UsageError(
                f"unknown {self.role} backend '{name}'; choose one of: {', '.join(self.names())}"
            )
        return self._classes[name]

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


def import_backends(*modules: str) -> None:
    """Import the ``benchmark.pipeline`` modules that register backends.

    A module whose optional third-party dependency is missing is skipped (its backends
    are then simply not offered); a missing module of our own still raises.
    """
    for module in modules:
        name = f"benchmark.pipeline.{module}"
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if name in str(exc):
                raise
