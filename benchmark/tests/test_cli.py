"""The command line on the real manifest and cache."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.cli import main
from benchmark.provenance import CodeStamp

CODE = CodeStamp.of(["benchmark.cache"])


def test_assets_list_and_verify(capsys) -> None:
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("retinaface-caffe", "yunet", "ringnet", "lfw", "youtube-faces"):
        assert name in out
    assert main(["assets", "verify", "yunet"]) == 0
    assert capsys.readouterr().out.startswith("OK   yunet")


def test_assets_verify_names_a_missing_asset(capsys) -> None:
    assert main(["assets", "verify", "ringnet"]) == 1
    assert "FAIL ringnet" in capsys.readouterr().out


def test_cache_info_and_clear(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path))
    from benchmark.cache import Cache

    Cache().put("prep", "a" * 64, {"x": 1}, code=CODE)
    stale = CodeStamp(CODE.modules, CODE.upstream, "0" * 64)  # as older code stamped it
    Cache().put("prep", "b" * 64, {"x": 2}, code=stale)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "entries: 2" in out and "unreachable: 1" in out
    assert "prep: 2 entries, " in out and " MB on the disk" in out
    assert main(["cache", "prune"]) == 0
    assert "pruned 1 " in capsys.readouterr().out
    assert Cache().get("prep", "a" * 64) is not None and Cache().get("prep", "b" * 64) is None
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["unreachable"] == 0 and info["disk_bytes_by_stage"]["prep"] > 0, info
    assert main(["cache", "clear", "--yes"]) == 0
    assert "removed 1" in capsys.readouterr().out


def test_data_info(lfw, capsys) -> None:
    assert main(["data", "info", str(lfw.root)]) == 0
    out = capsys.readouterr().out
    assert '"layout": "lfw"' in out and '"identities":' in out


def test_cache_clear_prompt_takes_ctrl_d_as_no(tmp_path: Path, monkeypatch, capsys) -> None:
    import sys

    from benchmark.cache import Cache

    monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path))
    Cache().put("prep", "a" * 64, {"x": 1}, code=CODE)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)

    def ctrl_d(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", ctrl_d)
    assert main(["cache", "clear"]) == 1
    assert "nothing removed" in capsys.readouterr().out
    assert Cache().stats().entries == 1


def test_list_commands_as_tables_and_json(capsys) -> None:
    import json

    from benchmark.specs import load_claims, load_profiles, load_scenarios

    expected = {
        "profiles": {p.name for p in load_profiles().values()},
        "scenarios": {s.name for s in load_scenarios()},
        "claims": {c.id for c in load_claims()},
    }
    for what, names in expected.items():
        assert main(["list", what, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert {r.get("name", r.get("id")) for r in rows} == names
        assert main(["list", what]) == 0
        table = capsys.readouterr().out
        assert all(name in table for name in names)
    assert main(["list", "backends", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"role": "prep.pose", "name": "pfld", "default": False} | {
        "class": "benchmark.pipeline.prep.pose:PfldPose",
        "extra": "pfld",
    } in rows
    assert main(["assets", "list", "--json"]) == 0
    assert {r["name"] for r in json.loads(capsys.readouterr().out)} >= {"yunet", "lfw"}


def test_output_into_a_closed_pipe_is_not_a_traceback() -> None:
    """`dmbench list backends | head -1`: the reader leaves early; no BrokenPipeError."""
    import subprocess
    import sys

    done = subprocess.run(
        f"'{sys.executable}' -m benchmark.cli list backends | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.startswith("role") and "Traceback" not in done.stderr, done.stderr
