"""The Ray executor on a real Ray cluster of two nodes on this machine.

The fixture starts a head and one worker node with ``ray start`` on the loopback address
(one CPU and one declared GPU each, so that GPU placement can be seen without a GPU;
token authentication with a token of its own), and stops exactly those processes
afterwards: every process of the cluster carries a marker in its environment, so a Ray the
user runs on this machine is left alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from benchmark.device import DevicePlan
from benchmark.errors import DeviceError, UsageError
from benchmark.pipeline.executor import Miss, make_executor, run_through_cache
from benchmark.tests.test_executor import GpuProbe, ToyStage

# CI installs dmbench[ray]: there a missing Ray fails. Looked for, not imported: the
# fixture sets Ray's authentication variables before this process first imports Ray.
if not os.environ.get("CI") and importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed (pip install 'dmbench[ray]')", allow_module_level=True)

MARKER = "DMBENCH_RAY_TEST_CLUSTER"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_pids(token: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"{MARKER}={token}".encode() in (
                proc / "environ"
            ).read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _stop(token: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _cluster_pids(token):
            with contextlib.suppress(ProcessLookupError):  # gone on its own meanwhile
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while _cluster_pids(token) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    """``host:port`` of a fresh two-node Ray cluster (head + one worker node)."""
    ray_cli = Path(sys.executable).with_name("ray")
    token = uuid.uuid4().hex
    temp = tempfile.mkdtemp(prefix="dmray")  # short: Ray's socket paths must fit 107 bytes
    # Token authentication, explicit: a new local ray.init() writes ~/.ray/auth_token, and
    # a head started later with the mode unset turns tokens on from that file while a
    # joining node does not. One token of its own for this cluster, its nodes and this
    # process (the driver) makes the test independent of what ~/.ray holds.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex}
    saved = {name: os.environ.get(name) for name in auth}
    os.environ.update(auth)
    env = os.environ | {MARKER: token, "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=1"]
    common += ["--object-store-memory=100000000", "--disable-usage-stats"]
    head = [str(ray_cli), "start", "--head", f"--port={port}", f"--temp-dir={temp}"]
    head += ["--include-dashboard=false", *common]
    worker = [str(ray_cli), "start", f"--address={address}", *common]
    try:
        for command in (head, worker):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield address
    finally:
        import ray

        ray.shutdown()
        _stop(token)
        shutil.rmtree(temp, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _executor(cluster: str, workers: int | None = None, cuda: bool = False):
    return make_executor(
        workers, executor="ray", address=cluster, device=DevicePlan.parse("cuda" if cuda else "cpu")
    )


def _look_up(x: int):
    return Miss(x)


def test_chunks_run_on_both_nodes_in_order(cluster) -> None:
    with _executor(cluster) as executor:
        assert executor.kind == "ray" and executor.workers == 2  # one per CPU of the cluster
        items = list(range(24))
        results = run_through_cache(items, _look_up, executor, ToyStage(0.05), "square", 2)
        nodes = {node for node, _ in executor.places()}
    assert [r[0] for r in results] == [x * x for x in items]
    assert all(pid != os.getpid() for _, pid, _ in results)
    assert all(builds == 1 for _, _, builds in results), "one build per actor"
    assert len(nodes) == 2, "the actors were spread over the head and the worker node"


def test_a_killed_actor_is_restarted_and_its_chunks_sent_again(cluster) -> None:
    """SIGKILL one actor while it holds chunks: Ray restarts it, the chunks are sent again,
    and every result comes back, in order."""
    with _executor(cluster) as executor:
        items = list(range(16))
        (_, first), (_, second) = executor.places()  # starts the actors
        collect = type(executor)._collect

        def collect_then_kill(self, ref, stage):
            if not killed:  # chunks are in flight on both actors now
                os.kill(second, signal.SIGKILL)
                killed.append(second)
            return collect(self, ref, stage)

        killed: list[int] = []
        type(executor)._collect = collect_then_kill
        try:
            results = run_through_cache(items, _look_up, executor, ToyStage(0.3), "square", 1)
        finally:
            type(executor)._collect = collect
    assert killed
    assert [r[0] for r in results] == [x * x for x in items]
    restarted = {pid for _, pid, _ in results} - {first, second}
    assert len(restarted) == 1, "the killed actor's chunks ran on its restart"


def test_gpu_plan_places_one_actor_per_gpu(cluster) -> None:
    """Under a CUDA plan each actor holds one GPU of the cluster (declared here: Ray gives
    each its own CUDA_VISIBLE_DEVICES; no GPU is needed to see the placement)."""
    with _executor(cluster, cuda=True) as executor:
        assert executor.workers == 2
        seen = run_through_cache(list(range(8)), _look_up, executor, GpuProbe(), "visible", 1)
    assert {visible for _, visible in seen} == {"0"}, seen  # each node's one GPU
    assert len({pid for pid, _ in seen}) == 2


def test_an_unreachable_cache_is_named(cluster, tmp_path: Path, store) -> None:
    """A worker that does not see the driver's cache folder refuses to compute, and says
    which node and which folder."""
    from benchmark.cache import Cache
    from benchmark.pipeline.prep.stage import PrepStage

    stage = PrepStage.from_names(store=store, cache=Cache(tmp_path / "cache"))
    with _executor(cluster) as executor:
        executor._tokens[stage.recipe.cache_root] = tmp_path / "not-on-this-node"
        with pytest.raises(UsageError, match="cannot see the cache folder"):
            list(executor.map(stage, "compute_frames", [[]]))


def test_addresses_are_checked(cluster) -> None:
    with pytest.raises(UsageError, match="needs --executor ray"):
        make_executor(2, address=cluster)
    with pytest.raises(UsageError, match="no Ray cluster at"):
        make_executor(executor="ray", address=f"127.0.0.1:{_free_port()}")
    with pytest.raises(UsageError, match="unknown executor"):
        make_executor(executor="dask")


def test_the_cli_says_what_is_wrong_with_an_address(tmp_path: Path, capsys) -> None:
    from benchmark.cli import main

    common = ["reproduce", "--identities", "2", "--out", str(tmp_path / "out")]
    assert main([*common, "--address", "127.0.0.1:1"]) == UsageError.exit_code
    assert "--address names a Ray cluster; it needs --executor ray" in capsys.readouterr().err
    lonely = f"127.0.0.1:{_free_port()}"
    assert main([*common, "--executor", "ray", "--address", lonely]) == UsageError.exit_code
    assert f"no Ray cluster at --address {lonely}" in capsys.readouterr().err


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_an_open_port_that_is_not_ray_is_refused_in_seconds(
    reply: bytes, capsys, tmp_path: Path
) -> None:
    """A port that accepts and stays silent, or answers as a web server does: refused
    with the address named, within the check's timeout (Ray itself would retry for
    minutes)."""
    import threading

    from benchmark.cli import main

    server = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = server.accept()
                held.append(connection)
                if reply:
                    connection.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    started = time.monotonic()
    try:
        code = main(
            [
                "reproduce",
                *("--identities", "2", "--out", str(tmp_path / "out")),
                *("--executor", "ray", "--address", address),
            ]
        )
    finally:
        server.close()
        for connection in held:
            connection.close()
    assert code == UsageError.exit_code
    assert f"--address {address} answers, but not as a Ray cluster does" in (
        capsys.readouterr().err
    )
    assert time.monotonic() - started < 30


@pytest.mark.integration
def test_the_study_on_the_cluster_equals_the_serial_study(
    cluster, store, tmp_path: Path, monkeypatch
) -> None:
    """The whole study, from cold caches, in this process and on the two-node cluster:
    identical numbers; then a warm rerun on the cluster computes nothing."""
    from benchmark.specs import load_profiles
    from benchmark.study import StudyOptions, run_study

    profile = load_profiles()["lfw"]
    runs = {
        "serial": StudyOptions(identities=4, progress=False, workers=1),
        "ray": StudyOptions(identities=4, progress=False, executor="ray", address=cluster),
    }
    digests = {}
    for kind, options in runs.items():
        monkeypatch.setenv("DMBENCH_CACHE_DIR", str(tmp_path / f"cache-{kind}"))
        results = run_study(profile, tmp_path / f"out-{kind}", options, store)
        assert results.environment["executor"] == kind
        digests[kind] = results.number_digests()
    assert digests["serial"] == digests["ray"]
    entries = sorted((tmp_path / "cache-ray").rglob("meta.json"))
    warm = run_study(profile, tmp_path / "out-warm", runs["ray"], store)
    assert warm.number_digests() == digests["ray"]
    assert sorted((tmp_path / "cache-ray").rglob("meta.json")) == entries, "nothing recomputed"


def test_no_gpu_in_the_cluster_is_loud(monkeypatch, cluster) -> None:
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(DeviceError, match="has no GPU"):
        _executor(cluster, cuda=True)
    assert not ray.is_initialized(), "the failed executor let go of the cluster"
