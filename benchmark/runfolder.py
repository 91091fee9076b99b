"""A run folder's tables, read as data that may have been edited by anyone.

Every stage re-reads the tables an earlier stage wrote (``frames.csv``, ``selection.csv``,
``masks.csv``). They are read with the csv module (a name with ``\\r`` or U+2028 is one
field, not two lines), their columns are checked, and every path they name is contained
in the run folder: an absolute path, a ``..`` step, or a link that leads outside is
refused with an error naming the table and the line, before anything is read or written.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from benchmark.errors import RunTableError


def read_table(path: Path, required: Iterable[str] = ()) -> list[dict[str, str]]:
    """The rows of a CSV table; a missing, unreadable or malformed table is one clear error."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RunTableError(f"{path}: unreadable table ({exc})") from exc
    missing = [c for c in required if c not in columns]
    if missing:
        raise RunTableError(f"{path}: not a dmbench table (missing columns {', '.join(missing)})")
    for line, row in enumerate(rows, start=2):
        if None in row or any(value is None for value in row.values()):
            raise RunTableError(f"{path} line {line}: wrong number of fields")
    return rows


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` cannot be one part of a path in a run folder, or None when it can."""
    if name in {"", ".", ".."}:
        return f"{name!r} is not a name"
    if "/" in name or "\\" in name:
        return f"{name!r} contains a path separator"
    for char in name:
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in {"Zl", "Zp"}:
            return f"{name!r} contains a control or line-separator character (U+{ord(char):04X})"
    return None


def check_names(path: Path, line: int, *names: str) -> None:
    """Refuse a row whose identity or session could steer a path out of its folder."""
    for name in names:
        reason = unsafe_name_reason(name)
        if reason is not None:
            raise RunTableError(f"{path} line {line}: {reason}; refusing to use it in a path")


def contained(run_dir: Path, rel: str, table: Path, line: int) -> Path:
    """``run_dir / rel`` when it stays inside ``run_dir`` (links resolved), else an error."""
    root = Path(run_dir).resolve()
    if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise RunTableError(
            f"{table} line {line}: path {rel!r} is not a relative path inside the run folder"
        )
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise RunTableError(
            f"{table} line {line}: path {rel!r} leads outside the run folder {root}"
        )
    return root / rel
