"""The import graph as the design card draws it: stages are packages, no cycles, the
pipeline never reaches up into the study, and a backend knows only its stage's types.

The contracts live in pyproject.toml (``[tool.importlinter]``); this runs them, so CI
fails on a new cycle or a backend that imports a runner.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.settings import REPO_ROOT


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).exists():
        pytest.fail("lint-imports is missing: pip install 'dmbench[test]' (import-linter)")
    done = subprocess.run(
        [lint, "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout, done.stdout[-2000:]


def test_stages_are_packages_with_types_and_a_runner() -> None:
    pipeline = REPO_ROOT / "benchmark" / "pipeline"
    for stage in ("prep", "mask", "recognize"):
        for part in ("__init__.py", "types.py", "stage.py"):
            assert (pipeline / stage / part).is_file(), f"{stage}/{part}"
    flat = sorted(p.name for p in pipeline.glob("*.py") if p.name != "__init__.py")
    assert flat == ["registry.py"], f"backends belong in a stage package: {flat}"
    assert not list(pipeline.rglob("*standin*")), "stand-ins live in benchmark/testing/"
