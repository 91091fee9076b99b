"""The import graph as the design card draws it: stages are packages, no cycles, the
pipeline never reaches up into the study, and a backend knows only its stage's types.

The contracts live in pyproject.toml (``[tool.importlinter]``); this runs them, so CI
fails on a new cycle or a backend that imports a runner.
"""

from __future__ import annotations

import re
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
    shared = [
        "backend.py",
        "registry.py",
        "stage_base.py",
    ]  # what every stage and backend shares
    assert flat == shared, f"backends belong in a stage package: {flat}"
    executors = sorted(p.name for p in (pipeline / "executor").glob("*.py"))
    assert executors == ["__init__.py", "local.py", "ray_actors.py"], executors
    assert not list(pipeline.rglob("*standin*")), "stand-ins live in benchmark/testing/"


PROBE = re.compile(r"\bhasattr\(|\bgetattr\([^()]*,[^()]*,")


def test_capabilities_are_asked_never_probed() -> None:
    """The runners and the stage base ask a backend what its protocol declares; a probe
    there (``hasattr``, or ``getattr`` with a fallback) would hide a capability from the
    protocols."""
    pipeline = REPO_ROOT / "benchmark" / "pipeline"
    runners = [pipeline / s / "stage.py" for s in ("prep", "mask", "recognize")]
    for path in [*runners, pipeline / "stage_base.py", REPO_ROOT / "benchmark" / "device.py"]:
        text = path.read_text(encoding="utf-8")
        assert not PROBE.search(text), f"{path.name}: {PROBE.search(text)}"


# One vocabulary (issue 11): the stage and the verb are "recognize" (the CLI's, the
# package's spelling); its backend, the model that maps a face to a vector, is an
# "embedder". Upstream API names (OpenCV's FaceRecognizerSF) are quoted as they are.
WORDS_NOT_USED = re.compile(r"recogni[s]|recogni[z](er|ers)\b", re.IGNORECASE)
UPSTREAM_NAMES = re.compile(r"FaceRecognizerSF\w*")


def test_one_vocabulary_in_code_data_and_docs() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout: no list of tracked files")
    texts = [
        name
        for name in tracked
        if name.endswith((".py", ".toml", ".md", ".json", ".yml")) and "LICENSES/" not in name
    ]
    offenders = []
    for name in texts:
        for number, line in enumerate((REPO_ROOT / name).read_text("utf-8").splitlines(), 1):
            if WORDS_NOT_USED.search(UPSTREAM_NAMES.sub("", line)):
                offenders.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not offenders, "say embedder / recognize:\n" + "\n".join(offenders)
