"""A quiet console (issue 22): the `dmbench` command shows its progress bars and its own
lines, not MediaPipe's, TensorFlow Lite's or absl's; ``DMBENCH_PROGRESS=0`` silences the
bars. Run as a real process (the filter works on file descriptor 2), on real photos."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.console import without_native_logs
from benchmark.datasets import Dataset

NATIVE = (
    b"W0000 00:00:1796648141.423430   27848 landmark_projection_calculator.cc:186] Using "
    b"NORM_RECT without IMAGE_DIMENSIONS is only supported for the square ROI.\n"
)


@pytest.mark.parametrize(
    "data, kept",
    [
        (NATIVE, b""),
        (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", b""),
        (b"WARNING: All log messages before absl::InitializeLog() is called are written\n", b""),
        (b"\rprep: 3%|| 8/241 " + NATIVE, b"\rprep: 3%|| 8/241 "),  # after a bar's frame
        (b"dmbench: warning: W0000 is a name\n", b"dmbench: warning: W0000 is a name\n"),
        (b"Traceback (most recent call last):\n", b"Traceback (most recent call last):\n"),
        (b"E1207 12:00:00.000000 1 x.cc:1] real error\nnext\n", b"next\n"),
    ],
)
def test_native_log_lines_are_told_apart(data: bytes, kept: bytes) -> None:
    assert without_native_logs(data) == kept


@pytest.fixture(scope="module")
def three_people(lfw: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console") / "people"
    for name in lfw.subset(3, seed=5, min_sessions=2).identities():
        for frame in [f for f in lfw.frames if f.identity == name][:2]:
            (root / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frame.path, root / name / frame.path.name)
    return root


def _prep(
    people: Path, out: Path, cache: Path | None = None, **env: str
) -> subprocess.CompletedProcess:
    """``dmbench prep`` with 2 workers, without a cache unless ``cache`` names one."""
    environ = {k: v for k, v in os.environ.items() if k != "DMBENCH_NATIVE_LOGS"}
    environ.update(env, DMBENCH_CACHE_DIR=str(cache or out.parent / "cache"))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark.cli",
            "prep",
            str(people),
            "--out",
            str(out),
            "--workers",
            "2",
            *(["--no-cache"] if cache is None else []),
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.integration
def test_the_console_shows_bars_and_dmbench_lines_only(three_people: Path, tmp_path) -> None:
    shown = _prep(three_people, tmp_path / "run", DMBENCH_PROGRESS="1")
    assert shown.returncode == 0, shown.stderr
    assert "prep yunet+mediapipe-mesh" in shown.stderr, "the bar is drawn"
    for native in ("W0000", ".cc:", "TensorFlow Lite", "absl::"):
        assert native not in shown.stderr, shown.stderr
    # the same run with every native line kept: they were there to remove
    loud = _prep(three_people, tmp_path / "loud", DMBENCH_PROGRESS="1", DMBENCH_NATIVE_LOGS="1")
    assert loud.returncode == 0 and ".cc:" in loud.stderr, loud.stderr


@pytest.mark.integration
def test_progress_zero_draws_no_bar(three_people: Path, tmp_path) -> None:
    quiet = _prep(three_people, tmp_path / "run", DMBENCH_PROGRESS="0")
    assert quiet.returncode == 0, quiet.stderr
    assert "img/s" not in quiet.stderr and "%|" not in quiet.stderr, quiet.stderr
    assert "kept" in quiet.stdout, "the summary line stays"


@pytest.mark.integration
def test_a_warning_in_a_worker_is_one_dmbench_line(three_people: Path, tmp_path) -> None:
    """A worker is a fresh interpreter: its warnings (here, a cache that cannot be
    written) must look like the command line's own, without Python's source excerpt."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    shown = _prep(three_people, tmp_path / "run", cache=blocker, DMBENCH_PROGRESS="0")
    assert shown.returncode == 0, shown.stderr
    warned = [line for line in shown.stderr.splitlines() if "cannot be written" in line]
    assert warned, shown.stderr
    assert all(line.startswith("dmbench: warning: cache ") for line in warned), shown.stderr
    assert "CacheWarning" not in shown.stderr and "self.cache" not in shown.stderr, shown.stderr
