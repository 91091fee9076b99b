"""Sessions: ``tests`` (the README's test command), ``reproduce`` (the main job),
``bench`` (stage timings, compared with the previous saved run), ``lint``, ``lock``
(regenerates the lock files every other session installs from).

Every session installs from a lock in ``locks/`` (every package pinned, with hashes), so a
fresh machine gets what CI tested; ``DMBENCH_UNLOCKED=1`` resolves from pyproject.toml's
ranges instead (README: "Running unlocked").
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"
ROOT = Path(__file__).parent
LOCKS = ROOT / "locks"
# PyTorch only for the PFLD network (the original's pose model). The CPU wheel 2.13.0+cpu
# lies in this project's build machines' wheel folder (pip's find-links); elsewhere it
# comes from PyTorch's CPU index (`nox -s lock` names it).
TORCH_CPU = "torch==2.13.0+cpu"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Each lock: the extras of pyproject.toml it pins, further requirements, packages it leaves
# out (installed otherwise) and the lock whose versions it must share.
LOCK_SPECS: dict[str, dict] = {
    # Everything the test suite needs; also the paper profile and the Ray executor.
    "all": {"extras": ["test", "insightface", "ringnet", "ray", "pfld"], "extra": [TORCH_CPU]},
    # The embedded default: reproduce, bench, leaderboard.
    "default": {"extras": ["test"], "within": "all"},
    "lint": {"requirements": ["ruff", "import-linter"], "within": "all", "bare": True},
    # OpenDR 0.78 is built without build isolation against this environment; its own
    # chumpy (which fails on 3.11) is replaced by chumpy-fixed, so neither is emitted here.
    "opendr": {
        "extras": ["test"],
        "extra": ["cython", "chumpy-fixed", "opendr==0.78"],
        "within": "all",
        "no_emit": ["opendr", "chumpy"],
    },
    "opendr-sdist": {"requirements": ["opendr==0.78"], "bare": True, "no_deps": True},
    # CUDA: onnxruntime-gpu instead of onnxruntime, TensorFlow with its CUDA wheels, torch
    # from PyPI (CUDA build).
    "gpu": {
        "extras": ["test", "pfld", "insightface", "ringnet-gpu", "gpu", "ray"],
        "extra": ["torch==2.13.0"],
        "no_emit": ["onnxruntime"],
    },
}


def _env(session: nox.Session) -> dict[str, str]:
    env = {"DMBENCH_PROGRESS": os.environ.get("DMBENCH_PROGRESS", "1")}
    shared = ROOT.parent / "shared" / "assets"
    if "DMBENCH_ASSET_PATH" not in os.environ and shared.is_dir():
        env["DMBENCH_ASSET_PATH"] = str(shared)
        session.log(f"DMBENCH_ASSET_PATH not set; using {shared}")
    return env


def _lock_path(name: str) -> Path:
    return LOCKS / f"{name}.txt"


def _install_locked(session: nox.Session, lock: str, *project: str) -> None:
    """The lock's packages (hash-checked), then the project itself without dependencies.

    ``project``: what to install editable/local on top (".[extras]" or a path).
    """
    if os.environ.get("DMBENCH_UNLOCKED") == "1":
        spec = LOCK_SPECS[lock]
        wanted = spec.get("requirements", []) + spec.get("extra", [])
        extra = ["torch==2.13.0" if r == TORCH_CPU else r for r in wanted]
        session.log(f"DMBENCH_UNLOCKED=1: {project} and {extra} from pyproject.toml's ranges")
        for item in project:
            editable = item == "." or item.startswith(".[")
            session.install(*(["-e", item] if editable else [item]))
        if extra:
            session.install(*extra)
        return
    path = _lock_path(lock)
    if not path.is_file():
        session.error(f"{path} is missing: run `nox -s lock` (or set DMBENCH_UNLOCKED=1)")
    session.install("--require-hashes", "--no-deps", "-r", str(path))
    session.env["DMBENCH_LOCK"] = lock  # results.json records it, with its digest
    for item in project:
        editable = item == "." or item.startswith(".[")
        session.install("--no-deps", *(["-e", item] if editable else [item]))
    session.run("python", "-m", "pip", "check", silent=True)


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Regenerates locks/*.txt with uv (Linux x86_64, CPython 3.11): every package pinned
    with the hashes of all its files. Each lock but `all` and `gpu` is resolved within
    `all`, so the sessions share one version of every package.

    `nox -s lock -- --upgrade` moves to the newest releases the ranges allow; without it the
    current pins are kept where they still satisfy pyproject.toml.
    """
    session.install("uv==0.13.9")
    LOCKS.mkdir(exist_ok=True)
    wheels = Path("/opt/wheels")
    torch_source = (
        ["--find-links", str(wheels)] if wheels.is_dir() else ["--extra-index-url", TORCH_CPU_INDEX]
    )
    tmp = Path(session.create_tmp())
    # OpenDR's setup.py imports numpy and Cython without declaring them: uv needs them to
    # read its metadata.
    config = tmp / "uv.toml"
    config.write_text(
        '[extra-build-dependencies]\nopendr = ["numpy<2", "cython"]\nchumpy = ["pip", "numpy<2"]\n'
    )
    for name, spec in LOCK_SPECS.items():
        inputs = [] if spec.get("bare") else ["pyproject.toml"]
        requirements = spec.get("requirements", []) + spec.get("extra", [])
        if requirements:
            req_file = tmp / f"{name}.in"
            req_file.write_text("\n".join(requirements) + "\n")
            inputs.append(str(req_file))
        args = [*inputs, *(a for e in spec.get("extras", []) for a in ("--extra", e))]
        if "within" in spec:
            args += ["--constraint", str(_lock_path(spec["within"]))]
        args += [a for pkg in spec.get("no_emit", []) for a in ("--no-emit-package", pkg)]
        if spec.get("no_deps"):
            args.append("--no-deps")
        session.run(
            "uv",
            "pip",
            "compile",
            *args,
            "--generate-hashes",
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--index-strategy",
            "unsafe-best-match",
            *torch_source,
            "--no-header",
            "--quiet",
            "--config-file",
            str(config),
            *(["--upgrade"] if "--upgrade" in session.posargs else []),
            "-o",
            str(_lock_path(name)),
            env={"UV_CUSTOM_COMPILE_COMMAND": "nox -s lock"},
        )
        text = _lock_path(name).read_text()
        _lock_path(name).write_text(
            f"# Lock `{name}` for dmbench (Linux x86_64, CPython 3.11), made by `nox -s lock`"
            " from pyproject.toml;\n# installed with `pip install --require-hashes --no-deps"
            " -r` by the nox sessions. Do not edit.\n" + text
        )


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    # The README's example anonymizer plug-in: a test runs it through its entry point.
    _install_locked(
        session, "all", ".[test,insightface,ringnet,ray,pfld]", "./examples/anonymizer-plugin"
    )
    session.run("pytest", *(session.posargs or ["-q"]), env=_env(session))


