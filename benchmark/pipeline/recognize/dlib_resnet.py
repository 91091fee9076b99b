"""``dlib-resnet``: dlib's HOG detector, 5-point landmarks and ResNet-29 face descriptor.

The classic dlib pipeline (as in dlib's ``face_recognition.py`` example and the
``face_recognition`` package), with the model files of ``face_recognition_models``
resolved and sha256-verified through the asset store:

* detection: ``dlib.get_frontal_face_detector()`` upsampled once (as the prep and mask
  stages' dlib code), run as ``detector.run(image, 1, 0)`` to get each face's score at the
  detector's own threshold (0). When several faces are found the highest-scoring one is
  embedded (the original's InsightFace path takes its detector's first face, which is also
  its best-scoring one); none found means no embedding.
* landmarks: ``shape_predictor_5_face_landmarks.dat``.
* descriptor: ``face_recognition_model_v1(dlib_face_recognition_resnet_model_v1.dat)``,
  ``compute_face_descriptor`` with dlib's defaults (no jitter, padding 0.25), through its
  batch form (a list of images with their detections) ``batch_size`` images at a time.

Vectors are dlib's raw 128-d descriptors (not normalised), compared with the Euclidean
distance, dlib's own metric: two descriptors closer than 0.6 are the same person in dlib's
documentation (99.38 % on LFW). CPU only, unless dlib itself was built with CUDA.
"""

from __future__ import annotations

import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import check_device
from benchmark.errors import DeviceError, DmbenchError
from benchmark.pipeline.backend import LoadsOnFirstUse
from benchmark.pipeline.common.landmarks_dlib import as_uint8_image
from benchmark.pipeline.recognize.types import (
    EMBEDDERS,
    Embedder,
    Embedding,
    faces_on_photos,
)

ASSET = "dlib-face-recognition-models"
PREDICTOR_5 = "models/shape_predictor_5_face_landmarks.dat"
RESNET = "models/dlib_face_recognition_resnet_model_v1.dat"
UPSAMPLE = 1
SAME_PERSON_DISTANCE = 0.6  # dlib's documented threshold


class DlibFaces(LoadsOnFirstUse):
    """What both dlib embedders share: dlib's HOG detector and 5-point landmarks on the
    image (or on its photo), and a descriptor of the face at those landmarks."""

    assets = (ASSET,)
    aligns_on_photo = True
    metric = "euclidean"
    dim = 128

    def __init__(self, store: AssetStore, batch_size: int) -> None:
        self._dlib = import_dlib()
        self.batch_size = max(1, int(batch_size))
        self._predictor_path = store.file(ASSET, PREDICTOR_5)

    models = ("detector", "predictor")

    def load_models(self) -> None:
        self.detector = self._dlib.get_frontal_face_detector()
        self.predictor = self._dlib.shape_predictor(str(self._predictor_path))

    def best_face(self, rgb: np.ndarray):
        """(rectangle, score) of the highest-scoring HOG detection, or None."""
        rects, scores, _ = self.detector.run(rgb, UPSAMPLE, 0.0)
        if len(rects) == 0:
            return None
        best = int(np.argmax(scores))
        return rects[best], float(scores[best])

    def _shape(self, rgb: np.ndarray):
        """(5-point shape, score) of the best face, or the Embedding saying there is none."""
        found = self.best_face(rgb)
        if found is None:
            return Embedding(None, "no face detected (dlib HOG found none)")
        rect, score = found
        return self.predictor(rgb, rect), score

    def descriptors(self, images: list[np.ndarray], shapes: list) -> list[np.ndarray]:
        """128-d descriptors of RGB images, each at its 5-point shape."""
        raise NotImplementedError

    def _describe(self, images: list[np.ndarray], shapes: list) -> list[Embedding]:
        """Descriptors of each image at its shape (a failure Embedding passes through)."""
        results: list[Embedding | None] = [None] * len(images)
        todo = []
        for i, (rgb, shape) in enumerate(zip(images, shapes, strict=True)):
            if isinstance(shape, Embedding):
                results[i] = shape
            else:
                todo.append((i, rgb, shape))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            vectors = self.descriptors([rgb for _, rgb, _ in chunk], [s[0] for _, _, s in chunk])
            for (i, _, (_, score)), vector in zip(chunk, vectors, strict=True):
                results[i] = Embedding(np.asarray(vector, dtype=np.float32), "", score)
        return results  # type: ignore[return-value]

    def embed(self, images: list[np.ndarray]) -> list[Embedding]:
        rgbs = [_rgb(image) for image in images]
        return self._describe(rgbs, [self._shape(rgb) for rgb in rgbs])

    def embed_aligned(self, images: list[np.ndarray], photos: list[np.ndarray]) -> list[Embedding]:
        """Each image described at the 5 landmarks dlib finds on its photo (same frame)."""
        shapes = faces_on_photos([_rgb(photo) for photo in photos], self._shape)
        return self._describe([_rgb(image) for image in images], shapes)


def import_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise DmbenchError(
            f"the dlib embedders need the dlib package ({exc}): "
            "pip install 'dlib-bin==20.0.1.post1'"
        ) from exc
    return dlib


@EMBEDDERS.register("dlib-resnet")
class DlibResNetEmbedder(DlibFaces, Embedder):
    """The reference: dlib's own ``face_recognition_model_v1``."""

    name = "dlib-resnet"

    def __init__(self, store: AssetStore, device: str = "cpu", batch_size: int = 32) -> None:
        check_device(device)
        super().__init__(store, batch_size)
        if device == "cuda" and not getattr(self._dlib, "DLIB_USE_CUDA", False):
            raise DeviceError(
                "device 'cuda' requested for dlib-resnet, but this dlib was built without "
                "CUDA (the dlib-bin wheels are CPU-only). Run it with --device cpu, use "
                "dlib-resnet-onnx (the same network on onnxruntime, which has a CUDA path), "
                "or build dlib with CUDA."
            )
        self.device = device
        self._model_path = store.file(ASSET, RESNET)

    models = (*DlibFaces.models, "model")

    def load_models(self) -> None:
        super().load_models()
        self.model = self._dlib.face_recognition_model_v1(str(self._model_path))

    def descriptors(self, images: list[np.ndarray], shapes: list) -> list[np.ndarray]:
        dlib = self._dlib
        per_image = []
        for shape in shapes:
            detections = dlib.full_object_detections()
            detections.append(shape)
            per_image.append(detections)
        found = self.model.compute_face_descriptor(images, per_image)
        return [np.asarray(one[0], dtype=np.float32) for one in found]


def _rgb(image: np.ndarray) -> np.ndarray:
    """A C-contiguous RGB uint8 array (grey images repeated to three channels)."""
    rgb = as_uint8_image(image)
    if rgb.ndim == 2:
        rgb = np.ascontiguousarray(np.repeat(rgb[..., None], 3, axis=2))
    return rgb
