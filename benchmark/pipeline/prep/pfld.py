"""PFLD (98-point WFLW) landmarks and the landmark-based head pose of the original study.

The face filter of the re-analysis (computationalprivacy/unmask) keeps a frame only when
the head pose estimated from PFLD landmarks is small enough.  This module re-implements
that step so the benchmark can reproduce the same selection without the upstream code.

Upstream facts were read (not copied) from:

* ``computationalprivacy/unmask`` @ a92ac38e8e996ad3deff3aabe0ab2bbe42c0ae81,
  ``image_prep_selection/FacePose_pytorch/ypr_helper_functions.py`` (``get_ypr``: square
  crop, preprocessing, landmark scaling, yaw/pitch/roll formulas, checkpoint key
  ``'plfd_backbone'``) and ``filter_images.py`` (detector box -> ``get_ypr`` input).
* ``image_prep_selection/FacePose_pytorch/pfld/pfld.py`` of the same commit, identical to
  ``pfld/pfld.py`` of ``WIKI2020/FacePose_pytorch`` @ e570c9b183bc803547346ad32dbbee43eecfceb2
  (file last changed in cdfc9cab2816aeb09ba69fd1d5da9fa918b5e353): the ``PFLDInference``
  architecture.  Both repositories ship the same ``checkpoint/snapshot/checkpoint.pth.tar``
  blob (git object 5e6f713e213c52500cf2bb765bf5d661621b46d4); its bytes were not available
  to us, so the state-dict layout is derived from the architecture code, not the file.

Facts used below:

* The network maps a 1x3x112x112 RGB tensor in [0, 1] (``ToTensor`` of an 8-bit image) to
  196 numbers; upstream multiplies them by 112, i.e. they are (x, y) pairs normalised to the
  112-pixel input.  Upstream then rounds the scaled values to float32.
* Landmark indices in the pose formulas are 0-based (``point_dict`` is filled with
  ``enumerate``-style counters starting at 0): p1/p31 are jaw-contour points, p51 the top of
  the nose bridge, p60/p72 the outer eye corners in the WFLW layout.
* The pose is computed from those 112-pixel coordinates, so pitch (a distance) depends on
  the crop scale while yaw (a ratio) does not.  Yaw, pitch and roll are all truncated with
  ``int()`` upstream (toward zero); roll is returned here as a float on purpose.
"""

from __future__ import annotations

import functools
import math
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.errors import MissingDependencyError
from benchmark.geometry import SquareBox, detection_to_xywh, square_box, square_patch
from benchmark.torch_weights import state_dict_in

if TYPE_CHECKING:
    import torch

INPUT_SIZE = 112
NUM_LANDMARKS = 98
CHECKPOINT_KEY = "plfd_backbone"  # sic: upstream spells it "plfd"

# Linear fits published by FacePose_pytorch (fitted by its authors on their own data).
_YAW_GAIN, _YAW_OFFSET = 71.58, 0.7037
_PITCH_GAIN, _PITCH_OFFSET = 1.497, 18.97

# 0-based WFLW indices used by the pose formulas.
_JAW_A, _JAW_B, _NOSE, _EYE_A, _EYE_B = 1, 31, 51, 60, 72


# --------------------------------------------------------------------------- pose