@nox.session(python=PYTHON)
def leaderboard(session: nox.Session) -> None:
    """Every built-in anonymizer and the example plug-in through `dmbench evaluate` on the
    default profile: results/leaderboard/{results.json,report.md,leaderboard.md}.

    `nox -s leaderboard -- --identities 60` for a quicker, smaller board."""
    _install_locked(session, "default", ".[test]", "./examples/anonymizer-plugin")
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
        _install_locked(session, "gpu", ".")
    elif paper or ray:  # the original's models: PFLD (torch), RingNet (TF), InsightFace
        _install_locked(session, "all", f".[test,paper{ray}]")
    else:
        _install_locked(session, "default", ".[test]")
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
        "claim_rank1 or recorded_run_numbers",
        env=env,
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Stage benchmarks against the baseline in the repository: each median divided by the
    machine-speed probe of the same run; a slowdown beyond the baseline's threshold fails
    the session and the report (bench_report/bench_report.md and .json) says which.

    `nox -s bench -- -k "probe or render"` runs a subset (CI runs the cheap ones).
    """
    _install_locked(session, "default", ".[test]")
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
    _install_locked(session, "lint")
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
    if os.environ.get("DMBENCH_UNLOCKED") == "1":
        session.install("-e", ".[test]", "cython")
        session.install("--no-build-isolation", "opendr==0.78")
        session.install("--force-reinstall", "--no-deps", "chumpy-fixed")
    else:
        _install_locked(session, "opendr", ".[test]")
        session.install(
            "--no-build-isolation",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(_lock_path("opendr-sdist")),
        )
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
