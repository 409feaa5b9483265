"""A worker that hangs while starting, before its first heartbeat, is timed from its spawn.

Before, the parent timed only workers that had said they were ready: one stuck in its
startup (a deadlock, a blocking call before the event loop runs) kept its slot for ever
and the pool served with one worker fewer. The supervisor runs here in a process of its
own, as under ``rolecall serve --workers N``, with a worker body whose first start hangs:
a real ``rolecall serve`` worker cannot be made to hang at a chosen point of its startup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the supervisor needs fork()")

_PARENT = textwrap.dedent(
    """
    import logging, os, signal, sys, threading
    from rolecall.gateway.supervisor import supervise

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    marks = sys.argv[1]

    def say(line):  # one write: the processes' lines never interleave
        os.write(2, f"{line}\\n".encode())

    def run(index, ready, beat):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:  # the first start of worker 0 hangs before it is ready, and never beats
            if index == 0:
                os.close(os.open(os.path.join(marks, "hung"), os.O_CREAT | os.O_EXCL))
                say(f"hanging {os.getpid()}")
                stop.wait()  # only SIGTERM (the parent gone) ends it
                return 0
        except FileExistsError:
            pass
        beat()
        ready()
        say(f"ready {index} {os.getpid()}")
        while not stop.wait(0.1):
            beat()
        return 0

    sys.exit(supervise(2, run, timeout=float(sys.argv[2])))
    """
)


def test_a_worker_hung_before_its_first_heartbeat_is_killed_and_replaced(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path), "2"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # the watchdog ends the parent and any child it left
    )
    assert proc.stderr is not None
    # A parent that waits for ever fails the test (its log ends there) rather than hanging it.
    watchdog = threading.Timer(30, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    lines: list[str] = []
    try:
        ready: dict[str, str] = {}
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("ready "):
                _, index, pid = line.split()
                ready[index] = pid
            if len(ready) == 2:
                break
        log = "".join(lines)
        assert set(ready) == {"0", "1"}, log
        hung = next(line.split()[1] for line in lines if line.startswith("hanging "))
        assert ready["0"] != hung  # worker 0 was replaced and its replacement serves
        told = [line for line in lines if f"(pid {hung})" in line]
        assert len(told) == 1, log
        assert told[0].startswith(f"worker 0 (pid {hung}) not ready for "), told
        assert "(worker timeout 2 s): killed; starting another" in told[0]
        with pytest.raises(ProcessLookupError):
            os.kill(int(hung), 0)  # reaped: no stuck process is left behind
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log
    finally:
        watchdog.cancel()
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the tree
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
