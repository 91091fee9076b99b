"""A quiet console: native libraries' log lines kept off the user's terminal.

MediaPipe, TensorFlow Lite and absl write their own log lines to file descriptor 2 from
C++ (``W0000 00:00:… inference_feedback_manager.cc:114] …``, ``INFO: Created TensorFlow
Lite XNNPACK delegate``), on every model load in every worker; no environment variable
turns them off (``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` do not). So the command
line routes its descriptor 2 through a pipe, and a thread forwards everything but those
lines: progress bars, warnings and errors, dmbench's own and Python's, pass unchanged.
Worker processes inherit the pipe, so their lines are filtered too. ``DMBENCH_NATIVE_LOGS=1``
keeps every line (to debug a native library).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import sys
import threading

NATIVE_LOGS_ENV = "DMBENCH_NATIVE_LOGS"
# absl / glog ("W0000 00:00:1796648141.423430   27848 file.cc:186] …") and TF Lite's own,
# to the end of their line: found anywhere, for a worker's line may follow a bar's frame.
NATIVE_START = re.compile(
    rb"(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\]"
    rb"|INFO: (?:Created|Initialized) TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)
NATIVE_LINE = re.compile(NATIVE_START.pattern + rb"[^\r\n]*(?:\r?\n|$)")
_PAUSE = 0.05  # seconds without output after which a line without its end is forwarded
_state: dict[str, object] = {}


def one_line_warnings() -> None:
    """Show warnings meant for users (cache, assets) as one ``dmbench: warning:`` line,
    not Python's file, line number and source excerpt. Each process calls it: the command
    line, and every worker, which starts from a fresh interpreter."""
    import warnings

    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"dmbench: warning: {message}\n"


def without_native_logs(data: bytes) -> bytes:
    return NATIVE_LINE.sub(b"", data)


def _segments(buffer: bytes) -> tuple[list[bytes], bytes]:
    """``buffer`` cut after every line end (``\\n`` or a progress bar's ``\\r``): the whole
    pieces, and the rest that has no end yet."""
    pieces = re.split(rb"(?<=[\r\n])", buffer)
    return pieces[:-1], pieces[-1]


def _pump(source: int, target: int) -> None:
    pending = b""
    while True:
        ready, _, _ = select.select([source], [], [], _PAUSE)
        if not ready:
            if pending and not NATIVE_START.search(pending):  # a bar's frame, say
                os.write(target, pending)
                pending = b""
            continue
        data = os.read(source, 65536)
        if not data:
            break
        whole, pending = _segments(pending + data)
        out = without_native_logs(b"".join(whole))
        if out:
            os.write(target, out)
    if pending:
        os.write(target, without_native_logs(pending))


def quiet_native_logs() -> None:
    """Filter this process's descriptor 2 from now on (once; not with
    ``DMBENCH_NATIVE_LOGS=1``). For the command line only: a test's capture keeps fd 2."""
    if _state or os.environ.get(NATIVE_LOGS_ENV, "").strip() == "1":
        return
    try:
        terminal = os.dup(2)
        source, sink = os.pipe()
    except OSError:  # no descriptor 2 at all: nothing to keep quiet
        return
    sys.stderr.flush()
    os.dup2(sink, 2)
    os.close(sink)
    thread = threading.Thread(
        target=_pump, args=(source, terminal), name="dmbench-console", daemon=True
    )
    thread.start()
    _state.update(terminal=terminal, thread=thread)
    atexit.register(_restore)


def _restore() -> None:
    """At exit: give descriptor 2 back, and let the thread forward what is left."""
    terminal, thread = _state.get("terminal"), _state.get("thread")
    if not isinstance(terminal, int) or not isinstance(thread, threading.Thread):
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os.dup2(terminal, 2)  # closes this process's end of the pipe
    thread.join(timeout=1.0)  # workers that still hold the pipe do not keep us waiting
