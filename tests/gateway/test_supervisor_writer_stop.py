"""The run writer at the final stop: one that closes slowly but beats is waited for; one
frozen there is found out by its silence, or by a second stop signal, and killed.

Before, the parent sent the writer SIGTERM once every worker had exited and then waited
60 s for it, whatever its heartbeat said and whatever signal came meanwhile. The
supervisor runs here in a process of its own, as under ``rolecall serve --workers N``,
with a writer body that freezes itself (SIGSTOP) or closes slowly when told to stop: a
real writer cannot be made to freeze at a chosen point of its stop.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the supervisor needs fork()")

_PARENT = textwrap.dedent(
    """
    import logging, os, signal, sys, threading, time
    from rolecall.gateway.supervisor import supervise

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    mode, timeout = sys.argv[1], float(sys.argv[2]) or None

    def say(line):  # one write: the processes' lines never interleave
        os.write(2, f"{line}\\n".encode())

    def run(index, ready, beat):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        beat()
        ready()
        say(f"ready {index} {os.getpid()}")
        while not stop.wait(0.1):
            beat()
        return 0

    def writer(beat):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        say(f"writer {os.getpid()}")
        while not stop.wait(0.1):
            beat()
        if mode == "frozen":  # frozen once the workers are gone: it never beats again
            say("writer frozen")
            os.kill(os.getpid(), signal.SIGSTOP)
        else:  # closing its recorder for longer than the timeout, beating meanwhile
            for _ in range(int(float(sys.argv[3]) * 10)):
                beat()
                time.sleep(0.1)
        say("writer closed")
        return 0

    sys.exit(supervise(1, run, writer, timeout=timeout))
    """
)


@dataclass
class Parent:
    proc: subprocess.Popen[str]
    lines: list[str]

    def wait_for_line(self, start: str) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith(start):
                return line
        raise AssertionError(f"no line {start!r}:\n" + "".join(self.lines))

    def writer(self) -> str:
        """The writer's pid, as it said once it started."""
        return next(line.split()[1] for line in self.lines if re.match(r"writer \d+$", line))

    def finish(self) -> str:
        """Every line left, once the parent has exited (with status 0)."""
        _, rest = self.proc.communicate(timeout=60)
        self.lines.append(rest)
        log = "".join(self.lines)
        assert self.proc.returncode == 0, log
        return log


@contextmanager
def supervising(mode: str, timeout: float, closing: float = 0.0) -> Iterator[Parent]:
    """The supervisor with one worker and a writer that, told to stop, is ``mode``; the
    parent is stopped with SIGTERM once both are ready."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARENT, mode, str(timeout), str(closing)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # the watchdog ends the parent and any child it left
    )
    # A parent that waits too long fails the test (its log ends there) rather than hanging it.
    watchdog = threading.Timer(50, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    parent = Parent(proc, [])
    try:
        parent.wait_for_line("ready 0 ")
        proc.send_signal(signal.SIGTERM)
        yield parent
    finally:
        watchdog.cancel()
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the tree
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_writer_frozen_once_the_workers_are_gone_is_killed_for_its_silence() -> None:
    with supervising("frozen", timeout=2) as parent:
        parent.wait_for_line("writer frozen")
        writer = parent.writer()
        log = parent.finish()
    told = [line for line in log.splitlines() if f"run writer (pid {writer}) silent for" in line]
    assert len(told) == 1, log
    assert "(worker timeout 2 s)" in told[0] and "killed" in told[0], told
    assert "writer closed" not in log
    with pytest.raises(ProcessLookupError):
        os.kill(int(writer), 0)  # reaped


def test_a_second_stop_signal_kills_a_frozen_writer_even_with_no_worker_timeout() -> None:
    with supervising("frozen", timeout=0) as parent:  # --worker-timeout 0: never for silence
        parent.wait_for_line("writer frozen")
        writer = parent.writer()
        parent.proc.send_signal(signal.SIGTERM)  # the way out a second signal promises
        log = parent.finish()
    assert f"the run writer (pid {writer}) is killed: a second stop signal" in log, log
    with pytest.raises(ProcessLookupError):
        os.kill(int(writer), 0)


def test_a_writer_that_beats_while_it_closes_is_waited_for_past_the_timeout() -> None:
    with supervising("closing", timeout=2, closing=5) as parent:
        log = parent.finish()
    assert "writer closed" in log, log
    assert "silent for" not in log and "killed" not in log, log
