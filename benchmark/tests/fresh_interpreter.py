"""What a piece of code imports when it runs in a fresh interpreter (the test process has
imported everything already, so only a new one can tell)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable


def imported_by(code: str, roots: Iterable[str], timeout: float = 300) -> list[str]:
    """The top-level packages among ``roots`` that ``code`` leaves imported."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"found = {{m.split('.')[0] for m in sys.modules}} & set({sorted(set(roots))!r})\n"
        "print(json.dumps(sorted(found)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # the line printed last
