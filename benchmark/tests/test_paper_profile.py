"""The ``paper`` profile end to end, on a YouTube-Faces-layout folder built from LFW-dev photos.

The original's models that need a registration or a manual download are replaced by
STAND-INS built here, each with the real file's format and interface but not its weights:

* ``ringnet`` — a TF1 checkpoint with RingNet's tensor names (``ringnet_standin``): the FLAME
  sample head plus a small image-dependent offset;
* ``pfld`` — the PFLD network with its last layer set to output one frontal 98-point face
  (so that the pose filter keeps frames and the run has something to mask);
* ``dlib-81`` — a tiny dlib shape predictor trained on real crops (68 real + 13 synthetic
  forehead points);
* ``insightface-buffalo-l`` — SCRFD/ArcFace ONNX files with the real signatures, one
  constant detection and a random projection.

The RetinaFace Caffe detector, the FLAME mesh, the renderer and the data are real. The
numbers such a run produces say nothing about the study; the test proves that every stage
of the paper profile is wired to the original's models and that the same command runs
unchanged once the real files are in the asset store.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmark.assets import AssetStore, load_manifest
from benchmark.errors import AssetError
from benchmark.specs import load_profiles
from benchmark.study import StudyOptions, missing_assets, run_study

pytest.importorskip("tensorflow", reason="the ringnet extra (TensorFlow) is not installed")
torch = pytest.importorskip("torch", reason="the pfld extra (torch) is not installed")
pytest.importorskip("insightface", reason="the insightface extra is not installed")
pytest.importorskip("onnx", reason="building the buffalo_l stand-ins needs onnx")

USER_SUPPLIED = ("ringnet", "pfld", "dlib-81", "insightface-buffalo-l")
IDENTITIES = 6


def frontal_pfld_checkpoint(path: Path) -> None:
    """PFLD whose output is one frontal face for every crop: yaw 0, pitch 1 (STAND-IN)."""
    from benchmark.pipeline.prep.pfld import NUM_LANDMARKS, build_pfld_backbone

    points = np.full((NUM_LANDMARKS, 2), 56.0)
    points[1], points[31] = (20.0, 60.0), (92.0, 60.0)  # jaw line; the nose over its middle
    points[51] = (56.0, 48.0)  # 12 px above it
    points[60], points[72] = (40.0, 45.0), (72.0, 45.0)  # level eye corners: roll 0
    net = build_pfld_backbone()
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.copy_(torch.from_numpy((points / 112.0).reshape(-1)).float())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"plfd_backbone": net.state_dict()}, path)


def build_ytf_from_lfw(lfw, root: Path, identities: int) -> Path:
    """``frame_images_DB/<Name>/<video>/<video>.<frame>.jpg`` + ``<Name>.labeled_faces.txt``.

    Each identity gets two "videos" of LFW photos (frames numbered from 7, as YTF's
    numbering does not start at 0), so both protocols and the ≥ 2-video rule apply.
    """
    base = root / "frame_images_DB"
    for name in lfw.subset(identities, seed=3, min_sessions=4).identities():
        photos = [f for f in lfw.frames if f.identity == name]
        half = len(photos) // 2
        labels = []
        for video, chunk in ((1, photos[:half]), (2, photos[half:])):
            for number, photo in enumerate(chunk, start=7):
                target = base / name / str(video) / f"{video}.{number}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(photo.path.read_bytes())
                labels.append(f"{name}\\{video}\\{video}.{number}.jpg,0,125,125,100,100,0,1")
        (base / f"{name}.labeled_faces.txt").write_text("\n".join(labels) + "\n")
    return root


@pytest.fixture(scope="module")
def standin_assets(tmp_path_factory, store, kept_crops) -> Path:
    """One asset folder holding a stand-in for each of the four user-supplied models."""
    from benchmark.meshes import read_ply
    from benchmark.pipeline.common.landmarks_dlib import DlibLandmarker
    from benchmark.pipeline.mask.cut_dlib import DLIB_81
    from benchmark.testing.insightface_standin import build_standin_pack
    from benchmark.testing.ringnet_standin import build_standin_checkpoint
    from benchmark.tests.test_mask_cut_dlib import DLIB_68, _train_stand_in

    root = tmp_path_factory.mktemp("paper-standins")
    manifest = load_manifest()
    flame = read_ply(store.file("flame-sample", "FLAME_sample.ply"))
    build_standin_checkpoint(root / manifest["ringnet"].local_dir / "ring_6_68641", flame.vertices)
    frontal_pfld_checkpoint(root / manifest["pfld"].local_dir / "checkpoint.pth.tar")
    landmarker68 = DlibLandmarker(store.file("dlib-face-recognition-models", DLIB_68), n_points=68)
    _train_stand_in(kept_crops[:6], landmarker68, root / manifest["dlib-81"].local_dir / DLIB_81)
    build_standin_pack(root / manifest["insightface-buffalo-l"].local_dir)
    return root


def standin_store(assets: Path, cache: Path) -> AssetStore:
    """The stand-ins in ``assets`` before the shared assets, under a manifest fitted to them."""
    from benchmark.testing.insightface_standin import standin_manifest

    shared = AssetStore().search_dirs
    return AssetStore(
        standin_manifest(USER_SUPPLIED),
        cache_dir=cache,
        search_dirs=[assets, *shared],
        allow_download=False,
    )


def test_without_the_user_supplied_files_every_one_is_named(tmp_path: Path) -> None:
    store = AssetStore(cache_dir=tmp_path / "cache", search_dirs=[], allow_download=False)
    missing = missing_assets(load_profiles()["paper"], store)
    assert set(USER_SUPPLIED) | {"youtube-faces"} <= set(missing)
    for name in USER_SUPPLIED:
        with pytest.raises(AssetError) as err:
            store.directory(name)
        assert name in str(err.value) and "dmbench assets import" in str(err.value)


def test_paper_profile_end_to_end_on_standins(
    standin_assets, lfw, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    store = standin_store(standin_assets, tmp_path / "cache")
    data = build_ytf_from_lfw(lfw, tmp_path / "ytf", IDENTITIES)
    profile = load_profiles()["paper"]
    with pytest.warns(UserWarning, match="on first use"):  # no sha256 for these files
        assert missing_assets(profile, store) == ["youtube-faces"]  # the data comes as --data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_study(
            profile, tmp_path / "out", StudyOptions(data=str(data), progress=False), store
        )

    assert results.config["mask_sources"] == ["ringnet+numpy+dlib81-hull"]
    assert results.config["profile"]["detector"] == "retinaface-caffe"
    assert results.config["profile"]["pose"] == "pfld"
    assert results.config["dataset_identities"] == IDENTITIES
    prep = results.counts["prep"]
    assert prep.get("kept", 0) >= 2 * IDENTITIES, prep  # the frontal stand-in passes the pose
    masked = results.counts["mask"]["ringnet+numpy+dlib81-hull"]["counts"]
    assert masked.get("masked", 0) > 0, results.counts["mask"]
    recognize = results.counts["recognize"]["insightface-buffalo-l"]
    assert 0 < recognize["valid_identities"] <= IDENTITIES
    # a stricter usable set can only lose identities (both rules are monotone)
    lost = results.counts["draw"]["lost"]
    assert lost["mask_failures"] >= 0 and lost["overlay_without_face"] >= 0
    assert lost["valid_if_masks_failed_open"] >= recognize["valid_identities"]
    assert results.counts["draw"]["outcome"] == "all identities of the dataset (no target)"
    assert results.config["profile"]["reference_quirks"]  # the paper profile: the original
    rows = {row["scenario"]: row for row in results.scenarios if not row["cross_mask"]}
    assert {"Face2Face", "Overlay2Face", "Overlay2Overlay"} <= set(rows)
    for row in rows.values():
        assert row["protocol"] == "same-session"
        assert row["embedder"] == "insightface-buffalo-l"
        assert row["pairs"] == recognize["valid_identities"]
        assert 0.0 <= row["rank1"] <= 1.0 and row["chance"] == pytest.approx(1 / row["gallery"])
        assert row["rank1_ci"][0] <= row["rank1"] <= row["rank1_ci"][1]

    out = tmp_path / "out"
    saved = json.loads((out / "results.json").read_text())
    assert saved["profile"] == "paper"
    masks = out / "prep" / "masks" / "ringnet+numpy+dlib81-hull"
    for variant in ("overlay", "mask_only", "mask_only_black"):
        assert list((masks / variant).rglob("*.png"))
    from benchmark.report import write_report

    report = write_report(results, out).read_text()
    assert "Mask2Mask rank-1 is 52.1 % over 555" in report  # the paper's value beside ours
    assert "valid-identity rule `all-sessions`" in report
    assert "had masks failed open as the original's did" in report
    assert "reference quirks on" in report
