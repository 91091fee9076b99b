"""Recognition backends (the attacker's face embedder) on real LFW photos.

``sface``, ``dlib-resnet`` and ``dlib-resnet-onnx`` run their real models.
``insightface-buffalo-l`` (the original's embedder) needs the user-supplied, non-commercial
buffalo_l pack: its tests on real photos skip without it, and its wiring is tested end to
end with STAND-IN ONNX models built here (see ``build_standin_pack``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmark.assets import AssetStore, load_manifest
from benchmark.errors import AssetError, DeviceError, DmbenchError
from benchmark.imageio import load_image
from benchmark.pipeline.recognize.dlib_resnet import SAME_PERSON_DISTANCE
from benchmark.pipeline.recognize.insightface_buffalo import ASSET as BUFFALO
from benchmark.pipeline.recognize.sface import SFaceEmbedder, as_bgr
from benchmark.pipeline.recognize.types import EMBEDDERS, Embedding, similarity_matrix
from benchmark.testing.insightface_standin import (
    FACE_CELL,
    FACE_LTRB,
    FACE_SCORE,
    FACE_STRIDE,
    build_standin_pack,
)

BACKENDS = ["sface", "dlib-resnet", "dlib-resnet-onnx", "insightface-buffalo-l"]
REPO = Path(__file__).resolve().parents[2]

# Same-person bounds. SFace: OpenCV's FaceRecognizerSF docs / the OpenCV Zoo demo call two
# faces the same person at cosine >= 0.363 (SFace: 99.40 % on LFW). dlib: distance < 0.6
# (dlib's face_recognition example; 99.38 % on LFW). ArcFace R50 (WebFace600K, 99.8 % on
# LFW): same-person cosines of frontal LFW photos sit far above different-person ones,
# which are near 0; a 0.3 gap is a loose floor. On 10 LFW identities the means must lie
# on the right side of these thresholds.
SFACE_COSINE_THRESHOLD = 0.363
ARCFACE_MIN_GAP = 0.3

_EMBEDDERS: dict[str, object] = {}


def make_embedder(name: str, store: AssetStore):
    if name not in _EMBEDDERS:
        try:
            _EMBEDDERS[name] = EMBEDDERS.create(name, store=store, device="cpu")
        except DmbenchError as exc:  # AssetError included: the user-supplied buffalo_l pack
            if name != BUFFALO:
                raise
            pytest.skip(f"{name} not usable here: {str(exc).splitlines()[0]}")
    return _EMBEDDERS[name]


@pytest.fixture(params=BACKENDS)
def embedder(request, store):
    return make_embedder(request.param, store)


@pytest.fixture
def sface(store) -> SFaceEmbedder:
    return make_embedder("sface", store)


def rgb(path) -> np.ndarray:
    return load_image(path).rgb


def grey_image() -> np.ndarray:
    return np.full((250, 250, 3), 128, np.uint8)


def noise_image() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (250, 250, 3), dtype=np.uint8)


def two_photos_each(dataset, identities: int) -> list[tuple[Path, Path]]:
    pairs = []
    for name in dataset.identities()[:identities]:
        frames = sorted(f for f in dataset.frames if f.identity == name)
        pairs.append((frames[0].path, frames[1].path))
    return pairs


# -- registry --------------------------------------------------------------------------
def test_the_backends_are_registered_sface_by_default() -> None:
    import benchmark.pipeline.recognize.dlib_resnet
    import benchmark.pipeline.recognize.insightface_buffalo  # noqa: F401

    assert set(BACKENDS) <= set(EMBEDDERS.names())
    assert EMBEDDERS.default == "sface"
    manifest = load_manifest()
    expected = {
        "sface": ("cosine", 128),
        "dlib-resnet": ("euclidean", 128),
        "dlib-resnet-onnx": ("euclidean", 128),
        "insightface-buffalo-l": ("cosine", 512),
    }
    for name, (metric, dim) in expected.items():
        cls = EMBEDDERS.cls(name)
        assert (cls.name, cls.metric, cls.dim) == (name, metric, dim)
        for asset in cls.assets:
            assert f"recognize.embedder:{name}" in manifest[asset].backends


# -- real photos -----------------------------------------------------------------------
def test_embeds_a_frontal_photo(embedder, sample_photo) -> None:
    (result,) = embedder.embed([rgb(sample_photo)])
    assert result.vector is not None, result.reason
    assert result.vector.shape == (embedder.dim,)
    assert result.vector.dtype == np.float32
    assert np.all(np.isfinite(result.vector))
    assert result.det_score is not None
    if embedder.metric == "cosine":
        assert np.linalg.norm(result.vector) == pytest.approx(1.0, abs=1e-5)


def test_same_person_is_more_similar_than_different_people(embedder, lfw20) -> None:
    pairs = two_photos_each(lfw20, 10)
    first = embedder.embed([rgb(a) for a, _ in pairs])
    second = embedder.embed([rgb(b) for _, b in pairs])
    ok = [i for i in range(len(pairs)) if first[i].vector is not None]
    ok = [i for i in ok if second[i].vector is not None]
    assert len(ok) >= 8, "nearly every LFW photo has a detectable face"
    sim = similarity_matrix(
        np.stack([first[i].vector for i in ok]),
        np.stack([second[i].vector for i in ok]),
        embedder.metric,
    )
    same = float(np.mean(np.diag(sim)))
    different = float(np.mean(sim[~np.eye(len(ok), dtype=bool)]))
    print(f"{embedder.name}: same-person mean {same:.3f}, different-person mean {different:.3f}")
    assert same > different
    if embedder.name == "sface":
        assert same > SFACE_COSINE_THRESHOLD > different
    elif embedder.name.startswith("dlib-resnet"):  # similarity = -distance
        assert -same < SAME_PERSON_DISTANCE < -different
    else:
        assert same - different > ARCFACE_MIN_GAP


def test_blank_and_noise_images_get_no_embedding(embedder) -> None:
    for image in (grey_image(), noise_image()):
        (result,) = embedder.embed([image])
        assert result.vector is None
        assert "no face" in result.reason


def test_a_batch_returns_one_result_per_image_in_order(embedder, lfw20) -> None:
    photos = [rgb(f.path) for f in lfw20.frames[:3]]
    images = [photos[0], grey_image(), photos[1], noise_image(), photos[2]]
    batch = embedder.embed(images)
    assert len(batch) == len(images)
    assert all(isinstance(r, Embedding) for r in batch)
    assert [r.vector is None for r in batch] == [False, True, False, True, False]
    for image, result in zip(images, batch, strict=True):
        (alone,) = embedder.embed([image])
        if result.vector is None:
            assert alone.vector is None
        else:
            np.testing.assert_allclose(result.vector, alone.vector, rtol=1e-5, atol=1e-6)
    assert embedder.embed([]) == []


# -- SFace specifics ---------------------------------------------------------------------
def test_sface_onnxruntime_matches_opencv_feature(sface, lfw20) -> None:
    """onnxruntime on the aligned crop == cv2.FaceRecognizerSF.feature (the OpenCV way)."""
    for frame in lfw20.frames[:6]:
        bgr = as_bgr(rgb(frame.path))
        det = sface.detect(bgr)
        assert det is not None and det.score >= sface.min_score
        crop = sface.align(bgr, det)
        assert crop.shape == (112, 112, 3)
        ours = sface.features([crop])
        reference = sface.model.feature(crop)
        assert ours.shape == reference.shape == (1, 128)
        scale = float(np.abs(reference).max())
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * scale)
        cosine = sface.model.match(ours, reference, cv2.FaceRecognizerSF_FR_COSINE)
        assert cosine > 0.99999


def test_sface_tiny_images_are_too_small_not_faces(sface) -> None:
    """YuNet returns garbage faces on inputs under 32 px; they are refused up front."""
    for shape in ((8, 8, 3), (20, 250, 3), (3000, 20, 3)):
        (result,) = sface.embed([np.zeros(shape, np.uint8)])
        assert result.vector is None and "too small" in result.reason


# -- similarity ----------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(data=st.data(), metric=st.sampled_from(["cosine", "euclidean"]))
def test_similarity_matrix_equals_a_double_loop(data, metric) -> None:
    nq, ng, dim = (data.draw(st.integers(1, n)) for n in (6, 6, 16))
    values = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)
    q = data.draw(hnp.arrays(np.float32, (nq, dim), elements=values)).astype(np.float64)
    g = data.draw(hnp.arrays(np.float32, (ng, dim), elements=values)).astype(np.float64)
    if metric == "cosine":
        assume(np.linalg.norm(q, axis=1).min() > 1e-3 and np.linalg.norm(g, axis=1).min() > 1e-3)
    brute = np.empty((nq, ng))
    for i in range(nq):
        for j in range(ng):
            if metric == "cosine":
                brute[i, j] = q[i] @ g[j] / (np.linalg.norm(q[i]) * np.linalg.norm(g[j]))
            else:
                brute[i, j] = -np.linalg.norm(q[i] - g[j])
    got = similarity_matrix(q, g, metric)
    assert got.shape == (nq, ng)
    if metric == "cosine":
        np.testing.assert_allclose(got, brute, rtol=1e-9, atol=1e-12)
    else:
        # ‖q‖² + ‖g‖² − 2 q·g cancels when q ≈ g: the error of the root is √(a few ε‖v‖²).
        biggest = max(float((q**2).sum(1).max()), float((g**2).sum(1).max()), 1.0)
        atol = np.sqrt(8 * np.finfo(np.float64).eps * biggest)
        np.testing.assert_allclose(got, brute, rtol=1e-9, atol=atol)


def test_similarity_matrix_refuses_an_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        similarity_matrix(np.ones((1, 2)), np.ones((1, 2)), "manhattan")


# -- devices -------------------------------------------------------------------------------
def _cuda_really_available(name: str) -> bool:
    if name == "dlib-resnet":
        import dlib

        return bool(getattr(dlib, "DLIB_USE_CUDA", False))
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.parametrize("name", BACKENDS)
def test_cuda_where_it_does_not_load_is_a_device_error(name, store) -> None:
    import benchmark.pipeline.recognize.dlib_resnet
    import benchmark.pipeline.recognize.insightface_buffalo  # noqa: F401

    if _cuda_really_available(name):
        pytest.skip("CUDA is really available here")
    with pytest.raises(DeviceError, match="cuda"):
        EMBEDDERS.create(name, store=store, device="cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        EMBEDDERS.create(name, store=store, device="tpu")


# -- insightface-buffalo-l wiring ------------------------------------------------------------
# The stand-in files are built by benchmark.testing.insightface_standin.


def buffalo_store(tmp_path: Path, assets: Path) -> AssetStore:
    """A store that searches only ``assets``; the manifest's sizes of the real files dropped.

    The manifest has no sha256 for buffalo_l (trust on first use) but does carry the real
    files' sizes, which no stand-in has.
    """
    manifest = load_manifest()
    real = manifest[BUFFALO]
    files = tuple(dataclasses.replace(f, size=None) for f in real.files)
    manifest[BUFFALO] = dataclasses.replace(real, files=files)
    return AssetStore(
        manifest, cache_dir=tmp_path / "cache", search_dirs=[assets], allow_download=False
    )


@pytest.fixture
def no_network(monkeypatch) -> list:
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_missing_buffalo_files_are_an_asset_error_with_the_how_to(tmp_path: Path) -> None:
    import benchmark.pipeline.recognize.insightface_buffalo  # noqa: F401

    store = AssetStore(
        load_manifest(),
        cache_dir=tmp_path / "cache",
        search_dirs=[tmp_path / "empty"],
        allow_download=False,
    )
    with pytest.raises(AssetError) as info:
        EMBEDDERS.create(BUFFALO, store=store, device="cpu")
    message = str(info.value)
    assert "det_10g.onnx" in message and "buffalo_l.zip" in message
    assert "dmbench assets import insightface-buffalo-l" in message
    assert "NON-COMMERCIAL" in message


def test_insightface_not_installed_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import benchmark.pipeline.recognize.insightface_buffalo  # noqa: F401

    folder = tmp_path / "assets" / "models" / BUFFALO
    folder.mkdir(parents=True)
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (folder / name).write_bytes(b"never loaded: the import fails first")
    store = buffalo_store(tmp_path, tmp_path / "assets")
    monkeypatch.setitem(sys.modules, "insightface", None)  # import insightface -> ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trust-on-first-use notes
        with pytest.raises(DmbenchError, match=r"pip install 'dmbench\[insightface\]'"):
            EMBEDDERS.create(BUFFALO, store=store, device="cpu")


# insightface's own norm_crop (called by FaceAnalysis below) uses a scikit-image API
# deprecated in 0.26; the backend silences it around its own call.
@pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")
def test_insightface_backend_end_to_end_with_standin_models(
    tmp_path: Path, lfw20, no_network
) -> None:
    """The real insightface-buffalo-l embedder over STAND-IN models, fully offline.

    The two ONNX files are stand-ins built above (same tensor names, shapes and output
    layout as det_10g.onnx and w600k_r50.onnx, but constant detections and a random
    projection instead of trained weights). They go through the real asset store
    (trust-on-first-use, announced by a warning), insightface's own model loading, SCRFD
    decoding and NMS, keypoint alignment and ArcFace batching. The result must equal what
    insightface's FaceAnalysis — the original's entry point — gives on the same files.
    """
    pytest.importorskip("onnx", reason="building the stand-ins needs the onnx package")
    pytest.importorskip("insightface", reason="the insightface extra is not installed")
    build_standin_pack(tmp_path / "assets" / "models" / BUFFALO)
    store = buffalo_store(tmp_path, tmp_path / "assets")
    with pytest.warns(UserWarning, match="first use"):
        embedder = EMBEDDERS.create(BUFFALO, store=store, device="cpu", batch_size=2)

    photos = [rgb(f.path) for f in lfw20.frames[:3]]
    results = embedder.embed(photos)
    assert len(results) == 3
    for result in results:
        assert result.vector is not None, result.reason
        assert result.vector.shape == (512,) and result.vector.dtype == np.float32
        assert np.linalg.norm(result.vector) == pytest.approx(1.0, abs=1e-5)
        assert result.det_score == pytest.approx(FACE_SCORE, abs=1e-6)
    assert not np.allclose(results[0].vector, results[1].vector), "depends on the photo"

    # The same files through insightface's FaceAnalysis('buffalo_l'), as the original ran it.
    from insightface.app import FaceAnalysis

    root = tmp_path / "insightface_root"
    pack = root / "models" / "buffalo_l"
    build_standin_pack(pack)
    app = FaceAnalysis(
        name="buffalo_l",
        root=str(root),
        allowed_modules=["detection", "recognition"],
        providers=["CPUExecutionProvider"],
    )
    app.prepare(ctx_id=-1, det_size=(640, 640))
    for photo, result in zip(photos, results, strict=True):
        faces = app.get(np.ascontiguousarray(photo[..., ::-1]))
        assert len(faces) == 1
        np.testing.assert_allclose(result.vector, faces[0].normed_embedding, atol=1e-5)
        scale = photo.shape[0] / 640  # 250×250 letterboxed into 640×640
        cx, cy = (FACE_CELL[1] * FACE_STRIDE, FACE_CELL[0] * FACE_STRIDE)
        left, top, right, bottom = FACE_LTRB
        expected = np.array([cx - left, cy - top, cx + right, cy + bottom]) * scale
        np.testing.assert_allclose(faces[0].bbox, expected, atol=1e-3)
    assert no_network == [], "nothing touched the network"


def test_importing_insightface_does_not_touch_the_network() -> None:
    """albumentations (imported by insightface) asks PyPI for updates unless told not to."""
    pytest.importorskip("insightface", reason="the insightface extra is not installed")
    code = (
        "import os, socket\n"
        "attempts = []\n"
        "def refuse(*args, **kwargs):\n"
        "    attempts.append(args)\n"
        "    raise OSError('network disabled')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "os.environ.pop('NO_ALBUMENTATIONS_UPDATE', None)\n"
        "from benchmark.pipeline.recognize.insightface_buffalo import import_insightface\n"
        "import_insightface()\n"
        "print('ATTEMPTS', len(attempts))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ATTEMPTS 0" in done.stdout, done.stdout + done.stderr[-2000:]
