"""Exercise every GPU code path of the implemented stages on a few inputs; print throughput.

Run on a machine with a GPU: ``python -m benchmark.gpu_check`` (or ``nox -s gpu_check``).
It never needs real user-supplied weights: the PFLD network runs with seeded random
weights (a stand-in: the numbers are throughput and CPU/GPU parity, not landmarks).
Each check prints one line; the exit code is non-zero if a path that should work fails.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _time(fn, repeat: int) -> float:
    fn()  # warm-up (CUDA context, cuDNN autotune)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def check_pfld_cuda(batch: int = 256) -> dict:
    """PFLD-98 on CUDA vs CPU with identical stand-in weights: parity and crops/s."""
    import tempfile

    import torch

    from benchmark.pipeline.pfld import build_pfld_backbone, load_pfld

    if not torch.cuda.is_available():
        return {"check": "pfld-cuda", "ok": False, "why": "torch sees no CUDA device"}
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
        "check": "pfld-cuda",
        "ok": diff < 0.05 and spread > 0.05,
        "max_abs_diff_px": round(diff, 5),
        "output_spread_px": round(spread, 4),
        "gpu_crops_per_s": round(batch / seconds_gpu),
        "cpu_crops_per_s": round(batch / seconds_cpu),
        "device": torch.cuda.get_device_name(0),
    }


def check_cuda_refused_where_absent() -> list[dict]:
    """Backends without a CUDA build must refuse --device cuda loudly, never run on CPU."""
    from benchmark.device import onnx_providers, opencv_dnn_target
    from benchmark.errors import DeviceError

    out = []
    for name, fn in (("opencv-dnn", opencv_dnn_target), ("onnxruntime", onnx_providers)):
        try:
            result = fn("cuda")
            out.append({"check": f"{name}-cuda", "ok": True, "loaded": str(result)})
        except DeviceError as exc:
            out.append({"check": f"{name}-cuda", "ok": True, "refused": str(exc)[:120]})
        except ImportError as exc:
            out.append({"check": f"{name}-cuda", "ok": True, "skipped": str(exc)})
    return out


def main() -> int:
    results = []
    try:
        results.append(check_pfld_cuda())
    except ImportError as exc:
        results.append({"check": "pfld-cuda", "ok": False, "why": f"no torch: {exc}"})
    results.extend(check_cuda_refused_where_absent())
    for row in results:
        print(json.dumps(row))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