def pose_from_wflw98(landmarks: np.ndarray, *, strict: bool = False) -> tuple[int, int, float]:
    """Return (yaw, pitch, roll) from 98 WFLW landmarks in 112-pixel crop units.

    Yaw and pitch are truncated toward zero with ``int()`` as upstream does, because the
    filter thresholds (|yaw| < 20, |pitch| < 20) act on those integers.  Roll is the
    untruncated angle in degrees (upstream applies ``int()`` to it as well; apply it
    yourself if you need that value - roll is not used by the study's filter).

    The foot of the perpendicular is computed with vectors, so a perfectly horizontal or
    vertical jaw line works.  Upstream uses slopes and raises ``ZeroDivisionError`` when
    x1 == x31, when the slope (y31 - y1)/(x31 - x1) is 0, or when x60 == x72; the study's
    filter swallowed that exception and dropped the frame.  ``strict=True`` raises
    ``ValueError`` in exactly those cases so callers can reproduce the drop.

    Raises ``ValueError`` for a wrong shape, non-finite values, p1 == p31, or p60 == p72.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected landmarks of shape (98, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks contain non-finite values")

    jaw_a, jaw_b, nose = pts[_JAW_A], pts[_JAW_B], pts[_NOSE]
    axis = jaw_b - jaw_a
    axis_sq = float(axis @ axis)
    if axis_sq == 0.0:
        raise ValueError("degenerate landmarks: p1 == p31, the jaw line is undefined")
    if strict:
        _raise_where_upstream_divides_by_zero(pts)

    # Everything is expressed relative to p1, so translating all points leaves it unchanged.
    rel_nose = nose - jaw_a
    t = float(rel_nose @ axis) / axis_sq  # foot c = p1 + t * axis
    jaw_len = math.sqrt(axis_sq)
    half = jaw_len / 2.0  # m
    to_foot = abs(t) * jaw_len  # r = |p1 c|
    yaw = int((half - to_foot) / half * _YAW_GAIN + _YAW_OFFSET)

    foot_rel = t * axis
    perp = rel_nose - foot_rel
    dist = math.hypot(float(perp[0]), float(perp[1]))  # d = |p51 c|, 112-px units
    if rel_nose[1] < foot_rel[1]:  # p51 above the jaw line (smaller image y)
        dist = -dist
    pitch = int(_PITCH_GAIN * dist + _PITCH_OFFSET)

    roll = _roll_degrees(pts[_EYE_A], pts[_EYE_B])
    return yaw, pitch, roll


def _roll_degrees(eye_a: np.ndarray, eye_b: np.ndarray) -> float:
    """Angle of the eye-corner line; negative when p60 is lower in the image than p72."""
    dx = abs(float(eye_a[0]) - float(eye_b[0]))
    dy = abs(float(eye_a[1]) - float(eye_b[1]))
    if dx == 0.0 and dy == 0.0:
        raise ValueError("degenerate landmarks: p60 == p72, roll is undefined")
    roll = 90.0 if dx == 0.0 else math.degrees(math.atan(dy / dx))
    return -roll if eye_a[1] > eye_b[1] else roll


def _raise_where_upstream_divides_by_zero(pts: np.ndarray) -> None:
    """Mirror the ZeroDivisionError cases of upstream's slope-based arithmetic."""
    (x1, y1), (x31, y31) = pts[_JAW_A], pts[_JAW_B]
    if x31 == x1:
        raise ValueError("upstream-degenerate landmarks: x1 == x31 (vertical jaw line)")
    if (y31 - y1) / (x31 - x1) == 0.0:
        raise ValueError("upstream-degenerate landmarks: jaw line slope is 0 (y1 == y31)")
    if pts[_EYE_A][0] == pts[_EYE_B][0]:
        raise ValueError("upstream-degenerate landmarks: x60 == x72")


# --------------------------------------------------------------------------- crop


def upstream_box_from_detection(
    left: float, top: float, right: float, bottom: float
) -> tuple[int, int, int, int]:
    """The (x1, y1, x2, y2) that upstream feeds the crop: ``x2 = x + w`` of its +1 box."""
    x, y, w, h = detection_to_xywh((left, top, right, bottom))
    return x, y, x + w, y + h


def _square(image_hw: tuple[int, int], box_xyxy: tuple[float, float, float, float]) -> SquareBox:
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"box has non-finite coordinates: {box_xyxy}")
    if x2 - x1 <= 0 or y2 - y1 <= 0 or int(max(x2 - x1, y2 - y1)) <= 0:
        raise ValueError(f"box must have positive width and height, got {box_xyxy}")
    height, width = int(image_hw[0]), int(image_hw[1])
    return square_box((x1, y1, x2 - x1, y2 - y1), width, height)  # type: ignore[arg-type]


