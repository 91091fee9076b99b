"""Choosing where models run. Asking for CUDA where it does not load is an error."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from benchmark.errors import DeviceError

DEVICES = ("cpu", "cuda")
ROLES = ("detector", "pose", "reconstruct", "render", "cut", "embedder")


@dataclass(frozen=True)
class DevicePlan:
    """Where each stage role runs: ``cuda``, ``cpu``, or ``cuda,detector=cpu,...``.

    The first item is the default; ``role=device`` items override it for a role, and
    ``role:backend=device`` for one backend of a role (``embedder:dlib-resnet=cpu``).
    Under a ``cuda`` default, backends that have no GPU code at all (``cpu_only = True``:
    the renderers, MediaPipe, dlib's landmark cut, eos) run on the CPU by design, and the
    plan records it.
    Every other backend asked for CUDA either gets it or raises a DeviceError: nothing
    falls back to the CPU silently.
    """

    default: str = "cpu"
    overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> DevicePlan:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        if not items:
            raise DeviceError("empty device specification; use cpu, cuda or cuda,ROLE=cpu,...")
        default, overrides = "cpu", {}
        for i, item in enumerate(items):
            if "=" in item:
                role, device = (part.strip() for part in item.split("=", 1))
                if role.split(":", 1)[0] not in ROLES:
                    known = ", ".join(ROLES)
                    raise DeviceError(f"unknown role '{role}' in --device; roles: {known}")
                if role in overrides:
                    raise DeviceError(f"role '{role}' given twice in --device")
                overrides[role] = check_device(device)
            elif i == 0:
                default = check_device(item)
            else:
                raise DeviceError(f"'{item}': only the first item of --device may be bare")
        return cls(default, overrides)

    def for_backend(self, role: str, backend: type) -> str:
        """The device of ``role`` when its backend is the class ``backend``."""
        for key in (f"{role}:{backend.name}", role):
            if key in self.overrides:
                return self.overrides[key]
        if self.default == "cuda" and backend.cpu_only:
            return "cpu"
        return self.default

    @property
    def uses_cuda(self) -> bool:
        """Whether any role may run on CUDA (then each worker holds one GPU)."""
        return "cuda" in (self.default, *self.overrides.values())

    def __str__(self) -> str:
        return ",".join([self.default, *(f"{r}={d}" for r, d in self.overrides.items())])


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise DeviceError(f"unknown device '{device}'; use one of {', '.join(DEVICES)}")
    return device


THREADS_ENV = "DMBENCH_THREADS"
GPUS_ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (set by the
    user, a scheduler or Ray), else as ``nvidia-smi`` lists them; ``[]`` when there is none
    to see (the backends then say loudly that CUDA does not load)."""
    if GPUS_ENV in os.environ:
        names = [n.strip() for n in os.environ[GPUS_ENV].split(",") if n.strip()]
        return [] if names[:1] == ["-1"] else names  # "-1" hides every GPU
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if listing.returncode != 0:
        return []
    return [line.strip() for line in listing.stdout.splitlines() if line.strip()]


def cpu_threads() -> int:
    """Threads one model may use on the CPU: ``$DMBENCH_THREADS`` (a worker of a pool of N
    gets its share of the cores), or 0 for the library's own choice (every core)."""
    try:
        return max(0, int(os.environ.get(THREADS_ENV, "0")))
    except ValueError:
        return 0


def onnx_session_options():
    """onnxruntime session options with the thread budget of this process."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # quantised files warn once per initializer input
    options.intra_op_num_threads = cpu_threads()
    return options


def onnx_providers(device: str) -> list[str]:
    """Explicit onnxruntime providers; CUDA must really be there when asked for."""
    import onnxruntime as ort

    check_device(device)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise DeviceError(
            "device 'cuda' requested but onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(available)}). Install onnxruntime-gpu instead of "
            "onnxruntime (pip install 'dmbench[gpu]' in a fresh environment)."
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def check_session_device(session, device: str, what: str) -> None:
    """Raise unless an onnxruntime session really runs on CUDA when CUDA was asked for.

    onnxruntime-gpu lists CUDAExecutionProvider even where cuDNN or cuBLAS fail to load,
    and then builds a CPU-only session with a log line: the one silent fallback to guard.
    """
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceError(
            f"{what}: device 'cuda' requested but onnxruntime built the session with "
            f"{', '.join(session.get_providers())} only (CUDA or cuDNN libraries did not "
            "load; see onnxruntime's log). Fix the CUDA install or use --device cpu."
        )


def opencv_dnn_target(device: str) -> tuple[int, int]:
    """(backend, target) for cv2.dnn; CUDA needs an OpenCV built with CUDA."""
    import cv2

    check_device(device)
    if device == "cpu":
        return cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_CPU
    count = 0
    try:
        count = cv2.cuda.getCudaEnabledDeviceCount()
    except (AttributeError, cv2.error):
        count = 0
    if count == 0:
        raise DeviceError(
            "device 'cuda' requested for an OpenCV dnn model, but this OpenCV build has no "
            "CUDA support (the PyPI wheels never do). Run the detector on the CPU "
            "(--device cuda,detector=cpu), or build OpenCV with CUDA."
        )
    return cv2.dnn.DNN_BACKEND_CUDA, cv2.dnn.DNN_TARGET_CUDA
