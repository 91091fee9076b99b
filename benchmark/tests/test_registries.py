"""Every registry, one contract: each backend is found by name without importing anything
until it is asked for, declares assets that exist in the manifest, and either loads or
names the extra to install. Unknown names get suggestions."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.assets import load_manifest
from benchmark.errors import MissingDependencyError, UsageError
from benchmark.pipeline import all_registries
from benchmark.pipeline.backend import Backend
from benchmark.pipeline.mask.types import CUTS, FaceMesh, MaskFailure, Reconstructor
from benchmark.pipeline.recognize.types import EMBEDDERS, Embedder
from benchmark.pipeline.registry import BackendPath, Registry
from benchmark.tests.fresh_interpreter import imported_by

REGISTRIES = all_registries()
CASES = [(r, name) for r in REGISTRIES for name in r.names()]


@pytest.mark.parametrize(("registry", "name"), CASES, ids=[f"{r.role}:{n}" for r, n in CASES])
def test_every_backend_loads_or_names_its_extra(registry: Registry, name: str) -> None:
    path = registry.path(name)
    assert path is not None, "our backends are in the map"
    try:
        cls = registry.cls(name)
    except MissingDependencyError as exc:
        assert path.extra and f"dmbench[{path.extra}]" in str(exc), str(exc)
        return
    assert cls.name == name and f"{cls.__module__}:{cls.__qualname__}" == path.target
    manifest = load_manifest()
    for asset in cls.assets:
        assert asset in manifest, f"{registry.role} '{name}' needs unknown asset '{asset}'"
    assert registry.default in registry.names()


def test_an_unknown_name_gets_suggestions() -> None:
    with pytest.raises(UsageError, match=r"did you mean 'mediapipe-forehead'"):
        CUTS.cls("mediapipe-forhead")
    with pytest.raises(UsageError, match="choose one of: "):
        EMBEDDERS.cls("arcface")


def test_a_missing_optional_package_names_the_extra(monkeypatch) -> None:
    registry: Registry = Registry(
        "test.role",
        {"needs-it": BackendPath("not_installed_pkg_xyz.models:Model", "paper")},
        protocol=Backend,
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'dmbench\[paper\]'"):
        registry.cls("needs-it")


def test_a_map_entry_must_name_the_class_that_registers() -> None:
    registry: Registry = Registry("test.role", {"a": "some.module:Right"}, protocol=Backend)

    class Wrong(Backend):
        pass

    with pytest.raises(ValueError, match="in the map"):
        registry.register("a")(Wrong)


def test_a_backend_must_subclass_its_roles_protocol() -> None:
    """A class that only looks like a backend is refused when it registers, naming the
    protocol whose optional capabilities (and their defaults) it would miss."""
    registry: Registry = Registry("test.reconstruct", protocol=Reconstructor)

    class DuckTyped:
        assets = ()

        def reconstruct(self, crop):
            raise MaskFailure("no face")

    with pytest.raises(TypeError, match=r"must subclass benchmark\.pipeline\.mask\.types\."):
        registry.register("duck")(DuckTyped)
    assert "duck" not in registry.names()


def test_optional_capabilities_are_declared_with_defaults() -> None:
    """A minimal plug-in gets every optional capability from its protocol: one-by-one
    batching (a crop's MaskFailure in its place), no settings, no derived files, GPU
    allowed, no alignment on the photo (asking for it is an error, never a guess)."""
    registry: Registry = Registry("test.reconstruct", protocol=Reconstructor)

    @registry.register("minimal")
    class Minimal(Reconstructor):
        def reconstruct(self, crop: np.ndarray) -> FaceMesh:
            if not crop.any():
                raise MaskFailure("no face on a black crop")
            vertices = np.array([[10, 10, 0], [100, 10, 0], [10, 100, 0]], float)
            return FaceMesh(vertices, np.array([[0, 1, 2]]))

    backend = registry.cls("minimal")()
    meshes = backend.reconstruct_batch([np.ones((8, 8, 3), np.uint8), np.zeros((8, 8, 3))])
    assert isinstance(meshes[0], FaceMesh) and isinstance(meshes[1], MaskFailure)
    assert backend.settings() == {} and backend.derived_sha256() == {}
    assert backend.cpu_only is False and backend.name == "minimal"

    class Bare(Embedder):
        metric, dim = "cosine", 2

        def embed(self, images):
            return []

    assert Bare.aligns_on_photo is False
    with pytest.raises(NotImplementedError, match="cannot align"):
        Bare().embed_aligned([], [])
    assert {cls.aligns_on_photo for cls in map(EMBEDDERS.cls, ("sface", "dlib-resnet"))} == {True}


def test_help_and_names_import_no_model_library() -> None:
    """`dmbench --help` and `dmbench list backends` read the maps: no MediaPipe,
    TensorFlow, torch, dlib or onnxruntime is imported."""
    code = (
        "import contextlib, io\n"
        "from benchmark.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['reproduce', '--help'])\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['mask', '--help'])\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['list', 'backends'])\n"
    )
    heavy = ("mediapipe", "tensorflow", "torch", "dlib", "onnxruntime", "eos")
    assert imported_by(code, heavy, timeout=120) == []
