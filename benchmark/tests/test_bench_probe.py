"""The machine-speed probe: a fixed single-threaded workload measured in every benchmark
run, so that ``benchmark.bench_compare`` can divide each stage's median by it and a slower
machine does not read as a slower program."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

PAYLOAD = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
IMAGE = np.random.default_rng(1).random((224, 224, 3))


def machine_probe() -> int:
    """Hashing, compression, array arithmetic and interpreted Python: the mix the stages
    spend their CPU on (sha256 keys, PNG encoding, NumPy geometry, per-item Python)."""
    digest = hashlib.sha256(PAYLOAD).digest()
    packed = zlib.compress(PAYLOAD[: 1 << 18], 6)
    grey = (IMAGE @ np.array([0.299, 0.587, 0.114])).clip(0, 1)
    total = sum(i * i for i in range(20_000))
    return len(digest) + len(packed) + int(grey.sum()) + total % 7


def test_bench_machine_probe(benchmark) -> None:
    assert benchmark(machine_probe) > 0
