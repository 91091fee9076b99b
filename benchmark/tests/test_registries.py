"""Every registry, one contract: each backend is found by name without importing anything
until it is asked for, declares assets that exist in the manifest, and either loads or
names the extra to install. Unknown names get suggestions."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmark.assets import load_manifest
from benchmark.errors import MissingDependencyError, UsageError
from benchmark.pipeline import all_registries
from benchmark.pipeline.mask.types import CUTS
from benchmark.pipeline.recognize.types import EMBEDDERS
from benchmark.pipeline.registry import BackendPath, Registry

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
        "test.role", {"needs-it": BackendPath("not_installed_pkg_xyz.models:Model", "paper")}
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'dmbench\[paper\]'"):
        registry.cls("needs-it")


def test_a_map_entry_must_name_the_class_that_registers() -> None:
    registry: Registry = Registry("test.role", {"a": "some.module:Right"})

    class Wrong:
        pass

    with pytest.raises(ValueError, match="in the map"):
        registry.register("a")(Wrong)


def test_help_and_names_import_no_model_library() -> None:
    """`dmbench --help` and `dmbench list backends` read the maps: no MediaPipe,
    TensorFlow, torch, dlib or onnxruntime is imported."""
    code = (
        "import sys, contextlib, io\n"
        "from benchmark.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['reproduce', '--help'])\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['mask', '--help'])\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['list', 'backends'])\n"
        "heavy = ('mediapipe', 'tensorflow', 'torch', 'dlib', 'onnxruntime', 'eos')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
