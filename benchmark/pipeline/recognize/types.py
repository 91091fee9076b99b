"""Types and the protocol of face-recognition backends (the attacker's model).

As in the original, the face is detected on the very image being embedded — a photo,
an overlay or a mask — and an image on which the embedder's own detector finds no
face gets no embedding (counted, never guessed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from benchmark.pipeline.backend import Backend
from benchmark.pipeline.registry import BackendPath, Registry


@dataclass(frozen=True)
class Embedding:
    """One image's embedding, or why there is none."""

    vector: np.ndarray | None  # 1-D float32, L2-normalised for cosine backends
    reason: str = ""  # why vector is None ("no face detected", ...)
    det_score: float | None = None


class Embedder(Backend, Protocol):
    metric: ClassVar[str]  # "cosine" or "euclidean": how two vectors are compared
    dim: ClassVar[int]
    # Whether ``embed_aligned`` works: the "photo" alignment of every scenario needs it.
    aligns_on_photo: ClassVar[bool] = False

    def embed(self, images: list[np.ndarray]) -> list[Embedding]:
        """Detect, align and embed each RGB uint8 image (batched where the model allows)."""

    def embed_aligned(self, images: list[np.ndarray], photos: list[np.ndarray]) -> list[Embedding]:
        """Each image embedded with the face geometry found on its photo (the same 224×224
        frame), for backends that say ``aligns_on_photo = True``."""
        name = getattr(self, "name", type(self).__qualname__)  # a plug-in not yet registered
        raise NotImplementedError(f"{name} cannot align an image on its photo")


EMBEDDERS: Registry[Embedder] = Registry(
    "recognize.embedder",
    {
        "sface": "benchmark.pipeline.recognize.sface:SFaceEmbedder",
        "dlib-resnet": "benchmark.pipeline.recognize.dlib_resnet:DlibResNetEmbedder",
        "dlib-resnet-onnx": "benchmark.pipeline.recognize.dlib_resnet_onnx:DlibResNetOnnxEmbedder",
        "insightface-buffalo-l": BackendPath(
            "benchmark.pipeline.recognize.insightface_buffalo:InsightFaceBuffaloL",
            extra="insightface",
        ),
    },
    default="sface",
    protocol=Embedder,
)


def faces_on_photos(photos: list[np.ndarray], find: Callable[[np.ndarray], Any]) -> list[Any]:
    """``find`` (a backend's face geometry, or an Embedding saying why there is none) on each
    photo, once per distinct photo: every variant of a frame shares its photo. A photo
    without a face makes an Embedding that says so, for each image aligned on it."""
    found: dict[bytes, Any] = {}
    out = []
    for photo in photos:
        digest = hashlib.sha256(np.ascontiguousarray(photo).tobytes()).digest()
        if digest not in found:
            face = find(photo)
            if isinstance(face, Embedding):
                face = Embedding(None, f"on the photo: {face.reason}", face.det_score)
            found[digest] = face
        out.append(found[digest])
    return out


def similarity_matrix(queries: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    """(nq, ng) similarity, larger = more alike, in one matrix product.

    cosine: dot product of L2-normalised vectors. euclidean (dlib's own distance): the
    negated Euclidean distance, via ‖q‖² + ‖g‖² − 2 q·g.
    """
    queries = np.asarray(queries, dtype=np.float64)
    gallery = np.asarray(gallery, dtype=np.float64)
    if metric == "cosine":
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        return q @ g.T
    if metric == "euclidean":
        sq = (queries**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :] - 2 * queries @ gallery.T
        return -np.sqrt(np.maximum(sq, 0.0))
    raise ValueError(f"unknown metric {metric!r}")
