"""The cache: keys change with every determinant; corrupt entries are misses, never crashes."""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmark.cache import Cache, CacheWarning, cache_key
from benchmark.errors import DmbenchError
from benchmark.provenance import CodeStamp

CODE = CodeStamp.of(["benchmark.cache"])
BASE = dict(
    stage="prep",
    backend="yunet+mediapipe-mesh",
    input_sha256="a" * 64,
    params={"max_yaw": 20},
    asset_sha256={"yunet": {"x": "b" * 64}},
    code="e" * 64,
)


def test_key_depends_on_every_determinant() -> None:
    base = cache_key(**BASE)
    variants = [
        {**BASE, "stage": "mask"},
        {**BASE, "backend": "retinaface-caffe+mediapipe-mesh"},
        {**BASE, "input_sha256": "c" * 64},
        {**BASE, "params": {"max_yaw": 25}},
        {**BASE, "asset_sha256": {"yunet": {"x": "d" * 64}}},
        {**BASE, "code": "f" * 64},
    ]
    keys = {cache_key(**v) for v in variants} | {cache_key(**BASE, version="9.9")}
    assert base not in keys and len(keys) == len(variants) + 1
    assert cache_key(**BASE) == base  # stable


@given(
    record=st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | st.text()),
    blob=st.binary(max_size=256),
)
def test_round_trip(tmp_path_factory, record, blob) -> None:
    cache = Cache(tmp_path_factory.mktemp("c"))
    cache.put("prep", "k" * 64, record, {"crop.png": blob}, code=CODE)
    entry = cache.get("prep", "k" * 64)
    assert entry is not None and entry.record == record and entry.files["crop.png"] == blob


def _entry_dir(cache: Cache, key: str) -> Path:
    return cache.root / "prep" / key[:2] / key


def test_corrupt_meta_is_a_miss_and_is_rebuilt(tmp_path: Path) -> None:
    cache, key = Cache(tmp_path), "e" * 64
    cache.put("prep", key, {"status": "kept"}, {"crop.png": b"png"}, code=CODE)
    (_entry_dir(cache, key) / "meta.json").write_text("{not json")
    assert cache.get("prep", key) is None
    assert not _entry_dir(cache, key).exists()
    cache.put("prep", key, {"status": "kept"}, {"crop.png": b"png"}, code=CODE)
    assert cache.get("prep", key) is not None


def test_tampered_file_is_a_miss(tmp_path: Path) -> None:
    cache, key = Cache(tmp_path), "f" * 64
    cache.put("prep", key, {"status": "kept"}, {"crop.png": b"png"}, code=CODE)
    (_entry_dir(cache, key) / "crop.png").write_bytes(b"truncated")
    assert cache.get("prep", key) is None


def test_partial_write_is_invisible(tmp_path: Path) -> None:
    """A crash mid-write leaves only a .tmp- folder, which no reader ever looks at."""
    cache, key = Cache(tmp_path), "0" * 64
    partial = _entry_dir(cache, key).parent / ".tmp-crashed"
    partial.mkdir(parents=True)
    (partial / "crop.png").write_bytes(b"half")
    assert cache.get("prep", key) is None
    meta_without_files = _entry_dir(cache, key)
    meta_without_files.mkdir(parents=True)
    (meta_without_files / "meta.json").write_text(
        json.dumps({"record": {}, "files": {"crop.png": "0" * 64}})
    )
    assert cache.get("prep", key) is None


def test_disabled_cache_reads_and_writes_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path, enabled=False)
    cache.put("prep", "1" * 64, {"a": 1}, code=CODE)
    assert cache.get("prep", "1" * 64) is None
    assert not cache.root.exists()


