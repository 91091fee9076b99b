"""The benchmark comparison prints ratios of medians between the two newest saved runs."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.bench_compare import compare, main


def _save(folder: Path, name: str, medians: dict[str, float]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(
        json.dumps(
            {"benchmarks": [{"fullname": k, "stats": {"median": v}} for k, v in medians.items()]}
        )
    )
    return path


def test_ratios_and_flags(tmp_path: Path, capsys) -> None:
    old = _save(tmp_path, "0001_old", {"a": 0.010, "b": 0.020, "gone": 1.0})
    new = _save(tmp_path, "0002_new", {"a": 0.030, "b": 0.010, "new": 1.0})
    lines = compare(old, new)
    assert any("3.00×" in line and "SLOWER" in line for line in lines)
    assert any("0.50×" in line and "faster" in line for line in lines)
    assert any(line.strip().startswith("new") for line in lines)
    assert main([str(tmp_path)]) == 0 and "0002_new / 0001_old" in capsys.readouterr().out


def test_nothing_to_compare(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path)]) == 0
    assert "nothing to compare" in capsys.readouterr().out
