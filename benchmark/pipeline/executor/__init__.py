"""Where a stage's per-item work runs: in this process, in a pool of worker processes on
this machine (``local``), or on the actors of a Ray cluster (``ray_actors``). Every
executor runs the same per-item code (``run_chunk``) and hands results back in order."""

from __future__ import annotations

from benchmark.device import DevicePlan, visible_gpus
from benchmark.errors import UsageError
from benchmark.pipeline.executor.local import (
    WORKERS_ENV,
    Executor,
    Miss,
    ProcessExecutor,
    SerialExecutor,
    available_cores,
    check_local_workers,
    check_workers,
    default_workers,
    run_through_cache,
)

__all__ = [
    "EXECUTORS",
    "WORKERS_ENV",
    "Executor",
    "Miss",
    "ProcessExecutor",
    "SerialExecutor",
    "available_cores",
    "check_local_workers",
    "check_workers",
    "default_workers",
    "make_executor",
    "run_through_cache",
]

EXECUTORS = ("local", "ray")


def make_executor(
    workers: int | None = None,
    *,
    executor: str = "local",
    address: str | None = None,
    device: DevicePlan | None = None,
) -> Executor:
    """``local``: a serial executor for one worker, a process pool for more; under a CUDA
    plan the default is one worker per visible GPU, each seeing its own. ``ray``: actors
    on the Ray cluster at ``address`` (a new one on this machine when ``None``)."""
    cuda = device is not None and device.uses_cuda
    if executor == "ray":
        from benchmark.pipeline.executor.ray_actors import RayExecutor

        return RayExecutor(None if workers is None else check_workers(workers), address, cuda)
    if executor != "local":
        raise UsageError(f"unknown executor '{executor}'; use one of {', '.join(EXECUTORS)}")
    if address is not None:
        raise UsageError("--address names a Ray cluster; it needs --executor ray")
    gpus = visible_gpus() if cuda else []
    if workers is None:
        workers = len(gpus) if gpus else default_workers()
    workers = check_local_workers(workers)
    return SerialExecutor() if workers == 1 else ProcessExecutor(workers, gpus)
