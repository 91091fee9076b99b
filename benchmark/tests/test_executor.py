"""The executor: per-item work in worker processes, results independent of their number.

A toy stage checks the mechanics (order, one build per worker, Ctrl-C, a warm run that
starts nothing); the real study checks that 1 and 2 workers give identical numbers from
two cold caches, so that the 2-worker run really computed in its workers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmark.cache import Cache
from benchmark.device import DevicePlan
from benchmark.errors import UsageError
from benchmark.pipeline.executor import (
    Miss,
    ProcessExecutor,
    SerialExecutor,
    default_workers,
    make_executor,
    run_through_cache,
)

BUILDS: list[int] = []  # in a worker: how often this process built the toy stage


@dataclass(frozen=True)
class ToyRecipe:
    delay: float = 0.0
    cache_root = None  # the toy caches nothing

    def build(self) -> ToyStage:
        BUILDS.append(os.getpid())
        return ToyStage(self.delay)


class ToyStage:
    """Squares numbers; says which process did it and how often it was built there."""

    def __init__(self, delay: float = 0.0) -> None:
        self.recipe = ToyRecipe(delay)
        self.cache = Cache(enabled=False)
        self.delay = delay

    def square(self, chunk: list[int]) -> list[tuple[int, int, int]]:
        time.sleep(self.delay)
        return [(x * x, os.getpid(), BUILDS.count(os.getpid())) for x in chunk]


class GpuProbe:
    """Says which GPUs its process sees (the toy stage's recipe is itself)."""

    cache_root = None  # no cache: nothing to check on the nodes

    def __init__(self) -> None:
        self.cache = Cache(enabled=False)
        self.recipe = self

    def build(self) -> GpuProbe:
        return GpuProbe()

    def __reduce__(self):
        return (GpuProbe, ())

    def visible(self, chunk: list[int]) -> list[tuple[int, str]]:
        time.sleep(0.2)  # long enough that every worker takes chunks
        return [(os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES", "")) for _ in chunk]


def _look_up(x: int) -> tuple[int, int, int] | Miss:
    return (x * x, 0, 0) if x % 3 == 0 else Miss(x)  # every third one is "cached"


@pytest.mark.parametrize("executor", [SerialExecutor(), ProcessExecutor(2)], ids=["1", "2"])
def test_results_come_back_in_item_order(executor) -> None:
    items = list(range(40))
    seen: list[int] = []
    try:
        results = run_through_cache(
            items, _look_up, executor, ToyStage(0.01), "square", chunk_size=3, done=seen.append
        )
    finally:
        executor.close()
    assert [r[0] for r in results] == [x * x for x in items]
    assert sum(seen) == len(items)
    computed = [r for x, r in zip(items, results, strict=True) if x % 3]
    if isinstance(executor, ProcessExecutor):
        assert all(pid != os.getpid() for _, pid, _ in computed), "misses ran in workers"
        assert all(builds == 1 for _, _, builds in computed), "one build per worker"
        assert len({pid for _, pid, _ in computed}) <= 2


def test_a_warm_run_starts_no_worker() -> None:
    executor = ProcessExecutor(2)
    results = run_through_cache([0, 3, 6], _look_up, executor, ToyStage(), "square", 4)
    assert results == [(0, 0, 0), (9, 0, 0), (36, 0, 0)] and executor._pool is None


def test_ctrl_c_stops_every_worker() -> None:
    """KeyboardInterrupt while chunks are still being made: the workers are stopped at
    once (not left running their queue), and the interrupt reaches the caller."""
    executor = ProcessExecutor(2)

    def chunks():
        for i in range(6):
            yield [i]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(executor.map(ToyStage(0.5), "square", chunks()))
    assert executor._pool is None


def test_workers_default_and_checks(monkeypatch) -> None:
    monkeypatch.setenv("DMBENCH_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.delenv("DMBENCH_WORKERS")
    assert default_workers() == len(os.sched_getaffinity(0))
    assert isinstance(make_executor(1), SerialExecutor)
    with pytest.raises(UsageError, match="at least 1"):
        make_executor(0)
    monkeypatch.setenv("DMBENCH_WORKERS", "many")
    with pytest.raises(UsageError, match="DMBENCH_WORKERS"):
        default_workers()


def test_a_cuda_plan_gives_each_worker_its_own_gpu(monkeypatch) -> None:
    """One replica per visible GPU: no GPU is needed to see that worker i is shown only
    GPU i (CUDA_VISIBLE_DEVICES is set in the worker before any CUDA library loads)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    executor = make_executor(device=DevicePlan.parse("cuda,detector=cpu"))
    assert isinstance(executor, ProcessExecutor) and executor.gpus == ("0", "1")
    with executor:
        seen = run_through_cache(list(range(8)), Miss, executor, GpuProbe(), "visible", 1)
    by_worker = {pid: {visible for p, visible in seen if p == pid} for pid, _ in seen}
    assert sorted(v for values in by_worker.values() for v in values) == ["0", "1"], by_worker
    # Without a visible GPU, or on the CPU, the usual number of workers (1 in the tests).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert isinstance(make_executor(device=DevicePlan.parse("cuda")), SerialExecutor)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert isinstance(make_executor(device=DevicePlan.parse("cpu")), SerialExecutor)
    assert make_executor(4, device=DevicePlan.parse("cuda")).gpus == ("0", "1")


@pytest.mark.integration
def test_one_and_two_workers_give_identical_results(store, tmp_path: Path, monkeypatch) -> None:
    """The study from two cold caches, with 1 and with 2 workers: every number of
    results.json (all but timings and the environment) is identical."""
    from benchmark.pipeline.mask.stage import MaskStage
    from benchmark.pipeline.prep.stage import PrepStage
    from benchmark.pipeline.recognize.stage import RecognizeStage
    from benchmark.specs import load_profiles
    from benchmark.study import StudyOptions, run_study

    started = []
    start_pool = ProcessExecutor._started
    monkeypatch.setattr(
        ProcessExecutor, "_started", lambda self: started.append(1) or start_pool(self)
    )
    # The per-item work that runs in this process (the workers import their own copies).
    here: list[str] = []
    for cls, method in [
        (PrepStage, "compute_frames"),
        (MaskStage, "compute_crops"),
        (RecognizeStage, "embed_batch"),
    ]:
        original = getattr(cls, method)
        monkeypatch.setattr(
            cls,
            method,
            lambda self, chunk, _o=original, _m=method: here.append(_m) or _o(self, chunk),
        )
    digests = {}
    for workers in (1, 2):
        here.clear()
        monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path / f"cache{workers}"))
        options = StudyOptions(identities=6, progress=False, workers=workers)
        results = run_study(load_profiles()["lfw"], tmp_path / f"out{workers}", options, store)
        assert results.environment["workers"] == workers
        digests[workers] = results.number_digests()
        assert bool(started) == (workers == 2), "cold misses went to the workers"
        if workers == 1:
            assert set(here) == {"compute_frames", "compute_crops", "embed_batch"}
        else:
            assert here == [], f"every chunk of per-item work went to the workers: {here}"
    assert digests[1] == digests[2]
