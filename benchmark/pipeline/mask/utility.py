"""What an anonymized image keeps for its purpose, beside what it hides.

The digital mask is meant to keep facial geometry and expression for clinicians. For each
anonymized crop against the prep crop it came from, the stage measures:

* **face still detected** — the prep detector's best score on the anonymized image passes
  the detector's calibrated one-face threshold (``rules.py``): a face pipeline downstream
  would still find a face;
* **landmark error (NME)** — mean distance between the landmarks found on the photo and on
  the anonymized image, over the photo's outer-eye-corner distance, with two landmark
  models: MediaPipe's 468-point mesh (it finds its own face, so it can lose it) and dlib's
  68 points, placed in the photo's detected face box on both images (a regressor given the
  box: it always answers). Each favours the reconstruction built on it (``mediapipe-mesh``
  on MediaPipe's mesh, ``sfm-eos`` on dlib's 68 points): both are reported;
* **head-pose difference** — |Δyaw|, |Δpitch|, |Δroll| in degrees, from the prep pose
  backend, in the photo's face box on both images.

Each crop's measures are cached like every stage's results (keyed by the photo's and the
anonymized image's pixels, the backends and their assets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.assets import AssetStore
from benchmark.cache import Cache
from benchmark.device import DevicePlan
from benchmark.geometry import detection_to_xywh
from benchmark.pipeline.common.landmarks_dlib import DlibLandmarker
from benchmark.pipeline.common.mediapipe_mesh import MediaPipeFaceMesh
from benchmark.pipeline.prep.rules import rule_for
from benchmark.pipeline.prep.types import DETECTORS, POSES, FaceDetector, PoseEstimator
from benchmark.pipeline.stage_base import Stage, create_backends

STAGE = "utility"
DLIB_68 = ("dlib-face-recognition-models", "models/shape_predictor_68_face_landmarks.dat")
MEDIAPIPE_EYES = (33, 263)  # outer eye corners of the 468-point mesh
DLIB_EYES = (36, 45)  # outer eye corners of dlib's 68 points
MEASURES = ("detected", "nme_mediapipe", "nme_dlib68", "yaw_diff", "pitch_diff", "roll_diff")


@dataclass(frozen=True)
class UtilityParams:
    version: int = 1  # of the measures' definitions above


class UtilityStage(Stage):
    """Utility measures of (photo, anonymized image) pairs, through the cache."""

    name = STAGE
    upstream = ("benchmark.pipeline.prep", "benchmark.pipeline.mask")

    def __init__(
        self,
        detector: FaceDetector,
        pose: PoseEstimator,
        store: AssetStore,
        device: str = "cpu",
        params: UtilityParams | None = None,
        cache: Cache | None = None,
    ) -> None:
        super().__init__(
            {"detector": detector, "pose": pose}, params or UtilityParams(), cache, store
        )
        self.rule = rule_for(detector.name)
        self.mesh = MediaPipeFaceMesh(store, "cpu", max_faces=1)
        self.dlib = DlibLandmarker(store.file(*DLIB_68), n_points=68)
        self.asset_sha256 |= {
            name: store.sha256_of(name) for name in (DLIB_68[0], "mediapipe-face-models")
        }

    @classmethod
    def from_names(
        cls,
        detector: str | None = None,
        pose: str | None = None,
        *,
        store: AssetStore | None = None,
        device: str | DevicePlan = "cpu",
        params: UtilityParams | None = None,
        cache: Cache | None = None,
    ) -> UtilityStage:
        store = store or AssetStore()
        made = create_backends(
            {"detector": (DETECTORS, detector), "pose": (POSES, pose)}, store, device
        )
        stage = cls(made["detector"], made["pose"], store, "cpu", params, cache)
        return stage.remember(store, device)

    def look_up(self, photo_sha256: str, anonymized_sha256: str) -> dict[str, Any] | str:
        """The pair's measures from the cache, or its cache key on a miss."""
        pair = hashlib.sha256(f"{photo_sha256}|{anonymized_sha256}".encode()).hexdigest()
        key = self.key(pair)
        entry = self.cache.get(STAGE, key)
        return key if entry is None else entry.record

    def compute_pairs(
        self, items: list[tuple[np.ndarray, np.ndarray, str]]
    ) -> list[dict[str, Any]]:
        """Measure ``(photo, anonymized, cache key)`` items and store them (what an
        executor's worker runs)."""
        self.load_models()
        out = []
        for photo, anonymized, key in items:
            measured = self.measure(photo, anonymized)
            self.cache.put(STAGE, key, measured, code=self.code)
            out.append(measured)
        return out

    def measure(self, photo: np.ndarray, anonymized: np.ndarray) -> dict[str, Any]:
        found = self.detector_best(photo)
        if found is None:  # no face on the photo itself: nothing to compare with
            return {"reference": False} | dict.fromkeys(MEASURES)
        box = detection_to_xywh(found.box)  # as prep gives it to the pose backend
        best = self.detector_best(anonymized)
        out: dict[str, Any] = {
            "reference": True,
            "detected": best is not None and best.score > self.rule.min_best_score,
            "nme_mediapipe": _nme(
                self._mesh_points(photo), self._mesh_points(anonymized), MEDIAPIPE_EYES
            ),
            "nme_dlib68": _nme(
                self.dlib.landmarks_in(photo, found.box),
                self.dlib.landmarks_in(anonymized, found.box),
                DLIB_EYES,
            ),
        }
        before, after = (
            self.backends["pose"].estimate(image, box) for image in (photo, anonymized)
        )
        for angle in ("yaw", "pitch", "roll"):
            out[f"{angle}_diff"] = (
                None
                if before is None or after is None
                else abs(getattr(after, angle) - getattr(before, angle))
            )
        return out

    def detector_best(self, image: np.ndarray):
        found = self.backends["detector"].detect(image)
        return found[0] if found else None

    def _mesh_points(self, image: np.ndarray) -> np.ndarray | None:
        faces = self.mesh.faces(image)
        return faces[0][:, :2] if faces else None


def _nme(
    reference: np.ndarray | None, other: np.ndarray | None, eyes: tuple[int, int]
) -> float | None:
    """Mean landmark distance over the reference's outer-eye-corner distance (None when
    either image has no landmarks)."""
    if reference is None or other is None:
        return None
    scale = float(np.linalg.norm(reference[eyes[0]] - reference[eyes[1]]))
    if scale <= 0:
        return None
    return float(np.linalg.norm(other - reference, axis=1).mean() / scale)


def summarize(measures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One anonymizer's utility over its measured crops: rates and means (medians for the
    landmark errors), each over the crops where it could be measured, with those counts."""
    usable = [m for m in measures if m.get("reference")]

    def values(name: str) -> list[float]:
        return [float(m[name]) for m in usable if m.get(name) is not None]

    out: dict[str, Any] = {"crops": len(measures), "with_reference_face": len(usable)}
    out["detected_rate"] = _mean(values("detected"))
    for name in ("nme_mediapipe", "nme_dlib68"):
        found = values(name)
        out[f"{name}_mean"], out[f"{name}_median"] = _mean(found), _median(found)
        out[f"{name}_n"] = len(found)
    for name in ("yaw_diff", "pitch_diff", "roll_diff"):
        out[f"{name}_mean"] = _mean(values(name))
    out["pose_n"] = len(values("yaw_diff"))
    return out


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None
