"""A worker's sends to a run writer that takes no more bytes (frozen: its socket buffer
full) wait a bounded time, and a frame sent in part is never read as records.

Before, a worker's send to a frozen writer blocked until the writer died: with
``--worker-timeout 0`` (never killed) for ever, and the worker's stop with it. Each test
freezes the writer (SIGSTOP) and queues more than its socket buffer holds, so the one frame
that carries it is sent in part.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import pytest
from relay_helpers import (
    Writer,
    all_confirmed,
    record_call,
    start_writer,
    stored_attempts,
    stored_runs,
    wait_until,
)

from rolecall.recording.relay import RecordRelay

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")

CALLS = 10_000  # an attempt and a task each: megabytes, far past a socket's buffer


def _relay_on_frozen_writer(writer: Writer, *, close_wait: float = 10.0) -> RecordRelay:
    """A relay whose first call the writer wrote and confirmed; then the writer is frozen
    and the relay queues :data:`CALLS` more (it sends only when told)."""
    slow = writer.metrics.model_copy(update={"flush_interval": 3600.0})
    relay = RecordRelay(slow, writer.address, close_wait=close_wait)
    relay.start_run("gw-0", "gateway")
    record_call(relay, "gw-0", 1)
    relay.flush()
    wait_until(lambda: stored_attempts(writer.metrics) == 1)
    wait_until(lambda: all_confirmed(relay))
    os.kill(writer.proc.pid, signal.SIGSTOP)
    for number in range(2, CALLS + 2):
        record_call(relay, "gw-0", number)
    return relay


def _returns(action: Callable[[], None], writer: Writer) -> None:
    """``action`` returns while the writer is frozen (else the writer is killed, which
    ends the send it blocks on, and the test fails)."""
    done = threading.Thread(target=action, daemon=True)
    done.start()
    done.join(30)
    if done.is_alive():
        writer.proc.kill()
        raise AssertionError("blocked on the frozen writer")


def test_a_worker_stops_without_waiting_for_ever_on_a_frozen_writer(
    writer: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    relay = _relay_on_frozen_writer(writer, close_wait=1.0)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        _returns(relay.close, writer)  # --worker-timeout 0: no one replaces the writer
    assert f"{2 * CALLS} record(s) not written" in caplog.text
    os.kill(writer.proc.pid, signal.SIGCONT)
    writer.stop()  # it reads the frame cut short at the connection's end, and drops it
    run = stored_runs(writer.metrics)["gw-0"]
    assert (run.status, run.tasks, stored_attempts(writer.metrics)) == ("interrupted", 1, 1)


def test_a_frame_sent_in_part_is_finished_on_the_same_connection_once_the_writer_thaws(
    writer: Writer,
) -> None:
    relay = _relay_on_frozen_writer(writer)
    _returns(relay.flush, writer)
    os.kill(writer.proc.pid, signal.SIGCONT)  # slow, not dead: it reads on
    record_call(relay, "gw-0", CALLS + 2)
    relay.finish_run("gw-0", "ok")
    relay.close()
    writer.stop()
    run = stored_runs(writer.metrics)["gw-0"]
    assert (run.status, run.tasks, run.attempts) == ("ok", CALLS + 2, CALLS + 2)
    assert stored_attempts(writer.metrics) == CALLS + 2


def test_a_frame_sent_in_part_to_a_killed_writer_goes_whole_to_the_next(
    writer: Writer,
) -> None:
    relay = _relay_on_frozen_writer(writer)
    _returns(relay.flush, writer)
    writer.kill()  # what the parent does to a writer silent for --worker-timeout
    second = start_writer(writer.address, writer.metrics)
    record_call(relay, "gw-0", CALLS + 2)
    relay.finish_run("gw-0", "ok")
    relay.close()
    second.stop()
    run = stored_runs(writer.metrics)["gw-0"]
    assert (run.status, run.tasks, run.attempts) == ("ok", CALLS + 2, CALLS + 2)
    assert stored_attempts(writer.metrics) == CALLS + 2
