"""The ``dlib81-hull`` cut (the original's convex hull of dlib's 81 landmarks) and the
shared ``DlibLandmarker``.

The real 81-point model (codeniko/shape_predictor_81_face_landmarks) is user-supplied
and absent here, so the region tests run the cut's full wiring (asset store → dlib
predictor → convex hull) with a STAND-IN predictor trained in the test; they check the
plumbing and the geometry of the cut, not the accuracy of the real model.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.assets import AssetStore, load_manifest
from benchmark.errors import AssetError, DeviceError
from benchmark.pipeline.mask.types import CUTS, MaskFailure

dlib = pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")

from benchmark.pipeline.common.landmarks_dlib import DlibLandmarker  # noqa: E402
from benchmark.pipeline.mask.cut_dlib import DLIB_81, Dlib81HullCut, hull_region  # noqa: E402
from benchmark.pipeline.mask.face_region import forehead_points  # noqa: E402

SIZE = 224
N_TRAIN = 6  # crops the stand-in is trained on
N_HELD_OUT = 4  # further crops it is tested on
DLIB_68 = "models/shape_predictor_68_face_landmarks.dat"


@pytest.fixture(scope="module")
def landmarker68(store) -> DlibLandmarker:
    try:
        return DlibLandmarker(store.file("dlib-face-recognition-models", DLIB_68), n_points=68)
    except AssetError as exc:
        pytest.skip(f"dlib's 68-point model is not available: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def crops(kept_crops) -> list[np.ndarray]:
    """Real 224×224 prep crops of lfw20 (frames the default prep keeps)."""
    if len(kept_crops) < N_TRAIN + N_HELD_OUT:
        pytest.skip(f"only {len(kept_crops)} kept crops in lfw20")
    return kept_crops[: N_TRAIN + N_HELD_OUT]


def _train_stand_in(images: list[np.ndarray], landmarker68: DlibLandmarker, path: Path) -> None:
    """A tiny 81-point dlib shape predictor (~2 ms of training) on synthesized labels."""
    samples, labels = [], []
    for image in images:
        left, top, right, bottom = landmarker68.faces(image)[0]
        p68 = landmarker68.landmarks(image)
        points = np.vstack([p68, forehead_points(p68)])
        parts = [dlib.point(round(x), round(y)) for x, y in points]
        samples.append(np.ascontiguousarray(image))
        labels.append([dlib.full_object_detection(dlib.rectangle(left, top, right, bottom), parts)])
    options = dlib.shape_predictor_training_options()
    options.tree_depth = 2
    options.cascade_depth = 3
    options.num_trees_per_cascade_level = 10
    options.oversampling_amount = 3
    options.feature_pool_size = 50
    options.num_test_splits = 5
    options.num_threads = 1
    options.random_seed = "dmbench"
    predictor = dlib.train_shape_predictor(samples, labels, options)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor.save(str(path))


@pytest.fixture(scope="module")
def stand_in_store(tmp_path_factory, crops, landmarker68) -> AssetStore:
    """A store whose only dlib-81 is a STAND-IN predictor trained here on 6 real crops.

    Its 81 training "landmarks" are dlib's real 68 points plus 13 synthetic forehead
    points (``forehead_points``); it is NOT codeniko's model. The manifest has no sha256
    for dlib-81, so the store trusts the file on first use (and warns).
    """
    root = tmp_path_factory.mktemp("dlib81-stand-in")
    asset_dir = root / "assets" / load_manifest()["dlib-81"].local_dir
    _train_stand_in(crops[:N_TRAIN], landmarker68, asset_dir / DLIB_81)
    return AssetStore(
        load_manifest(),
        cache_dir=root / "cache",
        search_dirs=[root / "assets"],
        allow_download=False,
    )


@pytest.fixture(scope="module")
def stand_in_cut(stand_in_store) -> Dlib81HullCut:
    with pytest.warns(UserWarning, match="no sha256 in the manifest"):
        return Dlib81HullCut(stand_in_store)


def test_registered() -> None:
    assert CUTS.cls("dlib81-hull") is Dlib81HullCut
    assert Dlib81HullCut.assets == ("dlib-81",)


def test_missing_model_raises_asset_error_saying_how_to_get_it(tmp_path: Path) -> None:
    store = AssetStore(load_manifest(), cache_dir=tmp_path, search_dirs=[], allow_download=False)
    with pytest.raises(AssetError) as info:
        Dlib81HullCut(store)
    message = str(info.value)
    assert "shape_predictor_81_face_landmarks.dat" in message
    assert "codeniko/shape_predictor_81_face_landmarks" in message
    assert "dmbench assets import dlib-81" in message


def test_cuda_is_refused(tmp_path: Path) -> None:
    store = AssetStore(load_manifest(), cache_dir=tmp_path, search_dirs=[], allow_download=False)
    with pytest.raises(DeviceError, match="CPU only"):
        Dlib81HullCut(store, device="cuda")


def _is_convex(region: np.ndarray) -> bool:
    """The region equals the filled convex hull of its own pixels, up to rasterization:
    refilling the hull may add at most a one-pixel band along its outline."""
    ys, xs = np.nonzero(region)
    points = np.column_stack([xs, ys]).astype(np.int32)
    hull = hull_region(points, region.shape)
    perimeter = cv2.arcLength(cv2.convexHull(points), closed=True)
    return not (region & ~hull).any() and (hull & ~region).sum() <= perimeter


def test_convexity_check_rejects_a_concave_region() -> None:
    square = np.zeros((SIZE, SIZE), bool)
    square[50:150, 50:150] = True
    assert _is_convex(square)
    notched = square.copy()
    notched[50:100, 50:100] = False
    assert not _is_convex(notched)


def test_stand_in_cut_is_a_convex_face_region(stand_in_cut, crops, landmarker68) -> None:
    """Runs on a STAND-IN predictor, NOT the real 81-point model (absent here): a tiny
    dlib predictor trained in this test on 6 real crops labelled with dlib's 68 points +
    13 synthetic forehead points (see ``stand_in_store``). It checks the cut's wiring
    (store → dlib → convex hull) and the region's geometry on those 6 crops and 4 held
    out, not the accuracy of codeniko's model."""
    for crop in crops:
        region = stand_in_cut.region(crop, None)
        assert region.dtype == bool and region.shape == (SIZE, SIZE)
        assert region.any()
        n_components, _ = cv2.connectedComponents(region.astype(np.uint8))
        assert n_components == 2  # background + one region
        assert _is_convex(region)
        real = landmarker68.landmarks(crop)
        nose = np.round(real[30]).astype(int)
        assert region[nose[1], nose[0]], "the nose tip (dlib 68-point model) is inside"
        # The jaw outline (points 1-17) lies on the hull's border by construction; the
        # inner face (brows, eyes, nose, mouth: points 18-68) must be inside.
        inner = real[17:].round().astype(int)
        assert region[inner[:, 1], inner[:, 0]].mean() > 0.9, "the inner face is inside"
        # Face box ≈ 0.4 of the prep crop's side; hull of face + forehead ≈ 0.15 of its area.
        assert 0.05 < region.mean() < 0.5
        # The forehead points lift the region above the brows.
        assert np.nonzero(region)[0].min() < real[17:27, 1].min() - 5
        np.testing.assert_array_equal(
            region, hull_region(stand_in_cut.landmarks(crop), (SIZE, SIZE))
        )


