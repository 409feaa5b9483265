"""The run writer of ``rolecall serve --workers N`` as a process of its own, and what the
relay tests read back of what it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factories import attempt_event, task_event
from rolecall.config.schema import MetricsConfig
from rolecall.recording.relay import RecordRelay
from rolecall.recording.store import open_store
from rolecall.recording.store.rows import RunSummary


def relay_metrics(tmp_path: Path) -> MetricsConfig:
    return MetricsConfig.model_validate(
        {
            "url": f"sqlite:///{tmp_path / 'm.db'}",
            "runs_dir": str(tmp_path / "runs"),
            "flush_interval": 0.02,
        }
    )


WRITER_SCRIPT = textwrap.dedent(
    """
    import signal, socket, sys
    from rolecall.config.schema import MetricsConfig
    from rolecall.recording.relay import writer_main

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sys.argv[1])
    listener.listen(8)
    # As the parent forks it: signals blocked until the writer has its handlers.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    print("listening", flush=True)
    # With a third argument, each heartbeat is a line (the parent's sign of life).
    beat = (lambda: print("beat", flush=True)) if sys.argv[3:] else None
    sys.exit(writer_main(listener, MetricsConfig.model_validate_json(sys.argv[2]), beat))
    """
)


@dataclass
class Writer:
    """The writer process, as ``rolecall serve --workers N`` forks it."""

    address: str
    metrics: MetricsConfig
    proc: subprocess.Popen[str]

    def stop(self) -> None:
        """SIGTERM, as the parent sends once every worker has exited; it writes all, exits 0."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        os.unlink(self.address)


def start_writer(address: str, metrics: MetricsConfig, *, beats: bool = False) -> Writer:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, address, metrics.model_dump_json()]
        + ["beat"] * beats,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
    return Writer(address, metrics, proc)


def stored_runs(metrics: MetricsConfig) -> dict[str, RunSummary]:
    with open_store(metrics.url) as store:
        return {run.run_id: run for run in store.runs(limit=100)}


def stored_attempts(metrics: MetricsConfig) -> int:
    with open_store(metrics.url) as store:
        return int(store._read("SELECT COUNT(*) FROM all_attempts")[0][0])


def all_confirmed(relay: RecordRelay) -> bool:
    """The writer has confirmed every item the relay sent (a flush reads its counts)."""
    relay.flush()
    return not relay._unconfirmed


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def record_call(relay: RecordRelay, run_id: str, number: int) -> None:
    """What one gateway request records: an attempt and its task."""
    task_id = f"{run_id}-task-{number}"
    relay.emit(
        attempt_event(run_id=run_id, task_id=task_id, outcome="ok", error_kind=None, attempt=1)
    )
    relay.emit(task_event(run_id=run_id, task_id=task_id))
