"""``insightface-buffalo-l``: the original's embedder (SCRFD-10G at 640×640 + ArcFace R50).

The original ran ``FaceAnalysis('buffalo_l')`` with ``prepare(ctx_id=0, det_size=(640,
640))`` and kept ``faces[0].normed_embedding``. This backend runs the same two models of
that pack, through the same ``insightface`` classes, but loaded OFFLINE from the
user-supplied, store-verified files: ``insightface.model_zoo.get_model(<path>.onnx,
providers=...)`` for ``det_10g.onnx`` and ``w600k_r50.onnx`` (never ``FaceAnalysis``,
whose constructor downloads the pack when ``~/.insightface`` lacks it; the other three
models of the pack — landmarks, gender/age — never touch the embedding).

* detection: SCRFD on the image letterboxed into 640×640, score ≥ 0.5 (``FaceAnalysis``'s
  default ``det_thresh``), NMS 0.4; faces come back best score first and the FIRST one is
  embedded, as in the original. No face: no embedding.
* embedding: ``face_align.norm_crop`` of the 5 SCRFD keypoints to 112×112 and the ArcFace
  ONNX (``ArcFaceONNX.get_feat``, mean 127.5, std 127.5), ``batch_size`` crops per call;
  the 512-d vector is L2-normalised (``normed_embedding``), compared with the cosine.
* providers come from ``onnx_providers(device)`` and are passed explicitly (insightface's
  own default asks for CUDA first and silently falls back).

``insightface`` is imported lazily (extra ``dmbench[insightface]``). Importing it imports
albumentations, which asks PyPI for updates unless ``NO_ALBUMENTATIONS_UPDATE`` is set; it
is set (when unset) before the import, so nothing here touches the network.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import check_device, check_session_device, onnx_providers
from benchmark.errors import AssetError, DmbenchError
from benchmark.pipeline.recognize.sface import as_bgr
from benchmark.pipeline.recognize.types import EMBEDDERS, Embedder, Embedding

ASSET = "insightface-buffalo-l"
DETECTOR_FILE = "det_10g.onnx"
RECOGNIZER_FILE = "w600k_r50.onnx"
DET_SIZE = (640, 640)
DET_THRESH = 0.5


def import_insightface():
    """The ``insightface`` package, imported without network access, or a DmbenchError."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        import insightface
        from insightface.model_zoo import model_zoo  # noqa: F401 - fails early if broken
        from insightface.utils import face_align  # noqa: F401
    except ImportError as exc:
        raise DmbenchError(
            f"the insightface-buffalo-l embedder needs the insightface package ({exc}): "
            "pip install 'dmbench[insightface]'"
        ) from exc
    return insightface


@EMBEDDERS.register(ASSET)
class InsightFaceBuffaloL(Embedder):
    name = ASSET
    assets = (ASSET,)
    metric = "cosine"
    dim = 512

    def __init__(self, store: AssetStore, device: str = "cpu", batch_size: int = 32) -> None:
        check_device(device)
        providers = onnx_providers(device)
        insightface = import_insightface()  # the missing package first: it is a pip away
        det_path = store.file(ASSET, DETECTOR_FILE)
        rec_path = store.file(ASSET, RECOGNIZER_FILE)
        from insightface.utils import face_align

        self.device = device
        self.batch_size = max(1, int(batch_size))
        self._norm_crop = face_align.norm_crop
        ctx_id = 0 if device == "cuda" else -1
        # get_model prints the providers it applied; keep the benchmark's output clean.
        with contextlib.redirect_stdout(io.StringIO()):
            self.detector = insightface.model_zoo.get_model(str(det_path), providers=providers)
            self.model = insightface.model_zoo.get_model(str(rec_path), providers=providers)
        for model, path, task in (
            (self.detector, det_path, "detection"),
            (self.model, rec_path, "recognition"),
        ):
            if getattr(model, "taskname", None) != task:
                raise AssetError(f"{path}: insightface does not load it as a {task} model")
            check_session_device(model.session, device, f"insightface-buffalo-l ({path.name})")
        self.detector.prepare(ctx_id, input_size=DET_SIZE, det_thresh=DET_THRESH)
        self.model.prepare(ctx_id)

    def embed(self, images: list[np.ndarray]) -> list[Embedding]:
        results: list[Embedding | None] = [None] * len(images)
        crops, where, scores = [], [], []
        for i, image in enumerate(images):
            bgr = as_bgr(image)
            boxes, keypoints = self.detector.detect(bgr, max_num=0, metric="default")
            if boxes.shape[0] == 0 or keypoints is None:
                results[i] = Embedding(None, "no face detected (SCRFD found none ≥ 0.5)")
                continue
            size = self.model.input_size[0]
            with warnings.catch_warnings():
                # insightface 0.7.3 calls SimilarityTransform.estimate, deprecated in
                # scikit-image 0.26 (removed in 2.2): a FutureWarning on every face.
                warnings.simplefilter("ignore", FutureWarning)
                crop = self._norm_crop(bgr, landmark=keypoints[0], image_size=size)
            crops.append(crop)
            where.append(i)
            scores.append(float(boxes[0, 4]))
        for start in range(0, len(crops), self.batch_size):
            feats = np.asarray(
                self.model.get_feat(crops[start : start + self.batch_size]), np.float32
            )
            feats = feats.reshape(feats.shape[0], -1)
            feats /= np.linalg.norm(feats, axis=1, keepdims=True)
            for k, vector in enumerate(feats):
                results[where[start + k]] = Embedding(vector, "", scores[start + k])
        return results  # type: ignore[return-value]
