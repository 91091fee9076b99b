"""``ringnet`` and ``ringnet-onnx`` reconstructors: the original's 3D face model (RingNet → FLAME).

The original mask stage ran the RingNet checkpoint ``ring_6_68641`` (TensorFlow 1.12,
Python 2.7) on every 224×224 prep crop and rendered the predicted FLAME mesh back in the
crop with the predicted weak-perspective camera. Here the same checkpoint runs on
TensorFlow 2 through ``tf.compat.v1`` in graph mode (``ringnet``), or, after a one-time
conversion with tf2onnx (``dmbench assets convert ringnet``), on onnxruntime alone
(``ringnet-onnx``). Both give the same vertices (checked at conversion and in the tests).

Upstream facts used (computationalprivacy/unmask @ 516ff262, ``Flame_RingNet_face_reconstruction/
RingNet/``: ``run_RingNet.py``, ``batch_helper.py``, ``util/renderer.py``; HMR's
``util/image.py`` for ``scale_and_crop``)
----------------------------------------------------------------------------------------------
* Graph: a placeholder named ``input_images`` is created first, then the meta graph is
  imported (``import_meta_graph(..., clear_devices=True)``) and the checkpoint restored; the
  model is fed through ``input_images_1:0`` (the meta graph's own input, renamed by the
  import) and read at ``Flamenetnormal_2/Add_9:0`` (vertices, batch × 5023 × 3, metres) and
  ``add_2:0`` (parameters; the first three are the camera ``(s, tx, ty)``, then pose 6,
  shape 100, expression 50). We build the graph the same way, so the tensor names resolve
  exactly as they did for the original whatever the meta graph calls its input.
* Preprocessing: ``scale = 224 / max(h, w)`` unless the longer side is already 224; the
  image is resized to ``floor((h, w) · scale)`` (cv2 bilinear), edge-padded by 112, and the
  224×224 window centred on ``round(round((h, w) / 2) · actual_factor)`` is cut out; values
  ``2 · (pixel / 255 − 0.5)``. A 224×224 prep crop passes through unchanged.
* ``get_original``: ``tz = 50000 / (0.5 · 224 · s)``; the vertices are shifted by
  ``(tx, ty, tz)`` and projected with focal ``50000 / scale`` and principal point
  ``start_pt / scale`` (= (112, 112) for a 224 crop): pixel ``= f · (X + tx) / (Z + tz) + c``.
  We apply this exact perspective projection (OpenDR's ``ProjectPoints`` with ``rt = t = 0``),
  so the vertices land where the original's renderer drew them.
* The original re-imported the graph for every image (``tf.reset_default_graph()`` after each
  prediction); we import it once per process and feed batches.

Output in the ``mask_types`` frame: ``x``, ``y`` the projected pixel position, ``z = −(f/tz)·Z``
(pixels, larger nearer; RingNet's output is in OpenCV's camera frame, z away), triangles
from ``FLAME_sample.ply`` unchanged (they already have the ``mask_types`` winding in that
frame, see ``mask_render``), ``info["camera_distance"] = tz`` for the renderer's lights.

The checkpoint is user-supplied (registration at ringnet.is.tue.mpg.de); without it the
constructor raises the store's ``AssetError``, which says how to obtain it. RingNet does
not detect faces: it returns a mesh for any crop, so the cut (dlib's 81 landmarks in the
original) decides whether there is one face.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmark.assets import AssetStore, sha256_file
from benchmark.device import (
    check_device,
    check_session_device,
    onnx_providers,
    onnx_session_options,
)
from benchmark.errors import AssetError, DeviceError, DmbenchError
from benchmark.imageio import write_bytes_atomic
from benchmark.meshes import read_ply
from benchmark.pipeline.mask.types import (
    RECONSTRUCTORS,
    FaceMesh,
    MaskFailure,
    Reconstructor,
)

ASSET = "ringnet"
CHECKPOINT = "ring_6_68641"
ONNX_FILE = f"{CHECKPOINT}.onnx"
ONNX_RECORD = f"{CHECKPOINT}.onnx.json"
INPUT_PLACEHOLDER = "input_images"  # created before the import, as run_RingNet.py does
INPUT_TENSOR = "input_images_1:0"
PARAMETERS_TENSOR = "add_2:0"
VERTICES_TENSOR = "Flamenetnormal_2/Add_9:0"
IMG_SIZE = 224
FOCAL = 50000.0  # get_original's flength
CAMERA_PARAMS = 3  # (s, tx, ty) lead the parameter vector
DEFAULT_BATCH = 16
CONVERSION_ATOL = 1e-4  # metres (≈ 0.06 px at a prep crop's scale): TF vs ONNX vertices


@dataclass(frozen=True)
class CropTransform:
    """What ``scale_and_crop`` did to the input (its ``proc_param``)."""

    scale: float
    start: tuple[int, int]  # (x, y) of the 224 window in the scaled, unpadded image


def preprocess(image: np.ndarray) -> tuple[np.ndarray, CropTransform]:
    """RGB uint8 image → the 224×224 float32 network input in [−1, 1], and the transform."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise MaskFailure(f"RingNet needs an RGB image, got shape {image.shape}")
    h, w = image.shape[:2]
    scale = 1.0 if max(h, w) == IMG_SIZE else IMG_SIZE / max(h, w)
    new_h, new_w = (int(v) for v in np.floor(np.array([h, w]) * scale))
    if min(new_h, new_w) < 1:
        raise MaskFailure(f"image {w}x{h} too elongated to scale its longer side to {IMG_SIZE}")
    scaled = image if (new_h, new_w) == (h, w) else cv2.resize(image, (new_w, new_h))
    factor = np.array([new_w / w, new_h / h])  # (x, y)
    centre = np.round(np.array([h, w]) / 2).astype(int)[::-1]  # (x, y), numpy's rounding
    start = np.round(centre * factor).astype(int)
    margin = IMG_SIZE // 2
    padded = np.pad(scaled, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    x0, y0 = int(start[0]), int(start[1])  # the window starts at centre + margin - margin
    crop = padded[y0 : y0 + IMG_SIZE, x0 : x0 + IMG_SIZE]
    values = (2.0 * (crop / 255.0 - 0.5)).astype(np.float32)
    return values, CropTransform(scale, (x0, y0))


def to_image_frame(
    vertices: np.ndarray, camera: np.ndarray, transform: CropTransform
) -> tuple[np.ndarray, float]:
    """RingNet's vertices and camera → ``mask_types`` vertices of the input image, and tz."""
    s, tx, ty = (float(c) for c in camera[:CAMERA_PARAMS])
    if not np.isfinite([s, tx, ty]).all() or s <= 0:
        raise MaskFailure(f"RingNet camera is unusable: scale {s!r}, translation ({tx!r}, {ty!r})")
    tz = FOCAL / (0.5 * IMG_SIZE * s)
    undo = 1.0 / transform.scale
    focal = FOCAL * undo
    principal = np.asarray(transform.start, dtype=np.float64) * undo
    v = np.asarray(vertices, dtype=np.float64)
    depth = v[:, 2] + tz
    if (depth <= 0).any():
        raise MaskFailure("RingNet mesh reaches behind the camera")
    x = focal * (v[:, 0] + tx) / depth + principal[0]
    y = focal * (v[:, 1] + ty) / depth + principal[1]
    z = -(focal / tz) * v[:, 2]
    return np.column_stack((x, y, z)), tz


def import_tensorflow() -> Any:
    """TensorFlow, quietly, or one clear error naming the extra to install."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise DmbenchError(
            f"the ringnet reconstructor needs TensorFlow 2 ({exc}): pip install "
            "'dmbench[ringnet]' (CPU) or 'dmbench[ringnet-gpu]' (CUDA); or convert the "
            "checkpoint once to ONNX elsewhere and use the ringnet-onnx backend"
        ) from exc
    tf.get_logger().setLevel("ERROR")  # tf.compat.v1 deprecation notices on every load
    return tf


def checkpoint_prefix(store: AssetStore) -> Path:
    """``<folder>/ring_6_68641`` after verifying all three checkpoint files."""
    paths = [store.file(ASSET, CHECKPOINT + s) for s in (".meta", ".index", ".data-00000-of-00001")]
    if len({p.parent for p in paths}) != 1:
        raise AssetError(
            f"the RingNet checkpoint files are in different folders ({', '.join(map(str, paths))});"
            " TensorFlow needs them side by side: run `dmbench assets import ringnet <folder>`"
        )
    return paths[0].with_name(CHECKPOINT)


class _BatchedRunner:
    """Feeds any number of crops to a network whose batch may be fixed (padded to it)."""

    fixed_batch: int | None
    batch_size: int

    def _run(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vertices B×V×3, parameters B×P) for a B×224×224×3 float32 batch."""
        step = self.fixed_batch or self.batch_size
        verts, params = [], []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            n = len(chunk)
            if self.fixed_batch and n < self.fixed_batch:
                pad = np.repeat(chunk[-1:], self.fixed_batch - n, axis=0)
                chunk = np.concatenate([chunk, pad])
            v, p = self._run(chunk)
            verts.append(v[:n])
            params.append(p[:n])
        return np.concatenate(verts), np.concatenate(params)


class TensorFlowRunner(_BatchedRunner):
    """The checkpoint in one ``tf.compat.v1`` session, imported once."""

    def __init__(self, prefix: Path, device: str = "cpu", batch_size: int = DEFAULT_BATCH) -> None:
        tf = import_tensorflow()
        from google.protobuf.message import DecodeError

        v1 = tf.compat.v1
        if check_device(device) == "cuda" and not tf.config.list_physical_devices("GPU"):
            raise DeviceError(
                "device 'cuda' requested but TensorFlow sees no GPU; install "
                "'dmbench[ringnet-gpu]' (tensorflow[and-cuda]) on a machine with CUDA, or "
                "use --device cpu"
            )
        self.graph = tf.Graph()
        with self.graph.as_default():
            v1.placeholder(tf.float32, (None, IMG_SIZE, IMG_SIZE, 3), name=INPUT_PLACEHOLDER)
            try:
                saver = v1.train.import_meta_graph(f"{prefix}.meta", clear_devices=True)
                self.inputs = self.graph.get_tensor_by_name(INPUT_TENSOR)
                self.outputs = [
                    self.graph.get_tensor_by_name(name)
                    for name in (VERTICES_TENSOR, PARAMETERS_TENSOR)
                ]
            except (KeyError, ValueError, OSError, DecodeError) as exc:
                raise AssetError(f"{prefix}.meta is not the RingNet graph: {exc}") from exc
        config = v1.ConfigProto(device_count={"GPU": 0} if device == "cpu" else {})
        config.gpu_options.allow_growth = True
        self.session = v1.Session(graph=self.graph, config=config)
        if saver is None:
            raise AssetError(f"{prefix}.meta holds no variables to restore: not RingNet")
        with self.graph.as_default():
            try:
                saver.restore(self.session, str(prefix))
            except (tf.errors.OpError, ValueError) as exc:
                raise AssetError(f"{prefix}: the checkpoint does not restore: {exc}") from exc
        dim = self.inputs.shape[0]
        self.fixed_batch = int(dim) if dim is not None else None
        self.batch_size = max(1, int(batch_size))
        self.device = device

    def _run(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v, p = self.session.run(self.outputs, {self.inputs: chunk})
        return v, p

    def frozen_graph_def(self) -> Any:
        """The graph with variables as constants, cut to what the two outputs need."""
        tf = import_tensorflow()
        nodes = [name.split(":")[0] for name in (VERTICES_TENSOR, PARAMETERS_TENSOR)]
        with self.graph.as_default():
            return tf.compat.v1.graph_util.convert_variables_to_constants(
                self.session, self.graph.as_graph_def(), nodes
            )


class OnnxRunner(_BatchedRunner):
    """The converted model on onnxruntime (CPU, or CUDA with onnxruntime-gpu)."""

    def __init__(self, path: Path, device: str = "cpu", batch_size: int = DEFAULT_BATCH) -> None:
        import onnxruntime as ort

        options = onnx_session_options()
        self.session = ort.InferenceSession(str(path), options, providers=onnx_providers(device))
        check_session_device(self.session, device, f"ringnet-onnx ({path.name})")
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        dim = inputs[0].shape[0]
        self.fixed_batch = dim if isinstance(dim, int) and dim > 0 else None
        names = [o.name for o in self.session.get_outputs()]
        missing = {VERTICES_TENSOR, PARAMETERS_TENSOR} - set(names)
        if missing:
            raise AssetError(f"{path}: not a converted RingNet model (no output {missing})")
        self.output_names = [VERTICES_TENSOR, PARAMETERS_TENSOR]
        self.batch_size = max(1, int(batch_size))
        self.device = device

    def _run(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v, p = self.session.run(self.output_names, {self.input_name: chunk})
        return v, p


def converted_paths(store: AssetStore) -> list[Path]:
    """Where a converted model may be (asset folders first, then the cache)."""
    return [folder / ONNX_FILE for folder in store.candidate_dirs(store[ASSET])]


def probe_images(n: int = 3, seed: int = 0) -> np.ndarray:
    """Deterministic network inputs for the TF↔ONNX equality check (smooth noise)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(-1, 1, (n, 14, 14, 3)).astype(np.float32)
    return np.stack([cv2.resize(img, (IMG_SIZE, IMG_SIZE)) for img in small])


def export_onnx(runner: TensorFlowRunner, path: Path, opset: int = 13) -> Path:
    """Write the runner's frozen graph as ONNX with tf2onnx, tensor names kept."""
    import tf2onnx

    model, _ = tf2onnx.convert.from_graph_def(
        runner.frozen_graph_def(),
        input_names=[INPUT_TENSOR],
        output_names=[VERTICES_TENSOR, PARAMETERS_TENSOR],
        opset=opset,
    )
    Path(path).write_bytes(model.SerializeToString())
    return Path(path)


def convert_to_onnx(
    store: AssetStore, out_dir: Path | None = None, opset: int = 13
) -> tuple[Path, dict]:
    """Convert the checkpoint once with tf2onnx; refuse the result unless it agrees with TF."""
    try:
        import tf2onnx
    except ImportError as exc:
        raise DmbenchError(
            f"converting RingNet needs tf2onnx ({exc}): pip install 'dmbench[ringnet]'"
        ) from exc
    import tensorflow as tf

    prefix = checkpoint_prefix(store)
    runner = TensorFlowRunner(prefix, "cpu")
    out_dir = Path(out_dir) if out_dir is not None else store.cache_dir / ASSET
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ONNX_FILE
    tmp = target.with_name(f"{ONNX_FILE}.part{os.getpid()}")
    export_onnx(runner, tmp, opset)
    try:
        probe = probe_images(3)
        tf_verts, tf_params = runner(probe)
        onnx_verts, onnx_params = OnnxRunner(tmp, "cpu")(probe)
        diff = float(np.abs(tf_verts - onnx_verts).max())
        diff_params = float(np.abs(tf_params - onnx_params).max())
        # `not <=` also refuses NaN; the parameters carry the camera that places the mesh.
        if not (diff <= CONVERSION_ATOL and diff_params <= CONVERSION_ATOL):
            raise DmbenchError(
                f"the ONNX conversion of {prefix} differs from TensorFlow by {diff:.2e} m "
                f"(vertices) and {diff_params:.2e} (parameters), bound {CONVERSION_ATOL:.0e}; "
                "not kept"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    record = {
        "onnx_sha256": sha256_file(target),
        "source_sha256": store.sha256_of(ASSET),
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "opset": opset,
        "max_abs_vertex_diff_m": diff,
        "max_abs_parameter_diff": diff_params,
    }
    write_bytes_atomic(out_dir / ONNX_RECORD, json.dumps(record, indent=1).encode())
    return target, record


def find_converted(store: AssetStore) -> tuple[Path, dict]:
    """The converted model and its conversion record, checked; else how to make it."""
    for path in converted_paths(store):
        record_path = path.with_name(ONNX_RECORD)
        if not path.is_file():
            continue
        if not record_path.is_file():
            raise AssetError(f"{path}: no conversion record {ONNX_RECORD} beside it; convert again")
        try:
            record = json.loads(record_path.read_text())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise AssetError(
                f"{record_path}: unreadable conversion record ({exc}); convert again"
            ) from exc
        if sha256_file(path) != record.get("onnx_sha256"):
            raise AssetError(
                f"{path}: sha256 does not match its conversion record; run "
                "`dmbench assets convert ringnet` again"
            )
        if store.present(ASSET) and record.get("source_sha256") != store.sha256_of(ASSET):
            raise AssetError(
                f"{path} was converted from another checkpoint than the 'ringnet' asset now "
                "in the store; run `dmbench assets convert ringnet` again"
            )
        return path, record
    places = ", ".join(map(str, converted_paths(store)))
    raise AssetError(
        f"no converted RingNet model ({ONNX_FILE}) in {places}. Obtain the checkpoint "
        "(asset 'ringnet'), then run `dmbench assets convert ringnet` once (needs "
        "'dmbench[ringnet]'); the ringnet-onnx backend then needs only onnxruntime.\n"
        + store[ASSET].how_to_obtain()
    )


class _RingNetReconstructor(Reconstructor):
    """FLAME mesh from a RingNet runner; shared by the TensorFlow and ONNX backends."""

    runner: TensorFlowRunner | OnnxRunner

    def _load_topology(self, store: AssetStore) -> None:
        self.triangles = read_ply(store.file("flame-sample", "FLAME_sample.ply")).triangles
        self.n_vertices = int(self.triangles.max()) + 1
        if self.runner.fixed_batch is None:
            try:  # a graph may declare a free batch yet hard-code 1 inside (tiled constants)
                self.runner(probe_images(2))
            except Exception:
                self.runner.fixed_batch = 1
        verts, params = self.runner(probe_images(1))
        if verts.shape[1:] != (self.n_vertices, 3) or params.shape[1] < CAMERA_PARAMS:
            raise AssetError(
                f"the RingNet model gives vertices {verts.shape[1:]} and parameters "
                f"{params.shape[1:]}; expected ({self.n_vertices}, 3) (FLAME) and a camera"
            )

    def reconstruct(self, crop: np.ndarray) -> FaceMesh:
        result = self.reconstruct_batch([crop])[0]
        if isinstance(result, MaskFailure):
            raise result
        return result

    def reconstruct_batch(self, crops: list[np.ndarray]) -> list[FaceMesh | MaskFailure]:
        """One network call for many crops; a crop that cannot be used gets its failure."""
        results: list[FaceMesh | MaskFailure | None] = [None] * len(crops)
        inputs, transforms, where = [], [], []
        for i, crop in enumerate(crops):
            try:
                values, transform = preprocess(crop)
            except MaskFailure as exc:
                results[i] = exc
                continue
            inputs.append(values)
            transforms.append(transform)
            where.append(i)
        if inputs:
            verts, params = self.runner(np.stack(inputs))
            for i, v, p, transform in zip(where, verts, params, transforms, strict=True):
                try:
                    points, tz = to_image_frame(v, p, transform)
                except MaskFailure as exc:
                    results[i] = exc
                    continue
                info = {"camera_distance": tz, "ringnet_camera": [float(c) for c in p[:3]]}
                results[i] = FaceMesh(points, self.triangles, info=info)
        return results  # type: ignore[return-value]


@RECONSTRUCTORS.register("ringnet")
class RingNetReconstructor(_RingNetReconstructor):
    """RingNet ``ring_6_68641`` on TensorFlow 2 (``tf.compat.v1`` graph mode), CPU or CUDA."""

    assets = (ASSET, "flame-sample")

    def __init__(
        self, store: AssetStore, device: str = "cpu", batch_size: int = DEFAULT_BATCH
    ) -> None:
        self.runner = TensorFlowRunner(checkpoint_prefix(store), device, batch_size)
        self._load_topology(store)


@RECONSTRUCTORS.register("ringnet-onnx")
class RingNetOnnxReconstructor(_RingNetReconstructor):
    """RingNet converted once to ONNX, on onnxruntime (CPU, or CUDA with onnxruntime-gpu)."""

    assets = ("flame-sample",)

    def __init__(
        self, store: AssetStore, device: str = "cpu", batch_size: int = DEFAULT_BATCH
    ) -> None:
        path, record = find_converted(store)
        self.runner = OnnxRunner(path, device, batch_size)
        self._onnx_sha256 = str(record["onnx_sha256"])
        self._load_topology(store)

    def derived_sha256(self) -> dict[str, str]:
        """The converted file is not a manifest asset: its hash keys the cache instead."""
        return {ONNX_FILE: self._onnx_sha256}
