"""dlib's ResNet-29 face descriptor, read from its own model file and rebuilt as ONNX.

``dlib_face_recognition_resnet_model_v1.dat`` is dlib's binary serialization of the
network ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp`` (a metric-learning
ResNet: a 7×7 convolution, max pooling, 14 residual blocks over four levels, global
average pooling and a 128-d linear layer without bias). The file is not self-describing:
tag and skip layers carry no identifiers, so it is read here against that architecture,
written down once below (``architecture``), and every version string, shape, stride and
padding found in the file is checked against it; anything else is refused.

The format, as dlib's ``serialize.h`` and ``dnn/*.h`` write it: integers are a control
byte (low nibble: byte count, 0x80: negative) and that many little-endian bytes; floats
are an integer mantissa and exponent; bools are ``'0'``/``'1'``; strings are a length and
the bytes; tensors are version 2, four dimensions and raw little-endian float32. A layer
writes its sub-network first and its own details after it, so the file holds the version
numbers top-down, then the input layer, then the layers' details bottom-up.

The ONNX graph computes what dlib computes, operation for operation (convolution,
per-channel affine, ReLU, pooling, dlib's ``add_prev`` that zero-pads the smaller input,
the final matrix product). Its input is the 150×150 face chip as float NCHW already
normalised the way dlib's input layer does it, ``(pixel - channel mean) / 256``
(``normalise_chips``). Nothing here writes a file: the model is converted in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.errors import DmbenchError

CHIP_SIZE = 150
DESCRIPTOR_DIM = 128


class DlibModelFormatError(DmbenchError):
    """The file is not the dlib face descriptor network this reader knows."""


# -- the architecture ---------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One layer of the network: ``kind`` and its compile-time arguments."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc
    args: tuple[int, ...] = ()

    @property
    def wrapper(self) -> bool:
        """Tag and skip layers: no details of their own in the file."""
        return self.kind in ("tag", "skip")


def _block(n: int, stride: int) -> list[Op]:
    """affine<con<n,3,3,1,1,relu<affine<con<n,3,3,stride,stride,SUB>>>>>, top-down."""
    return [
        Op("affine"),
        Op("con", (n, 3, 3, 1, 1)),
        Op("relu"),
        Op("affine"),
        Op("con", (n, 3, 3, stride, stride)),
    ]


def _ares(n: int) -> list[Op]:
    """relu<add_prev1<block<n,1,tag1<SUB>>>>."""
    return [Op("relu"), Op("add_prev", (1,)), *_block(n, 1), Op("tag", (1,))]


def _ares_down(n: int) -> list[Op]:
    """relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<n,2,tag1<SUB>>>>>>>."""
    return [
        Op("relu"),
        Op("add_prev", (2,)),
        Op("avg_pool", (2, 2, 2, 2)),
        Op("skip", (1,)),
        Op("tag", (2,)),
        *_block(n, 2),
        Op("tag", (1,)),
    ]


def architecture() -> list[Op]:
    """``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``, outermost layer first
    (below the loss, above the input layer ``input_rgb_image_sized<150>``)."""
    levels = [
        *_ares_down(256),  # alevel0
        *_ares(256),  # alevel1
        *_ares(256),
        *_ares_down(256),
        *_ares(128),  # alevel2
        *_ares(128),
        *_ares_down(128),
        *_ares(64),  # alevel3
        *_ares(64),
        *_ares(64),
        *_ares_down(64),
        *_ares(32),  # alevel4
        *_ares(32),
        *_ares(32),
    ]
    return [
        Op("fc", (DESCRIPTOR_DIM,)),
        Op("avg_pool", (0, 0, 1, 1)),  # avg_pool_everything
        *levels,
        Op("max_pool", (3, 3, 2, 2)),
        Op("relu"),
        Op("affine"),
        Op("con", (32, 7, 7, 2, 2)),
    ]


# -- the file -----------------------------------------------------------------------------
class _Reader:
    """dlib's serialization primitives over the file's bytes."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def fail(self, what: str) -> DlibModelFormatError:
        return DlibModelFormatError(f"{self.name}: {what} (at byte {self.pos})")

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail("the file ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            raise self.fail(f"not an integer (control byte {control:#04x})")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def number(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(mantissa) * 2.0**exponent

    def boolean(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise self.fail(f"not a bool ({char!r})")
        return char == b"1"

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 256:
            raise self.fail(f"not a version string (length {length})")
        return self.take(length).decode("ascii", errors="replace")

    def expect_string(self, *allowed: str) -> str:
        found = self.string()
        if found not in allowed:
            raise self.fail(f"expected {' or '.join(allowed)}, found {found!r}")
        return found

    def expect_integer(self, allowed: tuple[int, ...], what: str) -> int:
        found = self.integer()
        if found not in allowed:
            raise self.fail(f"{what}: expected {allowed}, found {found}")
        return found

    def tensor(self) -> np.ndarray:
        self.expect_integer((2,), "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"a tensor of shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        values = np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias_shape(self) -> tuple[int, ...]:
        self.expect_integer((1,), "alias tensor version")
        return tuple(self.integer() for _ in range(4))


@dataclass
class Layer:
    """A layer as read from the file: its op and its weights (float32)."""

    op: Op
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """The network read from the file: the input layer's channel means and the layers
    from the input up."""

    channel_means: tuple[float, float, float]  # red, green, blue
    layers: list[Layer]  # bottom-up


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> Iterator[np.ndarray]:
    """dlib's alias tensors: consecutive views into one flat parameter tensor."""
    flat, start = params.reshape(-1), 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        yield flat[start : start + size].reshape(shape)
        start += size
    if start != flat.size:
        raise DlibModelFormatError(f"parameters hold {flat.size} values, the layer needs {start}")


def _details(reader: _Reader, op: Op) -> Layer:
    """One layer's own serialization (``serialize(details)`` in dlib's layers.h)."""
    kind = op.kind
    if kind == "con":
        version = reader.expect_string("con_4", "con_5", "con_6")
        params = reader.tensor()
        filters, rows, cols, stride_y, stride_x = op.args
        found = [reader.integer() for _ in range(5)]
        padding = (reader.integer(), reader.integer())
        # dlib's default: half the window for stride 1, none otherwise.
        expected_padding = (rows // 2, cols // 2) if (stride_y, stride_x) == (1, 1) else (0, 0)
        if found != [filters, rows, cols, stride_y, stride_x] or padding != expected_padding:
            raise reader.fail(f"convolution {found} padding {padding}, expected {op.args}")
        filter_shape = reader.alias_shape()
        bias_shape = reader.alias_shape()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.number()
        use_bias = reader.boolean() if version in ("con_5", "con_6") else True
        use_relu = reader.boolean() if version == "con_6" else False
        if use_relu:
            raise reader.fail("a convolution with a fused ReLU, not in this network")
        shapes = [filter_shape] + ([bias_shape] if use_bias else [])
        parts = list(_split(params, *shapes))
        weights = {"filters": parts[0]}
        if use_bias:
            weights["bias"] = parts[1].reshape(-1)
        if filter_shape[0] != filters or filter_shape[2:] != (rows, cols):
            raise reader.fail(f"filters of shape {filter_shape}")
        return Layer(op, weights)
    if kind == "affine":
        reader.expect_string("affine_", "affine_2")
        params = reader.tensor()
        gamma_shape, beta_shape = reader.alias_shape(), reader.alias_shape()
        mode = reader.integer()
        if mode != 0:  # dlib's CONV_MODE (FC_MODE is 1)
            raise reader.fail(f"an affine layer in mode {mode}, expected 0 (per channel)")
        gamma, beta = _split(params, gamma_shape, beta_shape)
        return Layer(op, {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)})
    if kind == "relu":
        version = reader.expect_string("relu_", "relu_2")
        if version == "relu_2" and reader.boolean():
            raise reader.fail("a disabled ReLU, not in this network")
        return Layer(op)
    if kind in ("max_pool", "avg_pool"):
        reader.expect_string(f"{kind}_2")
        found = tuple(reader.integer() for _ in range(4))
        padding = (reader.integer(), reader.integer())
        rows, cols, stride_y, stride_x = op.args
        expected_padding = (rows // 2, cols // 2) if (stride_y, stride_x) == (1, 1) else (0, 0)
        if found != op.args or padding != expected_padding:
            raise reader.fail(f"{kind} {found} padding {padding}, expected {op.args}")
        return Layer(op)
    if kind == "add_prev":
        reader.expect_string("add_prev_")
        return Layer(op)
    if kind == "fc":
        version = reader.expect_string("fc_2", "fc_3")
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor()
        weight_shape, _ = reader.alias_shape(), reader.alias_shape()
        bias_mode = reader.integer()
        for _ in range(4):
            reader.number()
        if version == "fc_3":
            reader.boolean()
        if bias_mode != 1 or outputs != op.args[0]:  # FC_NO_BIAS
            raise reader.fail(f"a linear layer of {outputs} outputs, bias mode {bias_mode}")
        (matrix,) = _split(params, weight_shape)
        return Layer(op, {"matrix": matrix.reshape(inputs, outputs)})
    raise reader.fail(f"no reader for layer kind {kind}")


def _layer_state(reader: _Reader, version: int) -> None:
    """What add_layer writes after its details (training state, unused here)."""
    for _ in range(3):
        reader.boolean()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if version == 2:
        reader.tensor()  # params_grad


def read_network(path: Path) -> DlibNetwork:
    """The network in ``path``, checked against ``architecture()`` from end to end."""
    path = Path(path)
    reader = _Reader(path.read_bytes(), path.name)
    reader.expect_integer((1,), "loss layer version")
    if reader.expect_string("loss_metric_", "loss_metric_2") == "loss_metric_2":
        reader.number()  # margin
        reader.number()  # distance threshold
    *ops, first = architecture()
    versions = []
    for op in ops:  # top-down: one version number per nesting level
        allowed = (1,) if op.wrapper else (1, 2)
        versions.append(reader.expect_integer(allowed, f"{op.kind} layer version"))
    # The lowest layer sits on the input layer: add_layer<con_, input_rgb_image_sized>.
    bottom_version = reader.expect_integer((2, 3), "input-side layer version")
    reader.expect_string("input_rgb_image_sized")
    means = (reader.number(), reader.number(), reader.number())
    if (reader.integer(), reader.integer()) != (CHIP_SIZE, CHIP_SIZE):
        raise reader.fail(f"an input size other than {CHIP_SIZE}×{CHIP_SIZE}")
    layers = [_details(reader, first)]
    for _ in range(3):
        reader.boolean()
    for _ in range(3):  # x_grad, cached_output, grad_final
        reader.tensor()
    if bottom_version == 3:
        reader.integer()  # sample expansion factor
    for op, version in zip(reversed(ops), reversed(versions), strict=True):  # bottom-up
        if op.wrapper:
            layers.append(Layer(op))
            continue
        layers.append(_details(reader, op))
        _layer_state(reader, version)
    if reader.pos != len(reader.data):
        raise reader.fail(f"{len(reader.data) - reader.pos} bytes left after the network")
    return DlibNetwork(means, layers)  # type: ignore[arg-type]


# -- the ONNX graph -----------------------------------------------------------------------
def normalise_chips(chips: np.ndarray, network: DlibNetwork) -> np.ndarray:
    """RGB uint8 chips (N×150×150×3) as dlib's input layer feeds them: float32 NCHW,
    ``(value - channel mean) / 256``."""
    means = np.asarray(network.channel_means, dtype=np.float32).reshape(1, 3, 1, 1)
    planes = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)
    return (planes - means) / np.float32(256.0)


def _output_side(side: int, window: int, stride: int, padding: int) -> int:
    return 1 + (side + 2 * padding - window) // stride


def _pooled(shape: tuple[int, int, int], rows: int, cols: int, sy: int, sx: int):
    """Shape after an unpadded pooling window (dlib's default for stride > 1)."""
    return (shape[0], _output_side(shape[1], rows, sy, 0), _output_side(shape[2], cols, sx, 0))


def to_onnx(network: DlibNetwork) -> bytes:
    """The network as a serialized ONNX model: input ``chips`` (N×3×150×150, normalised),
    output ``descriptor`` (N×128)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    counter = iter(range(10**6))

    def fresh(stem: str) -> str:
        return f"{stem}_{next(counter)}"

    def constant(stem: str, value: np.ndarray) -> str:
        name = fresh(stem)
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op_type: str, inputs: list[str], **attributes) -> str:
        out = fresh(op_type.lower())
        nodes.append(helper.make_node(op_type, inputs, [out], **attributes))
        return out

    current, shape = "chips", (3, CHIP_SIZE, CHIP_SIZE)  # channels, rows, columns
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    for layer in network.layers:
        op, w = layer.op, layer.weights
        if op.kind == "con":
            filters, rows, cols, sy, sx = op.args
            py, px = (rows // 2, cols // 2) if (sy, sx) == (1, 1) else (0, 0)
            inputs = [current, constant("filters", w["filters"])]
            if "bias" in w:
                inputs.append(constant("bias", w["bias"]))
            current = node(
                "Conv", inputs, kernel_shape=[rows, cols], strides=[sy, sx], pads=[py, px, py, px]
            )
            shape = (
                filters,
                _output_side(shape[1], rows, sy, py),
                _output_side(shape[2], cols, sx, px),
            )
        elif op.kind == "affine":
            gamma = constant("gamma", w["gamma"].reshape(1, -1, 1, 1))
            beta = constant("beta", w["beta"].reshape(1, -1, 1, 1))
            current = node("Add", [node("Mul", [current, gamma]), beta])
        elif op.kind == "relu":
            current = node("Relu", [current])
        elif op.kind == "max_pool":
            rows, cols, sy, sx = op.args
            current = node("MaxPool", [current], kernel_shape=[rows, cols], strides=[sy, sx])
            shape = _pooled(shape, rows, cols, sy, sx)
        elif op.kind == "avg_pool" and op.args[:2] == (0, 0):
            current = node("GlobalAveragePool", [current])
            shape = (shape[0], 1, 1)
        elif op.kind == "avg_pool":
            rows, cols, sy, sx = op.args
            current = node("AveragePool", [current], kernel_shape=[rows, cols], strides=[sy, sx])
            shape = _pooled(shape, rows, cols, sy, sx)
        elif op.kind == "tag":
            tags[op.args[0]] = (current, shape)
        elif op.kind == "skip":
            current, shape = tags[op.args[0]]
        elif op.kind == "add_prev":
            # dlib adds tensors of different sizes as if the smaller were zero-padded at
            # the end of each dimension; the output has the larger size.
            other, other_shape = tags[op.args[0]]
            largest = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))

            def padded(name: str, have: tuple[int, int, int], to: tuple[int, ...]) -> str:
                if have == to:
                    return name
                ends = [0, *(big - small for big, small in zip(to, have, strict=True))]
                pads = constant("pads", np.array([0, 0, 0, 0, *ends], dtype=np.int64))
                return node("Pad", [name, pads], mode="constant")

            current = node(
                "Add", [padded(current, shape, largest), padded(other, other_shape, largest)]
            )
            shape = largest
        elif op.kind == "fc":
            flat = node("Flatten", [current], axis=1)
            current = node("MatMul", [flat, constant("matrix", w["matrix"])])
            shape = (op.args[0], 1, 1)
        else:  # pragma: no cover - read_network refuses any other kind
            raise DlibModelFormatError(f"no ONNX form for layer kind {op.kind}")
    nodes[-1].output[0] = "descriptor"
    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["n", 3, CHIP_SIZE, CHIP_SIZE])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["n", DESCRIPTOR_DIM])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
