"""Where a stage's per-item work runs on this machine: in this process, or in a pool of
worker processes.

Every executor calls the same stage method on the same chunks of items and hands the
results back in the order of the chunks, so a run's results depend neither on the number
of workers nor on which chunk finishes first. A worker builds each stage from its recipe
(``Stage.recipe``) once and keeps it, so models load once per worker, not once per chunk.

The stage looks up its cache in the calling process first and sends only the misses out:
a warm run starts no worker and loads no model twice. Workers write their results into the
shared cache themselves (atomic writes, one entry per item), so a run stopped with Ctrl-C
keeps every finished item, and nothing is half-written.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Protocol, Self

from benchmark.console import one_line_warnings
from benchmark.device import GPUS_ENV, THREADS_ENV
from benchmark.errors import UsageError

WORKERS_ENV = "DMBENCH_WORKERS"


def available_cores() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """``$DMBENCH_WORKERS`` when set, otherwise every core."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if not value:
        return available_cores()
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{WORKERS_ENV}={value!r} is not a number of workers") from None
    return check_local_workers(number, WORKERS_ENV)


def check_workers(workers: int, source: str = "--workers") -> int:
    """``workers`` when it is at least 1; ``source`` names where it was set."""
    if workers < 1:
        raise UsageError(f"{source} must be at least 1, not {workers}")
    return workers


# Worker processes per core that a local pool may have. The stages are CPU-bound, so more
# than one per core adds no speed, only a process of models each (about 180 MB); a few per
# core leave room to measure oversubscription, and a typo like 100000 is refused.
WORKERS_PER_CORE = 4


def check_local_workers(workers: int, source: str = "--workers") -> int:
    """``workers`` processes on this machine: at least 1, at most WORKERS_PER_CORE for
    each core this process may use."""
    check_workers(workers, source)
    cores = available_cores()
    if workers > WORKERS_PER_CORE * cores:
        raise UsageError(
            f"{source} {workers} is more than {WORKERS_PER_CORE} per core this process may "
            f"use ({cores} cores, so at most {WORKERS_PER_CORE * cores}); each worker is a "
            "process with its own models"
        )
    return workers


class Executor(Protocol):
    kind: str  # "serial", "process" or "ray" (results.json's environment.executor)
    workers: int

    def map(self, stage: Any, method: str, chunks: Iterable[list]) -> Iterator[list]:
        """``stage.<method>(chunk)`` for every chunk, yielded in the order of ``chunks``
        (which are read lazily: a generator may fill them as the work goes)."""

    def close(self) -> None:
        """Stop the workers (if any)."""