def upstream_crop_needs_padding(
    image_hw: tuple[int, int], box_xyxy: tuple[float, float, float, float]
) -> bool:
    """True when upstream ``get_ypr`` would call ``cv2.copyMakeBorder`` (and crash) for this box."""
    return _square(image_hw, box_xyxy).needs_padding


def square_crop_112(
    image_rgb: np.ndarray, box_xyxy: tuple[float, float, float, float]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The PFLD input for a face box, as upstream ``get_ypr`` cuts it.

    ``image_rgb`` must be HxWx3 uint8 (resizing 8-bit data is part of the original
    numerics). Returns the float32 crop in [0, 1] and the integer region (x1, y1, x2, y2)
    it covers, which may extend past the image where it was zero padded.
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    square = _square(image.shape[:2], box_xyxy)
    cx1, cx2, cy1, cy2 = (int(v) for v in square.clipped)
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(
            f"box {box_xyxy} does not overlap the {image.shape[1]}x{image.shape[0]} image"
        )
    crop = square_patch(image, square, INPUT_SIZE).astype(np.float32) / np.float32(255.0)
    return crop, square.region


# --------------------------------------------------------------------------- network


def import_torch() -> Any:
    """Import torch on first use so the rest of the module works without it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"the pfld pose backend needs PyTorch ({exc}): pip install 'dmbench[pfld]' "
            "(or 'dmbench[paper]' for every model of the original)"
        ) from exc
    return torch


# (attribute name, in channels, out channels, stride, residual, expansion) in forward order;
# the names must match the upstream checkpoint's state-dict keys.
_STAGES: tuple[tuple[str, int, int, int, bool, int], ...] = (
    ("conv3_1", 64, 64, 2, False, 2),
    ("block3_2", 64, 64, 1, True, 2),
    ("block3_3", 64, 64, 1, True, 2),
    ("block3_4", 64, 64, 1, True, 2),
    ("block3_5", 64, 64, 1, True, 2),
    ("conv4_1", 64, 128, 2, False, 2),
    ("conv5_1", 128, 128, 1, False, 4),
    ("block5_2", 128, 128, 1, True, 4),
    ("block5_3", 128, 128, 1, True, 4),
    ("block5_4", 128, 128, 1, True, 4),
    ("block5_5", 128, 128, 1, True, 4),
    ("block5_6", 128, 128, 1, True, 4),
    ("conv6_1", 128, 16, 1, False, 2),
)


@functools.cache
def _network_classes() -> tuple[type, type]:
    """Define the torch module classes once, on first use, so torch stays a lazy import."""
    torch = import_torch()
    nn = torch.nn
    fn = torch.nn.functional

    def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> list:
        return [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    class MobileBottleneck(nn.Module):
        """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

        def __init__(self, cin: int, cout: int, stride: int, residual: bool, expand: int):
            super().__init__()
            hidden = cin * expand
            self.residual = residual
            self.conv = nn.Sequential(
                *conv_bn_relu(cin, hidden, 1, 1),
                *conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
                nn.BatchNorm2d(cout),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.conv(x)
            return x + out if self.residual else out

    class PfldBackbone(nn.Module):
        """PFLDInference: 112x112 RGB -> 196 landmark coordinates normalised to [0, 1]."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.conv2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(64)
            for name, cin, cout, stride, residual, expand in _STAGES:
                self.add_module(name, MobileBottleneck(cin, cout, stride, residual, expand))
            self.conv7 = nn.Sequential(*conv_bn_relu(16, 32, 3, 2))
            self.conv8 = nn.Conv2d(32, 128, 7, 1, 0)
            # Present in the checkpoint but never applied in upstream's forward pass.
            self.bn8 = nn.BatchNorm2d(128)
            self.fc = nn.Linear(16 + 32 + 128, 2 * NUM_LANDMARKS)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = fn.relu(self.bn1(self.conv1(x)))  # 64 x 56 x 56
            x = fn.relu(self.bn2(self.conv2(x)))
            for name, *_ in _STAGES:
                x = getattr(self, name)(x)  # ends at 16 x 14 x 14
            scale1 = fn.avg_pool2d(x, 14).flatten(1)
            x = self.conv7(x)  # 32 x 7 x 7
            scale2 = fn.avg_pool2d(x, 7).flatten(1)
            scale3 = fn.relu(self.conv8(x)).flatten(1)  # 128 x 1 x 1
            return self.fc(torch.cat([scale1, scale2, scale3], dim=1))

    return MobileBottleneck, PfldBackbone


def build_pfld_backbone() -> torch.nn.Module:
    """Return an untrained PFLDInference whose state-dict keys match the upstream checkpoint.

    ``forward`` returns only the (N, 196) landmarks; upstream also returns an intermediate
    feature map that only its training-time auxiliary head uses.
    """
    return _network_classes()[1]()


def _resolve_device(device: str) -> torch.device:
    """Refuse CUDA when it is unavailable instead of silently running on the CPU."""
    torch = import_torch()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); not falling back to the CPU"
        )
    return dev


def extract_state_dict(obj: object, path: Path) -> Mapping[str, Any]:
    """Accept upstream's ``{'plfd_backbone': state_dict, ...}`` or a bare state dict."""
    return state_dict_in(obj, str(path), import_torch().Tensor, CHECKPOINT_KEY)


class PfldLandmarker:
    """Batched PFLD inference: 112x112 RGB crops in [0, 1] -> 98 landmarks in 112-px units."""

    def __init__(self, network: torch.nn.Module, device: str = "cpu", batch_size: int = 64):
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.device = _resolve_device(device)
        self.network = network.to(self.device).eval()
        self.batch_size = batch_size

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Return an (N, 98, 2) float32 array for an (N, 112, 112, 3) float32 RGB batch.

        Scaling mirrors upstream: float32 output times 112 in float64, rounded to float32.
        TF32 convolutions (cuDNN's default on Ampere and later) are switched off: they
        moved stand-in landmarks by up to 0.6 px on an H200, enough to flip a frame
        across the |yaw| < 20 / |pitch| < 20 filter; full fp32 keeps GPU runs equal to
        CPU runs.
        """
        torch = import_torch()
        batch = np.asarray(crops, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected crops of shape (N, 112, 112, 3), got {batch.shape}")
        outputs = []
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            for start in range(0, len(batch), self.batch_size):
                chunk = np.ascontiguousarray(batch[start : start + self.batch_size])
                tensor = torch.from_numpy(chunk).permute(0, 3, 1, 2).contiguous()
                outputs.append(self.network(tensor.to(self.device)).cpu().numpy())
        if not outputs:
            return np.zeros((0, NUM_LANDMARKS, 2), dtype=np.float32)
        flat = np.concatenate(outputs).astype(np.float64) * INPUT_SIZE
        return flat.reshape(-1, NUM_LANDMARKS, 2).astype(np.float32)


def load_pfld(
    checkpoint_path: str | os.PathLike[str],
    device: str = "cpu",
    *,
    batch_size: int = 64,
    trusted: bool = False,
) -> PfldLandmarker:
    """Load the user-supplied FacePose_pytorch checkpoint into a ready ``PfldLandmarker``.

    The file is read with ``weights_only=True`` (no arbitrary pickle code) unless
    ``trusted=True``, and mapped to the CPU first so a GPU-saved file loads anywhere; the
    weights are then moved to ``device``.  Loading is strict: every key must match.
    """
    torch = import_torch()
    _resolve_device(device)  # fail on an unavailable device before touching the file
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"PFLD checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=torch.device("cpu"), weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: refused by weights_only loading ({exc}); "
            "pass trusted=True only if you trust this file"
        ) from exc
    state = extract_state_dict(obj, path)
    network = build_pfld_backbone()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit PFLDInference: {exc}") from exc
    return PfldLandmarker(network, device=device, batch_size=batch_size)
