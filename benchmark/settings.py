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


_YES, _NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def yes_no(name: str, default: bool) -> bool:
    """A yes/no environment variable; unset or empty is ``default``. Any other word is a
    usage error: ``DMBENCH_OFFLINE=ture`` must not quietly mean online."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if not value:
        return default
    if value in _YES or value in _NO:
        return value in _YES
    from benchmark.errors import UsageError

    raise UsageError(f"{name}={raw!r} is neither yes (1, true, yes, on) nor no (0, false, no, off)")


def progress_bars(quiet: bool = False) -> bool:
    """Whether to draw progress bars: not under ``--quiet``, nor with ``DMBENCH_PROGRESS=0``
    (CI, logs)."""
    return yes_no(PROGRESS_ENV, True) and not quiet


def offline() -> bool:
    return yes_no(OFFLINE_ENV, False)


def check_yes_no_variables() -> None:
    """Read every yes/no variable once, so that another word in one is a usage error before
    any work rather than in the middle of a run."""
    offline(), progress_bars()


def fixtures_dir() -> Path:
    return REPO_ROOT / "fixtures"