class ClosingExecutor:
    """``with make_executor(n) as executor:`` closes the workers on the way out."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]


class SerialExecutor(ClosingExecutor):
    """Everything in this process, one chunk after another."""

    kind = "serial"
    workers = 1

    def map(self, stage: Any, method: str, chunks: Iterable[list]) -> Iterator[list]:
        for chunk in chunks:
            yield getattr(stage, method)(chunk)

    def close(self) -> None:
        pass


class ProcessExecutor(ClosingExecutor):
    """A pool of ``workers`` processes on this machine (started on first use, with
    ``spawn``: no model state or thread pool is copied from the parent by ``fork``).

    With ``gpus`` (the names ``CUDA_VISIBLE_DEVICES`` uses), worker *i* sees only GPU
    ``gpus[i % len(gpus)]``: one model replica per GPU when there are as many workers."""

    kind = "process"

    def __init__(self, workers: int, gpus: Sequence[str] = ()) -> None:
        self.workers = check_workers(workers)
        self.gpus = tuple(gpus)
        self._pool: ProcessPoolExecutor | None = None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            threads = max(1, available_cores() // self.workers)  # no oversubscription
            context = get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(threads, self.gpus, context.Value("i", 0), os.getpid()),
            )
        return self._pool

    def map(self, stage: Any, method: str, chunks: Iterable[list]) -> Iterator[list]:
        if stage.recipe is None:  # built from objects, not names: it cannot be rebuilt there
            yield from SerialExecutor().map(stage, method, chunks)
            return
        recipe = pickle.dumps(stage.recipe)
        in_flight: deque[Future] = deque()
        try:
            for chunk in chunks:  # at most two chunks per worker wait, so memory stays flat
                in_flight.append(self._started().submit(run_chunk, recipe, method, chunk))
                while len(in_flight) >= 2 * self.workers:
                    yield self._collect(in_flight.popleft(), stage)
            while in_flight:
                yield self._collect(in_flight.popleft(), stage)
        except BaseException:  # Ctrl-C, or a chunk that raised: stop every worker now
            self.close(cancel=True)
            raise

    @staticmethod
    def _collect(future: Future, stage: Any) -> list:
        results, counts = future.result()
        stage.cache.add_counts(counts)
        return results

    def close(self, cancel: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if cancel:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()  # mid-item is fine: cache entries are written atomically
        pool.shutdown(wait=True, cancel_futures=cancel)


@dataclass(frozen=True)
class Miss:
    """What a look-up in this process could not answer: the work to send to the executor."""

    work: Any


def run_through_cache(
    items: Sequence[Any],
    look_up: Callable[[Any], Any],
    executor: Executor,
    stage: Any,
    method: str,
    chunk_size: int,
    done: Callable[[int], object] = lambda n: None,
) -> list:
    """The result of every item, in item order. ``look_up(item)`` runs here and gives the
    result (a cache hit, an unreadable input) or a ``Miss``; the misses go to
    ``stage.<method>`` through the executor in chunks of ``chunk_size``. ``done(n)`` is
    told as results arrive (a progress bar)."""
    results: list[Any] = [None] * len(items)
    sent: deque[list[int]] = deque()  # positions of each chunk sent, in order

    def chunks() -> Iterator[list]:
        work: list[Any] = []
        where: list[int] = []
        for position, item in enumerate(items):
            found = look_up(item)
            if isinstance(found, Miss):
                work.append(found.work)
                where.append(position)
            else:
                results[position] = found
                done(1)
            if len(work) == chunk_size:
                sent.append(where)
                yield work
                work, where = [], []
        if work:
            sent.append(where)
            yield work

    for computed in executor.map(stage, method, chunks()):
        for position, result in zip(sent.popleft(), computed, strict=True):
            results[position] = result
        done(len(computed))
    return results


# -- in a worker process (a pool's or a Ray actor's) -------------------------------------
_STAGES: dict[bytes, Any] = {}  # recipe → the stage built from it, once per worker


def set_thread_budget(threads: int) -> None:
    """This worker's share of the cores, for the models that run threads of their own."""
    os.environ[THREADS_ENV] = os.environ["OMP_NUM_THREADS"] = str(threads)
    import cv2

    cv2.setNumThreads(threads)


def die_with_parent(parent: int, every: float = 0.5) -> None:
    """End this process as soon as ``parent`` is gone (killed with SIGKILL, say, when it
    could stop nobody): a thread watches the parent's pid, so that no worker is left
    behind, holding memory and blocked on a pipe nobody reads. Work in flight is lost,
    never half-written: every cache entry and output is written atomically."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="dmbench-parent-watch", daemon=True).start()


def _start_worker(threads: int, gpus: tuple[str, ...], started: Any, parent: int) -> None:
    die_with_parent(parent)
    one_line_warnings()  # a spawned interpreter has Python's own format again
    # The parent handles Ctrl-C and stops the pool; a worker must not die mid-write on it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if gpus:  # before any CUDA library loads in this process
        with started.get_lock():
            index, started.value = started.value, started.value + 1
        os.environ[GPUS_ENV] = gpus[index % len(gpus)]
    set_thread_budget(threads)


def run_chunk(recipe: bytes, method: str, chunk: list) -> tuple[list, dict[str, int]]:
    """``stage.<method>(chunk)`` with the stage built once per process from ``recipe``,
    and the cache hits and misses it made (the caller adds them to its own counts)."""
    stage = _STAGES.get(recipe)
    if stage is None:
        stage = _STAGES[recipe] = pickle.loads(recipe).build()
    before = stage.cache.counts()
    results = getattr(stage, method)(chunk)
    after = stage.cache.counts()
    return results, {k: after[k] - before[k] for k in after}
