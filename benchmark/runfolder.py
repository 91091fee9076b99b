"""A run folder's tables, read as data that may have been edited by anyone.

Every stage re-reads the tables an earlier stage wrote (``frames.csv``, ``selection.csv``,
``masks.csv``). They are read with the csv module (a name with ``\\r`` or U+2028 is one
field, not two lines), their columns are checked, and every path they name is contained
in the run folder: an absolute path, a ``..`` step, or a link that leads outside is
refused with an error naming the table and the line, before anything is read or written.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from benchmark.errors import RunTableError


def read_table(path: Path, required: Iterable[str] = ()) -> list[dict[str, str]]:
    """The rows of a CSV table; a missing, unreadable or malformed table is one clear error."""
    path = Path(path)
    try:
        # utf-8-sig: a table saved again by a spreadsheet starts with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as handle:
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
    first: dict[tuple[str, ...], int] = {}
    for line, row in enumerate(rows, start=2):
        if None in row or any(value is None for value in row.values()):
            raise RunTableError(f"{path} line {line}: wrong number of fields")
        seen = first.setdefault(tuple(row.values()), line)
        if seen != line:  # no dmbench table holds a row twice: it would be counted twice
            raise RunTableError(f"{path} line {line}: repeats line {seen}")
    return rows


def breaks_lines(char: str) -> bool:
    """A control, format, private-use, unassigned or line/paragraph-separator character."""
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")


def name_fault(name: str) -> str | None:
    """Why a file or folder name cannot go into a run's tables, or None.

    A frame's identity, session and path are written to CSV tables, where a ``\\r``,
    ``\\n`` or U+2028 splits a row for many readers; the dataset reader makes such a name a
    layout problem, and a table that holds one is refused. ``str.isprintable`` is the fast
    path (621k frame names in YouTube Faces).
    """
    if name.isprintable() and "\\" not in name:
        return None
    if "\\" in name:  # a path separator on Windows, and refused in a run's paths
        return "name contains a backslash; rename it"
    bad = next((char for char in name if breaks_lines(char)), None)
    if bad is None:
        return None  # only spaces such as U+00A0: harmless
    if 0xDC80 <= ord(bad) <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
        return f"name is not valid UTF-8 (byte 0x{ord(bad) - 0xDC00:02X}); rename it"
    return f"name contains a control or line-separator character (U+{ord(bad):04X}); rename it"


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` cannot be one part of a path in a run folder, or None when it can."""
    if name in {"", ".", ".."}:
        return f"{name!r} is not a name"
    if "/" in name:
        return f"{name!r} contains a path separator"
    fault = name_fault(name)
    return None if fault is None else f"{name!r}: {fault}"


def check_names(path: Path, line: int, *names: str) -> None:
    """Refuse a row whose identity or session could steer a path out of its folder."""
    for name in names:
        reason = unsafe_name_reason(name)
        if reason is not None:
            raise RunTableError(f"{path} line {line}: {reason}; refusing to use it in a path")


def contained(run_dir: Path, rel: str, table: Path, line: int) -> Path:
    """``run_dir / rel`` when it stays inside ``run_dir`` (links resolved), else an error."""
    return RunPaths(run_dir).contained(rel, table, line)


def inside(run_dir: Path, rel: str, what: str | None = None) -> Path:
    """``run_dir / rel`` after checking that no link on the way leads out of ``run_dir``.

    Used for every path a stage writes or removes in a run folder too: a ``masks/<backend>``
    folder replaced by a link must not let a run write or delete files elsewhere."""
    return RunPaths(run_dir).inside(rel, what)


class RunPaths:
    """``inside`` and ``contained`` for the many paths of one pass over a run folder (a
    table's rows, a stage's outputs). Each folder on the way is checked once per pass,
    one part at a time (a part that is a link is resolved in full), so 100,000 crops
    cost about one ``lstat`` per new folder or file, not a full resolution each."""

    def __init__(self, run_dir: Path) -> None:
        self.root = Path(run_dir).resolve()
        self._checked: dict[str, str] = {"": str(self.root)}  # rel folder → real folder

    def contained(self, rel: str, table: Path, line: int) -> Path:
        where = f"{table} line {line}: path {rel!r}"
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise RunTableError(f"{where} is not a relative path inside the run folder")
        fault = name_fault(rel.replace("/", ""))  # a NUL, a line break, a backslash
        if fault is not None:
            raise RunTableError(f"{where}: {fault}")
        return self.inside(rel, where)

    def inside(self, rel: str, what: str | None = None) -> Path:
        target = self.root / rel
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\0" in rel:
            self._resolved(target, what)  # an odd spelling: the whole path, as it is
            return target
        self._real(rel, what, remember=False)  # its folders are remembered on the way
        return target

    def _real(self, rel: str, what: str | None, remember: bool = True) -> str:
        """The real path of ``rel``, each of its parts checked once: a part that is a link
        is resolved (and must stay inside); any other part is itself."""
        known = self._checked.get(rel)
        if known is not None:
            return known
        head, _, name = rel.rpartition("/")
        real = os.path.join(self._real(head, what), name)
        if os.path.islink(real):
            real = str(self._resolved(Path(real), what))
        if remember:
            self._checked[rel] = real
        return real

    def _resolved(self, target: Path, what: str | None) -> Path:
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a NUL byte
            raise RunTableError(f"{what or target}: cannot be resolved ({exc})") from exc
        if not resolved.is_relative_to(self.root):
            raise RunTableError(f"{what or target} leads outside the run folder {self.root}")
        return resolved
