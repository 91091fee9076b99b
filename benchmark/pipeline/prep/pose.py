"""Head-pose backends for the prep stage.

* ``mediapipe-mesh`` (default): MediaPipe 0.10.21's bundled face mesh (468 points with
  relative depth) on a padded square around the face, rotated onto MediaPipe's
  canonical face model by least squares (Kabsch). Angles are converted to the sign
  conventions of the original's PFLD formulas (see ``Pose``), which
  ``test_prep_pose.py`` checks on rotated synthetic faces.
* ``pfld``: the original's PFLD-98 network (user-supplied checkpoint) and its
  yaw/pitch/roll formulas (``benchmark.pipeline.prep.pfld``).
"""

from __future__ import annotations

import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import check_device
from benchmark.geometry import square_box, square_patch
from benchmark.meshes import read_obj
from benchmark.pipeline.common.mediapipe_mesh import ASSETS as MEDIAPIPE_ASSETS
from benchmark.pipeline.common.mediapipe_mesh import MediaPipeFaceMesh
from benchmark.pipeline.prep.types import POSES, Pose, PoseEstimator

# MediaPipe face-mesh indices standing in for the WFLW-98 points the PFLD formulas
# use: 1/31 (face contour at eye height, image left/right), 51 (top of the nose
# bridge), 60/72 (outer eye corners, image left/right).
MEDIAPIPE_FOR_WFLW = {1: 127, 31: 356, 51: 168, 60: 33, 72: 263}


def kabsch_rotation(model: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Rotation R (3×3, det +1) minimising ‖R·model − observed‖ after centring both."""
    a = model - model.mean(axis=0)
    b = observed - observed.mean(axis=0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def pose_from_rotation(rotation: np.ndarray) -> Pose:
    """Yaw, pitch, roll in degrees from a rotation in a camera frame with x right, y up,
    z towards the viewer, with the PFLD formulas' signs: yaw > 0 when the nose points
    to the image's left, pitch > 0 when it points down, roll > 0 when the face's
    left-to-right axis tilts clockwise on screen."""
    nose = rotation[:, 2]
    right = rotation[:, 0]
    yaw = np.degrees(np.arctan2(-nose[0], nose[2]))
    pitch = np.degrees(np.arctan2(-nose[1], np.hypot(nose[0], nose[2])))
    roll = np.degrees(np.arctan2(-right[1], right[0]))
    return Pose(float(yaw), float(pitch), float(roll))


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Yaw about y, then pitch about x, then roll about z (applied to the model first).

    ``pose_from_rotation`` recovers yaw and pitch exactly, and roll exactly when
    yaw = pitch = 0 (its roll is the on-screen tilt of the eye line)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), np.sin(r), 0], [-np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


@POSES.register("mediapipe-mesh", default=True)
class MediaPipeMeshPose(PoseEstimator):
    """Face mesh → Kabsch fit to the canonical model → Euler angles."""

    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU

    name = "mediapipe-mesh"
    assets = (*MEDIAPIPE_ASSETS, "mediapipe-canonical-mesh")
    patch_size = 256
    context = 2.0  # the patch is this many face-box sizes wide, so the mesh's detector sees context

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        self.mesh = MediaPipeFaceMesh(store, device, max_faces=1)
        self.canonical = read_obj(store.file("mediapipe-canonical-mesh")).vertices

    def landmarks(self, rgb: np.ndarray, box_xywh: tuple[int, int, int, int]) -> np.ndarray | None:
        """468×3 landmarks in image pixels (z in the same scale, larger z nearer the camera)."""
        height, width = rgb.shape[:2]
        square = square_box(box_xywh, width, height, scale=self.context)
        patch = square_patch(rgb, square, self.patch_size)
        faces = self.mesh.faces(patch)
        if not faces:
            return None
        points = faces[0] * (square.size / self.patch_size)
        points[:, 0] += square.x1
        points[:, 1] += square.y1
        return points

    def estimate(self, rgb: np.ndarray, box_xywh: tuple[int, int, int, int]) -> Pose | None:
        points = self.landmarks(rgb, box_xywh)
        if points is None:
            return None
        return pose_from_landmarks3d(points, self.canonical)


def pose_from_landmarks3d(points: np.ndarray, canonical: np.ndarray) -> Pose:
    """Pose of image-space landmarks (y down, larger z nearer) w.r.t. the canonical model."""
    observed = points * np.array([1.0, -1.0, 1.0])  # to x right, y up, z towards viewer
    return pose_from_rotation(kabsch_rotation(canonical[: len(observed)], observed))


@POSES.register("pfld")
class PfldPose(PoseEstimator):
    """The original's PFLD-98 landmarks and yaw/pitch/roll formulas (user-supplied weights)."""

    name = "pfld"
    assets = ("pfld",)

    def __init__(self, store: AssetStore, device: str = "cpu") -> None:
        from benchmark.pipeline.prep.pfld import import_torch, load_pfld

        import_torch()  # the missing package first: it is a pip away
        self.landmarker = load_pfld(store.file("pfld"), device=check_device(device))

    def estimate(self, rgb: np.ndarray, box_xywh: tuple[int, int, int, int]) -> Pose | None:
        from benchmark.pipeline.prep.pfld import pose_from_wflw98, square_crop_112

        x, y, w, h = box_xywh
        crop, _ = square_crop_112(rgb, (x, y, x + w, y + h))
        landmarks = self.landmarker(crop[None])[0]
        try:
            yaw, pitch, roll = pose_from_wflw98(landmarks)
        except ValueError:
            return None
        return Pose(float(yaw), float(pitch), float(roll))
