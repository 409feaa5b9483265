"""A worker that finishes starting after its parent was killed stops as the others do.

Before, its word that it was ready went into a pipe nobody read any more: the write raised
``BrokenPipeError``, and the worker printed a traceback ("worker 0 failed") and exited 1
instead of stopping (under load, a parent killed with SIGKILL right after the first worker
answered often found the second one still starting). The supervisor runs here in a process
of its own, as under ``rolecall serve --workers N``, with a worker body that says it is
ready only once its parent is gone: a real worker cannot be held at that point.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the supervisor needs fork()")

_PARENT = textwrap.dedent(
    """
    import logging, os, signal, sys, threading
    from rolecall.gateway.supervisor import supervise

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    def say(line):  # one write: the processes' lines never interleave
        os.write(2, f"{line}\\n".encode())

    def run(index, ready, beat):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        parent = os.getppid()
        say(f"starting {os.getpid()}")
        while os.getppid() == parent:  # still starting when the parent is killed
            stop.wait(0.01)
        ready()
        say("ready")
        stop.wait()  # the SIGTERM of a worker whose parent is gone
        say("stopped")
        return 0

    sys.exit(supervise(1, run, timeout=None))
    """
)


def test_a_worker_ready_after_its_parent_was_killed_stops_without_a_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARENT],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # the watchdog ends the parent and any child it left
    )
    assert proc.stderr is not None
    # A worker that never stops fails the test (its log ends there) rather than hanging it.
    watchdog = threading.Timer(30, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    lines: list[str] = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("starting "):
                break
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
        lines.extend(proc.stderr)  # to its end: the orphaned worker holds it until it exits
        log = "".join(lines)
        assert "Traceback" not in log and "failed" not in log, log
        assert lines[-1] == "stopped\n", log
    finally:
        watchdog.cancel()
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the tree
            os.killpg(proc.pid, signal.SIGKILL)