def test_stats_and_clear(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    for i in range(3):
        cache.put("prep", f"{i}" * 64, {"i": i}, {"crop.png": b"x" * 10}, code=CODE)
    stats = cache.stats()
    assert stats.entries == 3 and stats.by_stage == {"prep": 3} and stats.bytes > 30
    assert cache.clear() == 3 and cache.stats().entries == 0


def test_disk_use_per_stage_counts_blocks_and_a_hard_link_once(tmp_path: Path) -> None:
    """What ``cache info`` reports per stage: allocated blocks (10 bytes in a file of its own
    in a folder of its own take kilobytes), and a file linked twice once."""
    import os

    cache = Cache(tmp_path)
    for i in range(2):
        cache.put("recognize", f"{i}" * 64, {"i": i}, {"vector.npy": b"v" * 10}, code=CODE)
    cache.put("mask", "a" * 64, {}, {"overlay.png": b"p" * 5000}, code=CODE)
    first = cache.stats().disk_by_stage
    assert first["recognize"] >= 2 * 2 * 512 and first["mask"] >= 5000, first
    # a second entry whose file is a hard link of the first's: no more blocks
    cache.put("mask", "b" * 64, {}, {"overlay.png": b"p" * 5000}, code=CODE)
    linked = cache.file_path("mask", "b" * 64, "overlay.png")
    linked.unlink()
    os.link(cache.file_path("mask", "a" * 64, "overlay.png"), linked)
    after = cache.stats().disk_by_stage["mask"]
    own = [linked.parent.lstat(), (linked.parent / "meta.json").lstat()]  # b's own blocks
    assert after - first["mask"] == sum(info.st_blocks * 512 for info in own), (first, after)


def test_interrupted_write_leaves_nothing_and_counts_nothing(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C inside a write: no entry, no leftover folder, and stats stay exact."""
    import os

    import pytest

    cache = Cache(tmp_path)
    cache.put("prep", "a" * 64, {"ok": 1}, code=CODE)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.put("prep", "b" * 64, {"ok": 2}, {"crop.png": b"x"}, code=CODE)
    monkeypatch.undo()
    assert not list(cache.root.rglob(".tmp-*"))
    assert cache.get("prep", "b" * 64) is None
    stale = _entry_dir(cache, "c" * 64).parent / ".tmp-crashed-earlier"
    stale.mkdir(parents=True)
    (stale / "meta.json").write_text("{}")
    assert cache.stats().entries == 1 and cache.clear() == 1


def test_a_record_flipped_into_other_valid_json_is_a_miss(tmp_path: Path) -> None:
    """One byte flipped inside the record (``kept`` → ``kepu``) keeps the JSON valid: the
    entry's own digest must catch it, or the flipped status becomes a result."""
    cache, key = Cache(tmp_path), "f" * 64
    cache.put("prep", key, {"status": "kept"}, {"crop.png": b"png"}, code=CODE)
    meta = _entry_dir(cache, key) / "meta.json"
    meta.write_text(meta.read_text().replace('"kept"', '"kepu"'))
    assert cache.get("prep", key) is None and not _entry_dir(cache, key).exists()


def test_an_entry_without_a_digest_is_rebuilt(tmp_path: Path) -> None:
    cache, key = Cache(tmp_path), "0" * 64
    cache.put("prep", key, {"status": "kept"}, code=CODE)
    meta = _entry_dir(cache, key) / "meta.json"
    data = json.loads(meta.read_text())
    del data["digest"]  # written by an older dmbench, or stripped
    meta.write_text(json.dumps(data))
    assert cache.get("prep", key) is None


def test_unwritable_cache_warns_once_and_keeps_reading(tmp_path: Path, monkeypatch) -> None:
    cache = Cache(tmp_path)
    cache.put("prep", "1" * 64, {"status": "kept"}, code=CODE)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    with pytest.warns(CacheWarning, match="No space left") as caught:
        for key in ("2", "3", "4"):
            cache.put("prep", key * 64, {"status": "kept"}, code=CODE)
    assert len(caught) == 1 and cache.write_failures == 3
    assert cache.get("prep", "1" * 64) is not None, "what it has is still read"


def test_clear_never_leaves_the_cache_root(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    cache = Cache(tmp_path / "c")
    cache.put("prep", "5" * 64, {"status": "kept"}, code=CODE)
    for stage in ("../../victim", str(victim), "..", "intermediates"):
        with pytest.raises(DmbenchError, match="unknown cache stage"):
            cache.clear(stage)
    assert victim.is_dir() and cache.stats().entries == 1
    assert cache.clear("prep") == 1 and cache.stats().entries == 0


def _forge(cache: Cache, key: str, meta: dict) -> None:
    """A meta.json written by someone who can write the cache: a matching digest is easy."""
    from benchmark.cache import record_digest

    if isinstance(meta.get("record"), dict) and isinstance(meta.get("files"), dict):
        meta["digest"] = record_digest(meta["record"], meta["files"])
    folder = _entry_dir(cache, key)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "meta",
    [
        {"record": {"status": "kept"}, "files": {"/etc/hostname": "0" * 64}},
        {"record": {"status": "kept"}, "files": {"../../x": "0" * 64}},
        {"record": {"status": "kept"}, "files": [], "digest": "x"},
        {"record": [], "files": {}, "digest": "x"},
        [],
    ],
    ids=["absolute-file", "dotdot-file", "files-a-list", "record-a-list", "not-a-mapping"],
)
def test_a_forged_record_of_the_wrong_shape_is_a_miss(tmp_path: Path, meta) -> None:
    cache, key = Cache(tmp_path), "7" * 64
    if isinstance(meta, dict):
        _forge(cache, key, meta)
    else:
        _entry_dir(cache, key).mkdir(parents=True)
        (_entry_dir(cache, key) / "meta.json").write_text(json.dumps(meta))
    assert cache.get("prep", key) is None and not _entry_dir(cache, key).exists()


def test_a_deeply_nested_record_is_a_miss(tmp_path: Path) -> None:
    cache, key = Cache(tmp_path), "8" * 64
    _entry_dir(cache, key).mkdir(parents=True)
    (_entry_dir(cache, key) / "meta.json").write_text("[" * 100_000)
    assert cache.get("prep", key) is None


def test_clear_does_not_follow_a_linked_stage_folder(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "meta.json").write_text("{}")
    cache = Cache(tmp_path / "c")
    cache.root.mkdir(parents=True)
    (cache.root / "mask").symlink_to(victim)
    assert cache.clear("mask") == 0 and cache.clear() == 0
    assert (victim / "meta.json").exists()


def test_outputs_get_the_usual_file_mode(tmp_path: Path) -> None:
    """Atomic writes go through mkstemp (0600); run tables must stay readable as before."""
    import os

    from benchmark.imageio import write_bytes_atomic

    write_bytes_atomic(tmp_path / "frames.csv", b"a,b\n")
    plain = tmp_path / "plain.csv"
    plain.write_bytes(b"a,b\n")
    assert (tmp_path / "frames.csv").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert os.stat(tmp_path / "frames.csv").st_mode & 0o044, "group and others may read"
