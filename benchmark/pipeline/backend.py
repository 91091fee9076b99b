"""What every backend of every role declares, with the defaults of its optional parts.

A backend subclasses its role's protocol (``FaceDetector``, ``Reconstructor``,
``Embedder``, ...), each of which extends ``Backend``. The optional capabilities live
here and in those protocols with working defaults, so a stage asks a backend what it can
do and never probes it with ``hasattr``: a backend that batches overrides
``reconstruct_batch``, one that runs only on the CPU says ``cpu_only = True``, one that
derives a file from its assets (a converted model) returns its hash from
``derived_sha256``. The registry refuses a class that does not subclass its role's
protocol, naming the protocol.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol


class Backend(Protocol):
    name: ClassVar[str]  # set by the registry: the name the backend is found by
    assets: ClassVar[tuple[str, ...]] = ()  # manifest names of the files it loads
    # No GPU code: a "cuda" device plan runs it on the CPU (a loud error only when the
    # user names this role's device explicitly).
    cpu_only: ClassVar[bool] = False

    def settings(self) -> dict[str, Any]:
        """Stated constants that change the output (a control's grey, a cut's geometry):
        recorded with every result and part of the cache key. None by default."""
        return {}

    def derived_sha256(self) -> dict[str, str]:
        """sha256 of files the backend made from its assets (a model converted once), by
        file name: they key the cache beside the manifest assets. None by default."""
        return {}


def implements(backend: object, protocol: type) -> bool:
    """Whether a backend (class or instance) subclasses ``protocol``: the explicit answer
    that ``isinstance`` cannot give for a non-runtime protocol."""
    cls = backend if isinstance(backend, type) else type(backend)
    return protocol in cls.__mro__
