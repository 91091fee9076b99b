"""Compare the two newest saved pytest-benchmark runs as ratios (machines are noisy;
absolute times from different machines mean little, ratios of one machine's runs do)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def latest_runs(storage: Path) -> list[Path]:
    return sorted(storage.rglob("*.json"), key=lambda p: p.name)[-2:]


def medians(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {b["fullname"]: b["stats"]["median"] for b in data["benchmarks"]}


def compare(old: Path, new: Path) -> list[str]:
    before, after = medians(old), medians(new)
    lines = [f"benchmark medians, {new.stem} / {old.stem} (ratio < 1: faster)"]
    for name in sorted(set(before) | set(after)):
        if name in before and name in after:
            ratio = after[name] / before[name]
            flag = "  SLOWER" if ratio > 1.2 else ("  faster" if ratio < 0.8 else "")
            lines.append(f"  {ratio:6.2f}×  {name}{flag}")
        else:
            lines.append(f"     new  {name}" if name in after else f"    gone  {name}")
    return lines


def main(argv: list[str] | None = None) -> int:
    storage = Path((argv or sys.argv[1:] or [".benchmarks"])[0])
    runs = latest_runs(storage)
    if len(runs) < 2:
        print(f"only {len(runs)} saved benchmark run(s) in {storage}: nothing to compare yet")
        return 0
    print("\n".join(compare(*runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
