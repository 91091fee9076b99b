"""RingNet reconstructors: preprocessing and projection as the original, and the wiring.

The real checkpoint needs a registration, so the backend tests run on a STAND-IN
checkpoint (``benchmark.testing.ringnet_standin``): a TF1-style graph with RingNet's
tensor names and shapes but not its weights. They prove loading, batching, conversion
and projection, not reconstruction quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.assets import AssetStore
from benchmark.errors import AssetError, DeviceError
from benchmark.meshes import read_ply
from benchmark.pipeline.mask import ringnet as mask_ringnet
from benchmark.pipeline.mask.ringnet import (
    FOCAL,
    IMG_SIZE,
    CropTransform,
    preprocess,
    to_image_frame,
)
from benchmark.pipeline.mask.stage import MaskStage
from benchmark.pipeline.mask.types import RECONSTRUCTORS, MaskFailure


def _empty_store(tmp_path: Path) -> AssetStore:
    return AssetStore(cache_dir=tmp_path / "cache", search_dirs=[], allow_download=False)


# -- no TensorFlow needed --------------------------------------------------------------------
def test_registered() -> None:
    assert {"ringnet", "ringnet-onnx"} <= set(RECONSTRUCTORS.names())


def test_missing_checkpoint_says_how_to_register(tmp_path: Path) -> None:
    with pytest.raises(AssetError) as err:
        RECONSTRUCTORS.create("ringnet", store=_empty_store(tmp_path))
    message = str(err.value)
    assert "ringnet.is.tue.mpg.de" in message and "dmbench assets import ringnet" in message


def test_missing_conversion_says_how_to_convert(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="dmbench assets convert ringnet"):
        RECONSTRUCTORS.create("ringnet-onnx", store=_empty_store(tmp_path))


def test_a_224_crop_passes_unchanged() -> None:
    crop = np.random.default_rng(0).integers(0, 256, (IMG_SIZE, IMG_SIZE, 3), dtype=np.uint8)
    values, transform = preprocess(crop)
    assert values.dtype == np.float32 and values.shape == (IMG_SIZE, IMG_SIZE, 3)
    np.testing.assert_allclose(values, 2 * (crop / 255.0 - 0.5), atol=1e-6)
    assert values.min() >= -1 and values.max() <= 1
    assert transform == CropTransform(1.0, (112, 112))


@pytest.mark.parametrize(
    ("width", "height"), [(300, 180), (150, 400), (500, 500), (224, 224), (333, 97)]
)
def test_projection_maps_crop_pixels_back_to_the_input_image(width: int, height: int) -> None:
    """A point drawn where a marker appears in the network's input lands on the marker.

    Independent of the formula's derivation: find the marker in the preprocessed crop,
    place a vertex that RingNet's weak-perspective camera puts at that crop pixel
    (``112 · s · (X + tx) + 112``), and map it back with ``to_image_frame``.
    """
    image = np.zeros((height, width, 3), np.uint8)
    marker = (int(width * 0.7), int(height * 0.3))
    image[marker[1] - 3 : marker[1] + 4, marker[0] - 3 : marker[0] + 4] = 255
    values, transform = preprocess(image)
    assert transform.scale == pytest.approx(IMG_SIZE / max(width, height))
    ys, xs = np.nonzero(values[..., 0] > 0.5)
    u, v = xs.mean(), ys.mean()
    s, tx, ty = 5.0, 0.01, -0.02
    vertex = np.array([[(u - 112) / (112 * s) - tx, (v - 112) / (112 * s) - ty, 0.0]])
    points, tz = to_image_frame(vertex, np.array([s, tx, ty]), transform)
    assert tz == pytest.approx(FOCAL / (112 * s))
    # Within half a pixel of the network's input (0.5 / scale pixels of the image): the
    # marker's centre survives resizing to a fraction of a pixel, while a window off by
    # one pixel (the error this test is for) lands ≥ 0.7 input pixels away.
    assert np.abs(points[0, :2] - marker).max() < 0.5 / transform.scale


def test_depth_is_larger_nearer_the_camera() -> None:
    vertices = np.array([[0.0, 0.0, -0.05], [0.0, 0.0, 0.05]])  # first is nearer (z away)
    points, _ = to_image_frame(vertices, np.array([5.4, 0.0, 0.0]), CropTransform(1.0, (112, 112)))
    assert points[0, 2] > points[1, 2]
    # weak perspective: ≈ orthographic at f = 50000 (0.1 m of depth moves x by < 0.01 px)
    np.testing.assert_allclose(points[:, :2], 112.0, atol=1e-9)


@pytest.mark.parametrize("camera", [(0.0, 0, 0), (-1.0, 0, 0), (np.nan, 0, 0), (5.0, np.inf, 0)])
def test_unusable_camera_fails_closed(camera) -> None:
    with pytest.raises(MaskFailure, match="camera"):
        to_image_frame(np.zeros((3, 3)), np.array(camera), CropTransform(1.0, (112, 112)))


def test_non_rgb_input_fails_closed() -> None:
    with pytest.raises(MaskFailure, match="RGB"):
        preprocess(np.zeros((224, 224), np.uint8))


# -- on a stand-in checkpoint (TensorFlow) ------------------------------------------------------
@pytest.fixture(scope="module")
def flame(store: AssetStore):
    try:
        return read_ply(store.file("flame-sample", "FLAME_sample.ply"))
    except AssetError as exc:
        pytest.skip(f"FLAME sample mesh not available: {str(exc).splitlines()[0]}")


def _standin_store(root: Path, flame, batch: int | None) -> AssetStore:
    pytest.importorskip("tensorflow")
    from benchmark.testing.ringnet_standin import build_standin_checkpoint

    build_standin_checkpoint(root / "models" / "ringnet" / "ring_6_68641", flame.vertices, batch)
    shared = AssetStore().search_dirs
    return AssetStore(cache_dir=root / "cache", search_dirs=[root, *shared], allow_download=False)


@pytest.fixture(scope="module", params=[None, 1], ids=["dynamic-batch", "batch-of-1"])
def standin_store(request, tmp_path_factory, flame) -> AssetStore:
    """A store whose 'ringnet' asset is a stand-in checkpoint (trusted on first use)."""
    with pytest.warns(UserWarning, match="trust|first use"):
        store = _standin_store(tmp_path_factory.mktemp("ringnet"), flame, request.param)
        store.verify("ringnet")
    return store


@pytest.fixture(scope="module")
def standin(standin_store):
    return RECONSTRUCTORS.create("ringnet", store=standin_store)


def test_standin_mesh_has_flame_topology_and_the_camera_distance(standin, kept_crops) -> None:
    mesh = standin.reconstruct(kept_crops[0])
    assert mesh.vertices.shape == (5023, 3) and mesh.triangles.shape == (9976, 3)
    s = mesh.info["ringnet_camera"][0]
    assert mesh.info["camera_distance"] == pytest.approx(FOCAL / (112 * s))
    mesh.validate(IMG_SIZE)


def test_batches_give_the_same_meshes_as_single_crops(standin, kept_crops) -> None:
    crops = kept_crops[:5]
    batched = standin.reconstruct_batch(crops)
    for crop, mesh in zip(crops, batched, strict=True):
        np.testing.assert_allclose(mesh.vertices, standin.reconstruct(crop).vertices, atol=1e-4)
    # the stand-in's output depends on the image: different crops, different meshes
    assert np.abs(batched[0].vertices - batched[1].vertices).max() > 1e-3


def test_graph_is_imported_once(standin_store, kept_crops, monkeypatch) -> None:
    tf = pytest.importorskip("tensorflow")
    calls = []
    real = tf.compat.v1.train.import_meta_graph
    monkeypatch.setattr(
        tf.compat.v1.train,
        "import_meta_graph",
        lambda *a, **k: calls.append(a) or real(*a, **k),
    )
    reconstructor = RECONSTRUCTORS.create("ringnet", store=standin_store)
    for _ in range(3):
        reconstructor.reconstruct_batch(kept_crops[:2])
    assert len(calls) == 1


def test_cuda_without_a_gpu_is_refused(standin_store) -> None:
    tf = pytest.importorskip("tensorflow")
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible to TensorFlow here")
    with pytest.raises(DeviceError, match="TensorFlow sees no GPU"):
        RECONSTRUCTORS.create("ringnet", store=standin_store, device="cuda")


def test_mask_stage_end_to_end_on_the_standin(standin_store, kept_crops, tmp_path) -> None:
    """ringnet → numpy renderer → a cut, through the stage and its cache, batched."""
    from benchmark.cache import Cache

    cache = Cache(root=tmp_path / "cache")
    stage = MaskStage.from_names(
        "ringnet", "numpy", "mediapipe-hull", store=standin_store, cache=cache
    )
    results = stage.run_crops(kept_crops[:4])
    masked = [r for r in results if r.masked]
    assert masked, [r.reason for r in results]
    for crop, result in zip(kept_crops[:4], results, strict=True):
        if result.masked:
            overlay = result.image("overlay")
            assert overlay.shape == crop.shape and not np.array_equal(overlay, crop)
            assert result.info["mesh"]["camera_distance"] > 0
    again = stage.run_crops(kept_crops[:4])
    assert all(r.cached for r in again)
    assert [r.status for r in again] == [r.status for r in results]


def test_onnx_conversion_gives_the_same_vertices(standin_store, kept_crops) -> None:
    pytest.importorskip("tf2onnx")
    path, record = mask_ringnet.convert_to_onnx(standin_store)
    assert path.is_file() and not list(path.parent.glob("*.part*"))
    assert record["source_sha256"] == standin_store.sha256_of("ringnet")
    tf_backend = RECONSTRUCTORS.create("ringnet", store=standin_store)
    onnx_backend = RECONSTRUCTORS.create("ringnet-onnx", store=standin_store)
    crops = kept_crops[:3]
    for a, b in zip(
        tf_backend.reconstruct_batch(crops), onnx_backend.reconstruct_batch(crops), strict=True
    ):
        # the bound the conversion enforces, 1e-4 m, in pixels at this mesh's scale
        px_per_metre = 112 * a.info["ringnet_camera"][0]
        atol = mask_ringnet.CONVERSION_ATOL * px_per_metre
        np.testing.assert_allclose(a.vertices, b.vertices, atol=atol)
        assert a.info["camera_distance"] == pytest.approx(b.info["camera_distance"], rel=1e-6)
    # the converted file keys the cache, so another conversion is never served stale masks
    stage = MaskStage.from_names("ringnet-onnx", "numpy", "mediapipe-hull", store=standin_store)
    assert stage.asset_sha256["ringnet-onnx:ring_6_68641.onnx"] == record["onnx_sha256"]


def test_onnx_on_cuda_without_onnxruntime_gpu_is_refused(standin_store) -> None:
    import onnxruntime

    pytest.importorskip("tf2onnx")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has CUDA here")
    mask_ringnet.convert_to_onnx(standin_store)
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        RECONSTRUCTORS.create("ringnet-onnx", store=standin_store, device="cuda")


def test_tampered_conversion_is_refused(standin_store, tmp_path) -> None:
    pytest.importorskip("tf2onnx")
    folder = tmp_path / "root" / "models" / "ringnet"
    path, _ = mask_ringnet.convert_to_onnx(standin_store, folder)
    store = AssetStore(
        cache_dir=tmp_path / "cache", search_dirs=[tmp_path / "root"], allow_download=False
    )
    assert mask_ringnet.find_converted(store)[0] == path
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(AssetError, match="does not match its conversion record"):
        mask_ringnet.find_converted(store)


def test_cli_convert(standin_store, monkeypatch, capsys) -> None:
    pytest.importorskip("tf2onnx")
    import os

    from benchmark.cli import main

    monkeypatch.setenv("DMBENCH_ASSET_PATH", os.pathsep.join(map(str, standin_store.search_dirs)))
    monkeypatch.setenv("DMBENCH_CACHE_DIR", str(standin_store.cache_dir.parent))
    assert main(["assets", "convert", "ringnet"]) == 0
    assert "differ by at most" in capsys.readouterr().out


def test_a_conversion_of_another_checkpoint_is_refused(standin_store) -> None:
    """The record names the checkpoint it came from; a different one in the store wins."""
    import json

    pytest.importorskip("tf2onnx")
    path, record = mask_ringnet.convert_to_onnx(standin_store)
    record_path = path.with_name(mask_ringnet.ONNX_RECORD)
    stale = dict(record, source_sha256={k: "0" * 64 for k in record["source_sha256"]})
    record_path.write_text(json.dumps(stale))
    try:
        with pytest.raises(AssetError, match="another checkpoint"):
            mask_ringnet.find_converted(standin_store)
    finally:
        record_path.write_text(json.dumps(record))


def test_a_meta_graph_that_is_not_a_graph_is_an_asset_error(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    prefix = tmp_path / "ring_6_68641"
    for suffix in (".meta", ".index", ".data-00000-of-00001"):
        (tmp_path / f"ring_6_68641{suffix}").write_bytes(b"not a checkpoint")
    with pytest.raises(AssetError, match="not the RingNet graph"):
        mask_ringnet.TensorFlowRunner(prefix)
