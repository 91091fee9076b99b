"""Sessions: ``tests`` (the README's test command), ``reproduce`` (the main job),
``bench`` (stage timings, compared with the previous saved run), ``lint``."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"
# PyTorch only for the PFLD network (the original's pose model). 2.13.0 has a CPU
# wheel on this project's build machines; elsewhere use the CPU index of PyTorch.
TORCH = "torch==2.13.0"


def _env(session: nox.Session) -> dict[str, str]:
    env = {"DMBENCH_PROGRESS": os.environ.get("DMBENCH_PROGRESS", "1")}
    shared = Path(__file__).parent.parent / "shared" / "assets"
    if "DMBENCH_ASSET_PATH" not in os.environ and shared.is_dir():
        env["DMBENCH_ASSET_PATH"] = str(shared)
        session.log(f"DMBENCH_ASSET_PATH not set; using {shared}")
    return env


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test,insightface,ringnet,ray]", TORCH)
    # The README's example anonymizer plug-in: a test runs it through its entry point.
    session.install("./examples/anonymizer-plugin")
    session.run("pytest", *(session.posargs or ["-q"]), env=_env(session))


@nox.session(python=PYTHON)
def leaderboard(session: nox.Session) -> None:
    """Every built-in anonymizer and the example plug-in through `dmbench evaluate` on the
    default profile: results/leaderboard/{results.json,report.md,leaderboard.md}.

    `nox -s leaderboard -- --identities 60` for a quicker, smaller board."""
    session.install("-e", ".[test]")
    session.install("./examples/anonymizer-plugin")
    args = list(session.posargs)
    if "--out" not in args:
        args += ["--out", "results/leaderboard"]
    anonymizers = ["mediapipe-mesh", "sfm-eos", "blur", "pixelate", "blackout", "posterize"]
    session.run(
        "dmbench",
        "evaluate",
        *(arg for name in anonymizers for arg in ("--anonymizer", name)),
        *args,
        env=_env(session),
    )


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """The study on the default profile: results, report, then its claims as tests.

    `nox -s reproduce -- --profile paper --data PATH` for the original's models.
    """
    args = list(session.posargs)
    profile = args[args.index("--profile") + 1] if "--profile" in args else "lfw"
    # Any role on CUDA (`--device cuda` or `cuda,detector=cpu`, ...) needs the GPU builds.
    cuda = "--device" in args and "cuda" in args[args.index("--device") + 1]
    paper = profile.startswith("paper")
    # `--executor ray [--address ADDR]` runs on a Ray cluster: Ray joins the extras.
    ray = ",ray" if "--executor" in args and args[args.index("--executor") + 1] == "ray" else ""
    if paper and cuda:  # TF with CUDA; onnxruntime-gpu replaces onnxruntime
        session.install("-e", f".[test,pfld,insightface,ringnet-gpu{ray}]")
        session.run("pip", "uninstall", "-y", "onnxruntime")
        session.install("-e", ".[gpu]")
    elif paper:  # the original's models: PFLD (torch), RingNet (TF), InsightFace
        session.install("-e", f".[test,paper{ray}]", TORCH)
    else:
        session.install("-e", f".[test{ray}]")
    out = args[args.index("--out") + 1] if "--out" in args else f"results/{profile}"
    if "--out" not in args:
        args += ["--out", out]
    env = _env(session)
    # Exit 1 means a claim does not hold: the claims below say which, so go on to them.
    session.run("dmbench", "reproduce", *args, env=env, success_codes=[0, 1])
    env["DMBENCH_RESULTS"] = str(Path(out) / "results.json")
    env["DMBENCH_CLAIMS_PROFILE"] = profile
    session.run(
        "pytest",
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        "benchmark/test_claims.py",
        "-k",
        "claim_rank1 or default_run_numbers",
        env=env,
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Stage benchmarks against the baseline in the repository: each median divided by the
    machine-speed probe of the same run; a slowdown beyond the baseline's threshold fails
    the session and the report (bench_report/bench_report.md and .json) says which.

    `nox -s bench -- -k "probe or render"` runs a subset (CI runs the cheap ones).
    """
    session.install("-e", ".[test]")
    args = list(session.posargs)
    if "-k" in args:  # a subset, always with the probe that normalises it
        where = args.index("-k") + 1
        args[where] = f"({args[where]}) or test_bench_machine_probe"
    else:
        args = ["-k", "test_bench_", *args]
    run_json = Path(".benchmarks") / "latest.json"
    run_json.parent.mkdir(exist_ok=True)
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-enable",
        "--benchmark-autosave",
        f"--benchmark-json={run_json}",
        "--benchmark-columns=min,median,mean,stddev,rounds",
        *args,
        env=_env(session),
    )
    session.run(
        "python", "-m", "benchmark.bench_compare", str(run_json), "--report", "bench_report"
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "benchmark", "noxfile.py")


@nox.session(python=False, name="gpu_check")
def gpu_check(session: nox.Session) -> None:
    """Every GPU path of the implemented stages, on the interpreter that has CUDA."""
    session.run("python3", "-m", "benchmark.gpu_check", env={"PYTHONPATH": "."})


@nox.session(python=PYTHON, name="opendr_parity")
def opendr_parity(session: nox.Session) -> None:
    """Our renderer against OpenDR 0.78 (the original's renderer) on the FLAME sample.

    Needs `apt-get install libosmesa6-dev`. OpenDR's setup.py imports numpy (hence no
    build isolation) and pulls the old chumpy, which fails on Python 3.11, so the fixed
    chumpy is put back last.
    """
    session.install("-e", ".[test]", "cython")
    session.install("--no-build-isolation", "opendr==0.78")
    session.install("--force-reinstall", "--no-deps", "chumpy-fixed")
    # Fail here, not with a skip, if OpenDR does not load.
    session.run(
        "python",
        "-c",
        "from benchmark.pipeline.mask.render import OpenDRRenderer; OpenDRRenderer()",
    )
    session.run(
        "pytest",
        "-q",
        "-s",
        "-k",
        "opendr",
        "benchmark/tests/test_mask_render.py",
        *session.posargs,
        env=_env(session),
    )
