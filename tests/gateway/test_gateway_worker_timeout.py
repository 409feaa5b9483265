"""``rolecall serve --workers 2 --worker-timeout S``: a frozen worker is killed and replaced.

A worker stopped with SIGSTOP stands for one whose event loop is deadlocked or
stuck in a blocking call: it stops beating, and the parent replaces it once it
has been silent for the timeout. The bounds on waiting are generous: they say
"it happens", not how fast.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from gateway_helpers import wait_for
from workers_helpers import (
    chat,
    hold_both_slots,
    limit_primary,
    serve_workers,
    survivor_answers,
)

from rolecall.recording.store import open_store
from rolecall.sim import SimServer
from serve_helpers import EXE

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers needs fork()")

TIMEOUT = ("--worker-timeout", "2")


def test_a_stopped_worker_is_killed_and_replaced_and_the_other_loses_no_request(
    config_path: Path, primary: SimServer
) -> None:
    with serve_workers(config_path, options=TIMEOUT) as served:
        frozen, frozen_pid = served.connect()
        survivor, survivor_pid = served.connect(avoid=frozen_pid)
        os.kill(int(frozen_pid), signal.SIGSTOP)
        primary.set_faults("ok:delay=1")
        # The survivor keeps answering, before, during and after its sibling's replacement.
        statuses: list[int] = []
        while int(frozen_pid) in served.workers() or len(served.workers()) < 2:
            answered = chat(survivor, "a")
            assert answered.headers["x-rolecall-worker"] == survivor_pid
            statuses.append(answered.status_code)
            assert len(statuses) < 30, "the stopped worker was never replaced"
        primary.clear()
        assert set(statuses) == {200} and len(statuses) >= 2, statuses

        silent = [line for line in served.lines if f"(pid {frozen_pid}) silent for" in line]
        assert len(silent) == 1, "".join(served.lines)
        seconds = float(re.search(r"silent for ([\d.]+) s", silent[0]).group(1))  # type: ignore[union-attr]
        assert seconds >= 2, silent  # past the timeout, shown to a tenth
        assert "worker timeout 2 s" in silent[0] and "starting another" in silent[0]

        replacement, replacement_pid = served.connect(avoid=survivor_pid)
        assert replacement_pid != frozen_pid
        assert chat(replacement, "a").status_code == 200
        for client in (frozen, survivor, replacement):
            client.close()


def test_a_stopped_worker_gives_back_its_share_of_max_concurrency(
    config_path: Path, primary: SimServer
) -> None:
    limit_primary(config_path, 2)
    with serve_workers(config_path, options=TIMEOUT) as served:
        frozen_pid, survivor_pid, by_worker = hold_both_slots(served, primary, delay=30)
        os.kill(int(frozen_pid), signal.SIGSTOP)
        # Both slots are held by a process that will never give them back: once it is
        # killed for its silence, they are the survivor's.
        survivor_answers(by_worker[survivor_pid][0], survivor_pid, primary, wait=25)
        assert any(f"(pid {frozen_pid}) silent for" in line for line in served.lines)
        for clients in by_worker.values():
            for client in clients:
                client.close()


@pytest.mark.parametrize("value", ["1", "-5", "soon", "inf", "nan"])
def test_a_worker_timeout_that_is_not_seconds_is_one_line_and_exit_2(
    config_path: Path, value: str
) -> None:
    command = [str(EXE), "serve", "-c", str(config_path), "--port", "0", "--workers", "2"]
    done = subprocess.run(
        [*command, "--worker-timeout", value], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{value!r} is not a number of seconds from 2, nor 0 (never)" in done.stderr


def _tasks_written(config: Path) -> int:
    with open_store(f"sqlite:///{config.parent / 'rolecall.db'}") as store:
        return sum(run.tasks for run in store.runs(limit=100) if run.kind == "gateway")


def test_a_stopped_run_writer_is_replaced_and_the_records_it_held_are_written(
    config_path: Path, primary: SimServer
) -> None:
    with serve_workers(config_path, options=TIMEOUT) as served:
        client, _ = served.connect()
        assert chat(client, "a").status_code == 200
        wait_for(lambda: _tasks_written(config_path) == 1)
        frozen = served.writer()
        os.kill(frozen, signal.SIGSTOP)
        # Sent to the frozen writer (in its socket buffer) or queued for it: none written.
        for _ in range(5):
            assert chat(client, "a").status_code == 200
        wait_for(lambda: served.writer() != frozen, timeout=30)
        client.close()
    told = [line for line in served.lines if f"run writer (pid {frozen})" in line]
    assert len(told) == 1, "".join(served.lines)
    assert "silent for" in told[0] and "(worker timeout 2 s): killed" in told[0]
    # What the frozen writer held reached the store through the next: nothing lost.
    assert _tasks_written(config_path) == 6 == primary.calls
    assert not any("record(s) not written" in line for line in served.lines)


def test_a_run_writer_frozen_at_stop_is_replaced_before_the_workers_give_up_on_it(
    config_path: Path, primary: SimServer
) -> None:
    # Past the 10 s a stopping worker once waited for its records to be confirmed.
    with serve_workers(config_path, options=("--worker-timeout", "15")) as served:
        client, _ = served.connect()
        assert chat(client, "a").status_code == 200
        wait_for(lambda: _tasks_written(config_path) == 1)
        frozen = served.writer()
        os.kill(frozen, signal.SIGSTOP)
        for _ in range(5):  # sent to the frozen writer, never written by it
            assert chat(client, "a").status_code == 200
        client.close()
    # Stopped (within serve_workers' 30 s): the workers waited for the next writer.
    assert any(f"run writer (pid {frozen}) silent for" in line for line in served.lines)
    assert not any("record(s) not written" in line for line in served.lines)
    assert _tasks_written(config_path) == 6 == primary.calls
    with open_store(f"sqlite:///{config_path.parent / 'rolecall.db'}") as store:
        assert {(run.kind, run.status) for run in store.runs(limit=100)} == {("gateway", "ok")}


def test_a_parent_killed_with_sigkill_leaves_no_stopped_worker_holding_the_port(
    config_path: Path, primary: SimServer
) -> None:
    with serve_workers(config_path, exit_status=-signal.SIGKILL, options=TIMEOUT) as served:
        _, frozen = served.connect()
        children = served.workers() | {served.writer()}
        os.kill(int(frozen), signal.SIGSTOP)
        served.proc.kill()
        served.proc.wait()
        # The stopped worker is continued when its parent dies, and stops as the others do.
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout=60)
    assert any(f"pid {frozen} stops" in line for line in served.lines), "".join(served.lines)


def _alive(pid: int) -> bool:
    """A process that has not exited (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state
