"""The lock files: every package pinned with hashes, one version of each across the locks,
pyproject.toml's requirements all satisfied, and every nox session installing from them."""

from __future__ import annotations

import ast
import re
import tomllib

import pytest
from packaging.requirements import Requirement

from benchmark.machine import LOCKS, _normal, lock_pins
from benchmark.settings import REPO_ROOT

NOXFILE = REPO_ROOT / "noxfile.py"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
LOCK_NAMES = ("all", "default", "lint", "opendr", "opendr-sdist", "gpu")


@pytest.mark.parametrize("name", LOCK_NAMES)
def test_every_pin_has_hashes(name: str) -> None:
    text = (LOCKS / f"{name}.txt").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    assert entries
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+", entry), entry[:80]
        assert "--hash=sha256:" in entry, f"{name}: {entry.splitlines()[0]} has no hash"


@pytest.mark.parametrize("name", ["default", "lint", "opendr"])
def test_the_locks_share_one_version_of_every_package(name: str) -> None:
    everything, pins = lock_pins(LOCKS / "all.txt"), lock_pins(LOCKS / f"{name}.txt")
    shared = set(pins) & set(everything)
    assert shared
    assert {p: pins[p] for p in shared} == {p: everything[p] for p in shared}


@pytest.mark.parametrize(
    ("name", "extras"),
    [("default", ["test"]), ("all", ["test", "insightface", "ringnet", "ray", "pfld"])],
)
def test_a_lock_satisfies_pyproject(name: str, extras: list[str]) -> None:
    pins = lock_pins(LOCKS / f"{name}.txt")
    wanted = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        wanted += PYPROJECT["project"]["optional-dependencies"][extra]
    for line in wanted:
        requirement = Requirement(line)
        if requirement.name == "dmbench":
            continue
        version = pins.get(_normal(requirement.name))
        assert version is not None, f"{name} does not pin {requirement.name}"
        assert requirement.specifier.contains(version, prereleases=True), (line, version)


def test_every_nox_session_installs_from_a_lock() -> None:
    """Only the lock helper (and the unlocked path, and `lock` installing uv itself) calls
    session.install: no session resolves packages on its own."""
    tree = ast.parse(NOXFILE.read_text())
    allowed = {"_install_locked", "lock", "opendr_parity"}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        installs = [
            call
            for call in ast.walk(node)
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "install"
        ]
        if node.name not in allowed:
            assert not installs, f"session {node.name} installs outside the lock"
    source = NOXFILE.read_text()
    # opendr's own installs: the unlocked branch, and its hash-checked sdist.
    assert '"--require-hashes", "--no-deps", "-r",' in source
    for name in LOCK_NAMES:
        assert f'"{name}"' in source, f"no session or spec names the lock {name}"


def test_a_lock_digest_follows_its_pins_not_its_comments(tmp_path) -> None:
    """Regenerating a lock moves its "# via" notes; its digest (what the recorded numbers
    are tied to) stays. A changed pin or hash moves it."""
    from benchmark.machine import lock_digest

    text = (LOCKS / "default.txt").read_text()
    recommented = re.sub(r"#   [^\n]*", "#   someone else", text)
    assert recommented != text
    cases = {"same": text, "recommented": recommented + "\n# a note\n\n"}
    first_pin = re.search(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)
    cases["repinned"] = text.replace(first_pin[0], f"{first_pin[1]}==0.0.0", 1)
    cases["rehashed"] = re.sub(r"sha256:[0-9a-f]", "sha256:x", text, count=1)
    digests = {}
    for name, body in cases.items():
        (tmp_path / f"{name}.txt").write_text(body)
        digests[name] = lock_digest(tmp_path / f"{name}.txt")
    assert digests["same"] == digests["recommented"] == lock_digest(LOCKS / "default.txt")
    assert len({digests["same"], digests["repinned"], digests["rehashed"]}) == 3
