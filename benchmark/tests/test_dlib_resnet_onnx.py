"""``dlib-resnet-onnx`` against ``dlib-resnet`` (dlib itself) on real LFW crops, and the
reader of dlib's model file against damaged copies of it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.metrics import ranks_of_truth
from benchmark.pipeline.recognize.dlib_dnn import (
    CHIP_SIZE,
    DlibModelFormatError,
    architecture,
    read_network,
)
from benchmark.pipeline.recognize.dlib_resnet import ASSET, RESNET
from benchmark.pipeline.recognize.types import EMBEDDERS, similarity_matrix

# float32 sums in another order: dlib's descriptors have norms near 1, and the two agree
# to a few 1e-7 on LFW (measured: 4.7e-7 on 64 crops). 1e-5 leaves room for another
# CPU's kernels and still lies four orders below the gaps that decide a rank.
MAX_DESCRIPTOR_DIFFERENCE = 1e-5


@pytest.fixture(scope="module")
def model_file(store) -> Path:
    return store.file(ASSET, RESNET)


@pytest.fixture(scope="module")
def both(store):
    make = EMBEDDERS.create
    return make("dlib-resnet", store=store), make("dlib-resnet-onnx", store=store)


def test_the_file_is_read_whole_against_the_architecture(model_file: Path) -> None:
    network = read_network(model_file)
    ops = [layer.op for layer in network.layers]
    assert ops == architecture()[::-1]  # bottom-up, every layer, nothing left over
    assert network.channel_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    convolutions = [layer for layer in network.layers if layer.op.kind == "con"]
    assert len(convolutions) == 29  # ResNet-29: 1 + 14 blocks × 2 convolutions
    assert convolutions[0].weights["filters"].shape == (32, 3, 7, 7)
    (linear,) = [layer for layer in network.layers if layer.op.kind == "fc"]
    assert linear.weights["matrix"].shape == (256, 128)
    values = np.concatenate([w.ravel() for layer in network.layers for w in layer.weights.values()])
    assert values.size > 5_000_000 and np.all(np.isfinite(values))


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda data: data[: len(data) // 2], "ends early"),
        (lambda data: data + b"\x01\x01", "bytes left after the network"),
        (lambda data: data.replace(b"con_4", b"con_9", 1), "found 'con_9'"),
        (lambda data: data.replace(b"input_rgb_image_sized", b"input_rgb_image_sizex"), "found"),
        (lambda data: b"\x01\x02" + data[2:], "loss layer version"),
        (lambda data: b"", "ends early"),
    ],
    ids=["truncated", "trailing-bytes", "unknown-version", "other-input", "bad-head", "empty"],
)
def test_a_damaged_file_is_refused_naming_it(model_file, tmp_path, damage, says) -> None:
    copy = tmp_path / "damaged.dat"
    copy.write_bytes(damage(model_file.read_bytes()))
    with pytest.raises(DlibModelFormatError, match=says) as raised:
        read_network(copy)
    assert "damaged.dat" in str(raised.value)


def test_descriptors_and_rank_decisions_equal_dlibs(both, kept_crops) -> None:
    """On every kept LFW crop of lfw20, both as they are and blurred (a control that keeps
    the photo's geometry), embedded on themselves and on their photo's landmarks."""
    reference, onnx = both
    crops = [np.ascontiguousarray(c) for c in kept_crops]
    blurred = [cv2.GaussianBlur(c, (0, 0), 6) for c in crops]
    runs = {
        "self": (reference.embed(crops), onnx.embed(crops)),
        "blurred on the photo": (
            reference.embed_aligned(blurred, crops),
            onnx.embed_aligned(blurred, crops),
        ),
    }
    for what, (mine, theirs) in runs.items():
        assert [e.reason for e in mine] == [e.reason for e in theirs], what
        assert [e.det_score for e in mine] == [e.det_score for e in theirs], what
        found = [i for i, e in enumerate(mine) if e.vector is not None]
        assert len(found) >= 0.9 * len(crops), what
        a = np.stack([mine[i].vector for i in found])
        b = np.stack([theirs[i].vector for i in found])
        assert np.abs(a - b).max() < MAX_DESCRIPTOR_DIFFERENCE, what
    # Rank decisions: every photo as a query against every other as the gallery, the
    # blurred ones against the sharp ones (Mask2Face-like): the same rank of the truth.
    for queries in ("self", "blurred on the photo"):
        mine = [e.vector for e in runs[queries][0]]
        theirs = [e.vector for e in runs[queries][1]]
        gallery_mine = [e.vector for e in runs["self"][0]]
        gallery_theirs = [e.vector for e in runs["self"][1]]
        keep = [i for i in range(len(crops)) if mine[i] is not None and gallery_mine[i] is not None]
        truth = np.arange(len(keep))
        ranks = [
            ranks_of_truth(
                similarity_matrix(
                    np.stack([q[i] for i in keep]), np.stack([g[i] for i in keep]), "euclidean"
                ),
                truth,
            )
            for q, g in ((mine, gallery_mine), (theirs, gallery_theirs))
        ]
        assert np.array_equal(ranks[0], ranks[1]), queries


def test_the_chip_is_dlibs_own(both, kept_crops) -> None:
    """The network's input is dlib's face chip: 150×150 RGB at padding 0.25."""
    _, onnx = both
    rgb = np.ascontiguousarray(kept_crops[0])
    shape = onnx._shape(rgb)
    chips = onnx.chips([rgb], [shape[0]])
    assert chips.shape == (1, CHIP_SIZE, CHIP_SIZE, 3) and chips.dtype == np.uint8
    assert 20 < chips.mean() < 235  # a face, not a blank
