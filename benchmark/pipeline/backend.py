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

    def load(self) -> None:
        """Build the models: import their libraries, read their weights. A stage calls it
        before it computes its first miss, so that a run whose every result is cached
        loads nothing (and a model that cannot load stops the run, not one item). By
        default it loads the helpers the backend holds (a shared face mesh, dlib's
        landmarks); a backend with models of its own subclasses ``LoadsOnFirstUse``."""
        load_helpers(self)


def load_helpers(owner: object) -> None:
    """Load every ``LoadsOnFirstUse`` that ``owner`` holds as an attribute."""
    for helper in list(vars(owner).values()):
        if isinstance(helper, LoadsOnFirstUse):
            helper.load()


class LoadsOnFirstUse:
    """Models built once, on first use, not at construction: ``load_models`` sets the
    attributes named in ``models``, and reading any of them first calls it (so a backend
    used directly, without its stage, works the same). Construction does what is cheap
    and must fail early: checking the device, finding and verifying the asset files."""

    models: ClassVar[tuple[str, ...]] = ()

    def load_models(self) -> None:
        raise NotImplementedError

    def load(self) -> None:
        if not self.__dict__.get("_models_loaded"):
            self.__dict__["_models_loaded"] = True  # load_models may read what it has set
            try:
                self.load_models()
            except BaseException:
                self.__dict__["_models_loaded"] = False
                raise
        load_helpers(self)

    def __getattr__(self, name: str) -> Any:  # only for attributes not (yet) set
        if name in type(self).models and not self.__dict__.get("_models_loaded"):
            self.load()
            return object.__getattribute__(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def implements(backend: object, protocol: type) -> bool:
    """Whether a backend (class or instance) subclasses ``protocol``: the explicit answer
    that ``isinstance`` cannot give for a non-runtime protocol."""
    cls = backend if isinstance(backend, type) else type(backend)
    return protocol in cls.__mro__
