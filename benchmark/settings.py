"""Where dmbench keeps things, all overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "DMBENCH_CACHE_DIR"
MANIFEST_ENV = "DMBENCH_MANIFEST_DIR"
OFFLINE_ENV = "DMBENCH_OFFLINE"

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def cache_root() -> Path:
    """Root of the intermediate cache and the asset cache (platformdirs by default)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dmbench", appauthor=False))


def manifest_dir() -> Path:
    override = os.environ.get(MANIFEST_ENV)
    if override:
        return Path(override)
    return REPO_ROOT / "data_manifest"


PROGRESS_ENV = "DMBENCH_PROGRESS"


def progress_bars(quiet: bool = False) -> bool:
    """Whether to draw progress bars: not under ``--quiet``, nor with ``DMBENCH_PROGRESS=0``
    (CI, logs)."""
    return not quiet and os.environ.get(PROGRESS_ENV, "1").strip().lower() not in {
        "0",
        "false",
        "no",
    }


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "0").lower() in {"1", "true", "yes"}


def fixtures_dir() -> Path:
    return REPO_ROOT / "fixtures"