def test_stand_in_cut_fails_closed(stand_in_cut, crops) -> None:
    with pytest.raises(MaskFailure, match="no face found by dlib"):
        stand_in_cut.region(np.full((SIZE, SIZE, 3), 128, np.uint8), None)
    quarter = SIZE // 4
    two = np.ascontiguousarray(
        np.concatenate([crops[0][:, quarter:-quarter], crops[1][:, quarter:-quarter]], axis=1)
    )
    with pytest.raises(MaskFailure, match="2 faces found by dlib"):
        stand_in_cut.region(two, None)


def test_landmarker_checks_its_model_file(landmarker68, tmp_path: Path) -> None:
    """When its model loads (before a stage's first miss, or on first use)."""
    with pytest.raises(AssetError, match="68-point shape predictor, expected 81"):
        DlibLandmarker(landmarker68.predictor_path, n_points=81).load()
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"not a model")
    with pytest.raises(AssetError, match="not a readable dlib shape predictor"):
        DlibLandmarker(garbage).load()
    with pytest.raises(AssetError, match="not a readable dlib shape predictor"):
        DlibLandmarker(garbage).landmarks(np.zeros((SIZE, SIZE, 3), np.uint8))


def test_landmarker_rejects_non_images(landmarker68) -> None:
    with pytest.raises(ValueError, match="uint8"):
        landmarker68.landmarks(np.zeros((SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        landmarker68.landmarks(np.zeros((SIZE, SIZE, 4), np.uint8))
