"""The executor for runs across machines: actors on a Ray cluster (``--executor ray``).

It sends the same chunks to the same per-item code as the process pool
(``executor.run_chunk``); each actor builds each stage once from its recipe, so models
load once per actor. Ray schedules, restarts and retries; nothing here is a scheduler:

- an actor that dies (a node lost, a process killed) is restarted and its chunks are sent
  again (``max_restarts``, ``max_task_retries``). The items it finished are already in the
  cache, and a chunk computed twice gives the same entries (atomic, content-addressed);
- results come back in the order of the chunks, as with every executor;
- the cache must sit on a path every node can reach: each actor checks, before it
  computes anything, that it sees a token file the driver wrote into the cache folder,
  and fails with a message that names its node otherwise.

Ray is optional (``pip install 'dmbench[ray]'``); nothing imports it unless asked.
"""

from __future__ import annotations

import os
import pickle
import socket
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmark.console import one_line_warnings
from benchmark.errors import DeviceError, DmbenchError, UsageError
from benchmark.pipeline.executor.local import (
    ClosingExecutor,
    SerialExecutor,
    run_chunk,
    set_thread_budget,
)

RETRIES = 3  # restarts of a dead actor, and re-sends of the chunk it held
TOKEN_PREFIX = ".dmbench-ray-"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--executor ray needs Ray: pip install 'dmbench[ray]' (Ray 2.60 is pinned)"
        ) from None
    return ray


# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers
# with a SETTINGS frame of its own (type 0x4) at once; anything else does not.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_listening(address: str, timeout: float = 10.0) -> None:
    """Fail within ``timeout`` seconds when nothing at ``host:port`` speaks Ray's protocol
    (gRPC over HTTP/2): ``ray.init`` would retry for minutes on a closed port, and hang on
    one that is open but is not Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    hint = (
        "Start one with `ray start --head`, or leave out --address for a Ray runtime on "
        "this machine"
    )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as connection:
            connection.settimeout(timeout)
            connection.sendall(_HTTP2_PREFACE)
            frame = connection.recv(9)
    except ValueError:
        raise UsageError(f"--address {address!r} is not host:port") from None
    except TimeoutError:
        frame = b""
    except OSError as exc:
        raise UsageError(f"no Ray cluster at --address {address}: {exc}. {hint}") from None
    if len(frame) < 4 or frame[3] != 0x04:
        raise UsageError(
            f"--address {address} answers, but not as a Ray cluster does (no gRPC reply "
            f"within {timeout:g} s). {hint}"
        )


class RayExecutor(ClosingExecutor):
    """``workers`` actors (default: one per CPU of the cluster, or one per GPU under a CUDA
    plan) on the cluster at ``address``; ``None`` starts a Ray runtime on this machine."""

    kind = "ray"

    def __init__(self, workers: int | None, address: str | None, cuda: bool = False) -> None:
        self.ray = import_ray()
        self.address = address
        self.cuda = cuda
        self._started_runtime = False
        self._actors: list[Any] = []
        self._tokens: dict[Path, Path] = {}  # cache root → the token file written there
        if not self.ray.is_initialized():
            if address not in (None, "auto"):
                check_listening(address)
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to Anyscale
            try:
                self.ray.init(
                    address=address,
                    include_dashboard=False,
                    configure_logging=False,
                    num_cpus=workers if address is None else None,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"no Ray cluster at --address {address}: {exc}") from None
            self._started_runtime = True
        resources = self.ray.cluster_resources()
        slots = int(resources.get("GPU" if cuda else "CPU", 0))
        if slots < 1:
            self.close()
            where = address or "this machine"
            raise DeviceError(
                f"the Ray cluster at {where} has no {'GPU' if cuda else 'CPU'} to run on "
                f"(resources: {resources})"
            )
        self.workers = workers or slots
        # Each actor's share: one GPU, or the cluster's CPUs split between the actors.
        self._cpus = 1 if cuda else max(1, slots // self.workers)

    def _started(self) -> list[Any]:
        if not self._actors:
            shares = {"num_gpus": 1, "num_cpus": 1} if self.cuda else {"num_cpus": self._cpus}
            actor = self.ray.remote(StageActor).options(
                max_restarts=RETRIES,
                max_task_retries=RETRIES,
                scheduling_strategy="SPREAD",  # over the nodes, not all on the head
                **shares,
            )
            self._actors = [actor.remote(self._cpus) for _ in range(self.workers)]
        return self._actors

    def _token(self, cache_root: Path | None) -> str | None:
        """A file in the cache folder that every actor must see (None: no cache)."""
        if cache_root is None:
            return None
        if cache_root not in self._tokens:
            cache_root.mkdir(parents=True, exist_ok=True)
            token = cache_root / f"{TOKEN_PREFIX}{uuid.uuid4().hex}"
            token.write_text(socket.gethostname())
            self._tokens[cache_root] = token
        return str(self._tokens[cache_root])

    def map(self, stage: Any, method: str, chunks: Iterable[list]) -> Iterator[list]:
        if stage.recipe is None:  # built from objects, not names: it cannot be rebuilt there
            yield from SerialExecutor().map(stage, method, chunks)
            return
        recipe = self.ray.put(pickle.dumps(stage.recipe))  # sent once, shared by every chunk
        token = self._token(stage.recipe.cache_root)
        in_flight: deque[Any] = deque()
        try:
            actors = self._started()
            for i, chunk in enumerate(chunks):  # at most two chunks per actor wait
                in_flight.append(actors[i % len(actors)].run.remote(recipe, method, chunk, token))
                while len(in_flight) >= 2 * len(actors):
                    yield self._collect(in_flight.popleft(), stage)
            while in_flight:
                yield self._collect(in_flight.popleft(), stage)
        except BaseException:  # Ctrl-C, or a chunk that raised: stop every actor now
            self._stop_actors()
            raise

    def _collect(self, ref: Any, stage: Any) -> list:
        try:
            results, counts = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = exc.cause  # the exception the stage raised, as the process pool gives it
            raise (cause if isinstance(cause, Exception) else exc) from None
        except self.ray.exceptions.ActorDiedError as exc:
            raise DmbenchError(
                f"a Ray worker died {RETRIES + 1} times on the same chunk of {stage.name} "
                f"work; the items finished before are cached ({exc})"
            ) from None
        stage.cache.add_counts(counts)
        return results

    def places(self) -> list[tuple[str, int]]:
        """(node id, process id) of every actor (tests kill one to see the retry)."""
        return self.ray.get([actor.where.remote() for actor in self._started()])

    def _stop_actors(self) -> None:
        actors, self._actors = self._actors, []
        for actor in actors:
            self.ray.kill(actor, no_restart=True)  # mid-item is fine: writes are atomic

    def close(self) -> None:
        self._stop_actors()
        for token in self._tokens.values():
            token.unlink(missing_ok=True)
        self._tokens.clear()
        if self._started_runtime:
            self.ray.shutdown()
            self._started_runtime = False


class StageActor:
    """One Ray actor: builds each stage once (``run_chunk``) and runs its chunks."""

    def __init__(self, threads: int) -> None:
        one_line_warnings()
        set_thread_budget(threads)
        self._seen: set[str] = set()

    def where(self) -> tuple[str, int]:
        """This actor's Ray node and process id."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run(
        self, recipe: bytes, method: str, chunk: list, token: str | None
    ) -> tuple[list, dict[str, int]]:
        if token is not None and token not in self._seen:
            if not Path(token).is_file():
                raise UsageError(
                    f"Ray worker on node {socket.gethostname()} (pid {os.getpid()}) cannot see "
                    f"the cache folder {Path(token).parent} of the driver: put the cache on a "
                    "path every node can reach (DMBENCH_CACHE_DIR on a shared file system), "
                    "and the data and assets too"
                )
            self._seen.add(token)
        return run_chunk(recipe, method, chunk)
