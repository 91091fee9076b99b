"""STAND-INS for InsightFace's buffalo_l files (registration-only, non-commercial weights).

``build_standin_pack`` writes ``det_10g.onnx`` and ``w600k_r50.onnx`` with the real files'
tensor names, shapes and output layouts, but no trained weights: the detector reports one
constant face, the embedder is a fixed random projection. They test the wiring of the
``insightface-buffalo-l`` backend (tests, the paper-profile run, the GPU check), never its
accuracy. Building them needs the ``onnx`` package.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from benchmark.assets import Asset, load_manifest
from benchmark.pipeline.recognize.insightface_buffalo import ASSET, DETECTOR_FILE, RECOGNIZER_FILE

# SCRFD-10G (det_10g.onnx), as insightface 0.7.3 and public inspections of the file describe
# it: input 'input.1' [1, 3, '?', '?'] (dynamic H, W); 9 outputs, scores / box distances /
# keypoint offsets for strides 8, 16, 32 with 2 anchors per cell, no batch dimension
# (at 640×640: [12800, 1], [3200, 1], [800, 1], [12800, 4], ..., [800, 10]).
SCRFD_OUTPUTS = {
    8: ("448", "451", "454"),
    16: ("471", "474", "477"),
    32: ("494", "497", "500"),
}
# The stand-in's one face: anchor 0 of stride-32 cell (row 10, column 10), centre (320, 320)
# of the 640×640 letterboxed input, score 0.9, box 240 × 300 px, 5 keypoints.
FACE_STRIDE, FACE_CELL, FACE_SCORE = 32, (10, 10), 0.9
FACE_LTRB = (120.0, 150.0, 120.0, 150.0)  # distances from the centre, pixels
FACE_KPS = ((-50, -40), (50, -40), (0, 10), (-40, 60), (40, 60))  # offsets, pixels


def build_scrfd_standin(path: Path) -> None:
    """A stand-in with det_10g.onnx's signature and exactly one face at a known box.

    The outputs have the real model's names, order and dynamic shapes (each computed from
    the input's H, W by pooling it at the stride), but their values are constants: no
    weights, no face finding. Only the wiring around the detector is under test.
    """
    import onnx
    from onnx import TensorProto, helper

    nodes, inits, outputs = [], [], []

    def const(name, array, dtype=np.float32):
        inits.append(onnx.numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    for stride, (score_name, box_name, kps_name) in SCRFD_OUTPUTS.items():
        s = f"s{stride}"
        nodes += [
            helper.make_node(
                "AveragePool",
                ["input.1"],
                [f"{s}_pool"],
                kernel_shape=[stride] * 2,
                strides=[stride] * 2,
            ),
            helper.make_node("ReduceMean", [f"{s}_pool"], [f"{s}_mean"], axes=[1], keepdims=1),
            helper.make_node("Mul", [f"{s}_mean", const(f"{s}_zero", 0.0)], [f"{s}_zeros"]),
            helper.make_node("Transpose", [f"{s}_zeros"], [f"{s}_hwc"], perm=[0, 2, 3, 1]),
        ]
        grid = 640 // stride
        anchors = grid * grid * 2
        for name, channels in ((score_name, 1), (box_name, 4), (kps_name, 10)):
            reps = const(f"{name}_reps", [1, 1, 1, 2 * channels], np.int64)
            shape = const(f"{name}_shape", [-1, channels], np.int64)
            nodes += [
                helper.make_node("Tile", [f"{s}_hwc", reps], [f"{name}_tiled"]),
                helper.make_node("Reshape", [f"{name}_tiled", shape], [f"{name}_flat"]),
            ]
            if channels == 1 and stride == FACE_STRIDE:
                row, col = FACE_CELL
                index = const("face_index", [[(row * grid + col) * 2]], np.int64)
                value = const("face_score", [[FACE_SCORE]])
                nodes.append(helper.make_node("ScatterND", [f"{name}_flat", index, value], [name]))
            elif channels == 1:
                nodes.append(helper.make_node("Identity", [f"{name}_flat"], [name]))
            else:  # distances in units of the stride, the same for every anchor
                offsets = FACE_LTRB if channels == 4 else [v for p in FACE_KPS for v in p]
                units = const(f"{name}_units", [np.asarray(offsets) / stride])
                nodes.append(helper.make_node("Add", [f"{name}_flat", units], [name]))
            outputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, [anchors, channels])
            )
    order = [names[k] for k in range(3) for names in SCRFD_OUTPUTS.values()]
    outputs.sort(key=lambda info: order.index(info.name))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])
    graph = helper.make_graph(nodes, "scrfd_standin", [image], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_arcface_standin(path: Path) -> None:
    """A stand-in with w600k_r50.onnx's signature: 'input.1' [N, 3, 112, 112] → [N, 512].

    A fixed random projection of the 8×8-pooled crop (seed 0), not a face embedder: its
    embedding depends on the aligned crop, nothing more. Its first nodes are not named
    Sub/Mul, so insightface normalises the input with mean 127.5, std 127.5 as for the real
    file.
    """
    import onnx
    from onnx import TensorProto, helper

    weights = np.random.default_rng(0).normal(size=(3 * 14 * 14, 512)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8], name="pool"
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "projection"], ["683"], name="project"),
    ]
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])
    out = helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])
    init = onnx.numpy_helper.from_array(weights, "projection")
    graph = helper.make_graph(nodes, "arcface_standin", [image], [out], [init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_standin_pack(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    build_scrfd_standin(folder / "det_10g.onnx")
    build_arcface_standin(folder / "w600k_r50.onnx")
    return folder


def standin_manifest(names: tuple[str, ...] = (ASSET,)) -> dict[str, Asset]:
    """The real manifest fitted to stand-ins: the assets ``names`` lose their files' sizes
    (no stand-in has the real sizes), and buffalo_l keeps only the two files the embedder
    reads (the pack's landmark and gender/age models have no stand-in)."""
    manifest = load_manifest()
    for name in names:
        asset = manifest[name]
        files = tuple(
            dataclasses.replace(f, size=None)
            for f in asset.files
            if name != ASSET or f.path in (DETECTOR_FILE, RECOGNIZER_FILE)
        )
        manifest[name] = dataclasses.replace(asset, files=files)
    return manifest
