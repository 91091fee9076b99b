"""The environment a run's numbers depend on: the lock it was installed from, and the CPU.

Floats, and so mask pixels and near-ties in a ranking, depend on the library builds
(the lock pins them) and on the kernels those libraries pick for the CPU (XNNPACK,
onnxruntime's MLAS, OpenCV and OpenBLAS dispatch by instruction set and vendor). Recorded
digests are exact only for the lock and the CPU class they were recorded with; elsewhere
a run is held to the tolerance check (``benchmark.reproduction``).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark.settings import REPO_ROOT

LOCKS = REPO_ROOT / "locks"
# The instruction-set flags of /proc/cpuinfo that the numeric libraries dispatch on.
_SIMD = re.compile(r"^(sse\w*|ssse3|avx\w*|fma\w*|f16c|amx\w*|bmi\d|vnni\w*|neon|asimd\w*|sve\w*)$")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a requirements lock (``name==version \\``)."""
    pins = {}
    for line in path.read_text().splitlines():
        found = _PIN.match(line.strip())
        if found:
            pins[_normal(found.group(1))] = found.group(2)
    return pins


def lock_digest(path: Path) -> str:
    """sha256 of what a lock pins: its requirement lines, hashes included, without its
    comments or blank lines (a regenerated lock whose "# via" notes moved pins the same)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return hashlib.sha256("\n".join(line for line in lines if line).encode()).hexdigest()


def _installed() -> dict[str, str]:
    return {_normal(d.metadata["Name"]): d.version for d in metadata.distributions()}


def lock_status(name: str | None = None) -> dict[str, Any]:
    """Which lock this environment was installed from, its sha256, and every pin the
    installed versions differ from. ``name``: the lock nox installed (``$DMBENCH_LOCK``);
    without one, the largest lock in ``locks/`` that the environment matches."""
    name = name or os.environ.get("DMBENCH_LOCK") or None
    if not LOCKS.is_dir():
        return {"lock": None, "why": f"no lock folder at {LOCKS} (installed from a wheel?)"}
    installed = _installed()
    candidates = [name] if name else [p.stem for p in sorted(LOCKS.glob("*.txt"))]
    best: dict[str, Any] | None = None
    for candidate in candidates:
        path = LOCKS / f"{candidate}.txt"
        if not path.is_file():
            return {"lock": candidate, "why": f"{path} does not exist"}
        pins = lock_pins(path)
        differ = {
            pkg: {"locked": version, "installed": installed.get(pkg, "absent")}
            for pkg, version in pins.items()
            if installed.get(pkg) != version
        }
        status = {
            "lock": candidate,
            "sha256": lock_digest(path),
            "pins": len(pins),
            "differ": differ,
        }
        if name:
            return status
        if not differ and (best is None or len(pins) > best["pins"]):
            best = status
    if best is None:
        return {"lock": None, "why": "the installed versions match no lock in locks/ (unlocked)"}
    return best


def is_locked(status: dict[str, Any]) -> bool:
    return bool(status.get("lock")) and not status.get("differ") and "sha256" in status


@cache
def cpu_facts() -> dict[str, Any]:
    """The CPU class floats depend on: architecture, vendor, family/model and the SIMD
    instruction sets the kernels dispatch on (their sorted list is the class's identity)."""
    facts: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor()}
    info = Path("/proc/cpuinfo")
    if info.is_file():
        fields: dict[str, str] = {}
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if not key:
                break  # the first processor is enough: one class per machine
            fields.setdefault(key, value.strip())
        flags = fields.get("flags") or fields.get("Features") or ""
        facts |= {
            "vendor": fields.get("vendor_id") or fields.get("CPU implementer", ""),
            "family": fields.get("cpu family", ""),
            "model": fields.get("model", "") or fields.get("CPU part", ""),
            "model_name": fields.get("model name", ""),
            "simd": sorted(f for f in flags.split() if _SIMD.match(f)),
        }
    return facts


def cpu_class(facts: dict[str, Any]) -> str:
    """One string per CPU class: two machines with the same string run the same kernels."""
    parts = [facts.get(k, "") for k in ("machine", "vendor", "family", "model")]
    simd = hashlib.sha256(" ".join(facts.get("simd", [])).encode()).hexdigest()[:12]
    return "/".join(str(p) for p in parts) + f"/simd:{simd}"
