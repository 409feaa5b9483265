"""One writer for many workers: relays send their records over a Unix socket to a writer
that writes them all through one recorder (what ``rolecall serve --workers N`` runs).

The writer is a process of its own, stopped with SIGTERM or killed; the workers are
relays in this test's process, each with its own connection, as each worker has.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from relay_helpers import (
    Writer,
    all_confirmed,
    record_call,
    relay_metrics,
    start_writer,
    stored_attempts,
    stored_runs,
    wait_until,
)

from factories import attempt_event, task_event
from rolecall.config.schema import MetricsConfig
from rolecall.errors import ErrorKind
from rolecall.events import AttemptStart
from rolecall.recording import relay as relay_module
from rolecall.recording.recorder import RunEnd, RunStart
from rolecall.recording.relay import RecordRelay, decode_frame, encode_frame
from rolecall.recording.runlog import read_run, run_log_path
from rolecall.recording.runwriter import settle_summary
from rolecall.recording.store import open_store


def test_every_record_of_every_worker_is_written_once_by_the_one_writer(
    tmp_path: Path, writer: Writer
) -> None:
    relays = [RecordRelay(writer.metrics, writer.address) for _ in range(3)]
    for index, relay in enumerate(relays):
        relay.start_run(f"gw-{index}", "gateway")
    for number in range(500):
        for index, relay in enumerate(relays):
            record_call(relay, f"gw-{index}", number)
    for index, relay in enumerate(relays):
        relay.finish_run(f"gw-{index}", "ok")
        relay.close()
    writer.stop()

    runs = stored_runs(writer.metrics)
    assert set(runs) == {"gw-0", "gw-1", "gw-2"}
    assert {run.status for run in runs.values()} == {"ok"}
    assert [runs[f"gw-{i}"].tasks for i in range(3)] == [500, 500, 500]
    assert stored_attempts(writer.metrics) == 1500
    with open_store(writer.metrics.url) as store:  # one process wrote every run
        pids = {store.run_meta(f"gw-{i}")["writer"]["pid"] for i in range(3)}
    assert pids == {writer.proc.pid}
    logged = read_run(run_log_path(tmp_path / "runs", "gw-1"))
    assert (logged.status, len(logged.tasks), logged.skipped_lines) == ("ok", 500, 0)


def test_a_worker_gone_without_closing_leaves_its_run_interrupted_not_running(
    tmp_path: Path, writer: Writer
) -> None:
    survivor = RecordRelay(writer.metrics, writer.address)
    doomed = RecordRelay(writer.metrics, writer.address)
    survivor.start_run("gw-survivor", "gateway")
    doomed.start_run("gw-doomed", "gateway")
    record_call(doomed, "gw-doomed", 1)
    doomed.flush()
    doomed._stop.set()  # a killed worker's threads are gone with it
    doomed._thread.join()
    assert doomed._sock is not None
    doomed._sock.close()  # what the kernel does when a worker is killed
    doomed._sock = None
    record_call(survivor, "gw-survivor", 1)
    survivor.finish_run("gw-survivor", "ok")
    survivor.close()
    writer.stop()

    runs = stored_runs(writer.metrics)
    assert (runs["gw-doomed"].status, runs["gw-doomed"].tasks) == ("interrupted", 1)
    assert runs["gw-survivor"].status == "ok"


def test_a_restarted_writer_gets_what_the_workers_queued_meanwhile_and_their_open_runs(
    tmp_path: Path, writer: Writer
) -> None:
    relay = RecordRelay(writer.metrics, writer.address)
    relay.start_run("gw-0", "gateway")
    record_call(relay, "gw-0", 1)
    relay.flush()
    wait_until(lambda: stored_attempts(writer.metrics) == 1)  # written, so the kill loses nothing
    # ... and confirmed: what it had not confirmed is sent again (and written once, see
    # test_a_writer_killed_between_its_write_and_its_confirmation_writes_each_call_once).
    wait_until(lambda: all_confirmed(relay))
    writer.kill()  # the writer dies while the worker keeps serving
    for number in range(2, 6):
        record_call(relay, "gw-0", number)
    relay.flush()  # no writer: kept

    second = start_writer(writer.address, writer.metrics)
    record_call(relay, "gw-0", 6)
    relay.finish_run("gw-0", "ok")
    relay.close()
    second.stop()

    run = stored_runs(writer.metrics)["gw-0"]
    assert (run.status, run.tasks) == ("ok", 6)
    assert stored_attempts(writer.metrics) == 6


def test_what_a_frozen_writer_took_but_never_wrote_goes_to_the_next_writer_once(
    tmp_path: Path, writer: Writer
) -> None:
    relay = RecordRelay(writer.metrics, writer.address)
    relay.start_run("gw-0", "gateway")
    record_call(relay, "gw-0", 1)
    relay.flush()
    wait_until(lambda: stored_attempts(writer.metrics) == 1)
    os.kill(writer.proc.pid, signal.SIGSTOP)  # frozen: as the parent finds it, silent
    for number in range(2, 6):
        record_call(relay, "gw-0", number)
    relay.flush()  # sent: in the frozen writer's socket buffer, never written
    writer.kill()  # what the parent does to a writer silent for --worker-timeout

    second = start_writer(writer.address, writer.metrics)
    record_call(relay, "gw-0", 6)
    relay.finish_run("gw-0", "ok")
    relay.close()
    second.stop()

    run = stored_runs(writer.metrics)["gw-0"]
    assert (run.status, run.tasks) == ("ok", 6)
    assert stored_attempts(writer.metrics) == 6  # each once: what the first wrote is not sent again


def test_close_waits_for_a_writer_that_comes_back(tmp_path: Path) -> None:
    address = str(tmp_path / "late.sock")
    metrics = relay_metrics(tmp_path)
    relay = RecordRelay(metrics, address)
    relay.start_run("gw-late", "gateway")
    record_call(relay, "gw-late", 1)
    relay.finish_run("gw-late", "ok")
    late: list[Writer] = []
    timer = threading.Timer(0.3, lambda: late.append(start_writer(address, metrics)))
    timer.start()
    relay.close()
    timer.join()
    late[0].stop()
    assert stored_runs(metrics)["gw-late"].tasks == 1


def test_a_worker_past_its_bound_says_what_it_dropped_once_a_writer_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(relay_module, "_MAX_UNSENT", 4)
    address = str(tmp_path / "gone.sock")
    metrics = relay_metrics(tmp_path).model_copy(update={"flush_interval": 3600.0})
    relay = RecordRelay(metrics, address)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        for number in (1, 2, 3):
            record_call(relay, "gw-1", number)
        relay.flush()  # no writer: the last 4 records are kept, the first 2 dropped
        late = start_writer(address, metrics)
        relay.flush()
        relay.close()
        late.stop()
    told = [r.getMessage() for r in caplog.records if r.name == "rolecall.recorder"]
    assert len(told) == 2 and "cannot reach the run writer" in told[0]
    assert told[1] == (
        "the run writer takes records again: sent the 4 kept; dropped 1 call and 1 task while "
        "no run writer took them (past 4 records kept): they are in neither the run logs nor "
        "the store"
    )
    assert stored_attempts(metrics) == 2


def test_a_frame_carries_every_field_of_every_item() -> None:
    attempt = attempt_event(
        outcome="handover", error_kind=ErrorKind.RATE_LIMIT, cost_usd=0.25, error="HTTP 429"
    )
    task = task_event(status="failed", provider=None, model=None, dialect="messages")
    start = RunStart("r", "gateway", {"n": [1, 2]}, time.time())
    end = RunEnd("r", "ok", time.time())
    begun = AttemptStart(
        run_id="r", task_id="t", role="coder", provider="gpt", model="m", attempt=2, stage="x"
    )
    frame = encode_frame([start, begun, attempt, task, end])
    assert decode_frame(frame[4:]) == [start, begun, attempt, task, end]


def _lines(tmp_path: Path, run_id: str, kind: str) -> int:
    events = read_run(run_log_path(tmp_path / "runs", run_id)).events or []
    return sum(1 for event in events if event.get("type") == kind)


def test_a_writer_killed_between_its_write_and_its_confirmation_writes_each_call_once(
    tmp_path: Path, writer: Writer
) -> None:
    # The worker flushes only when told: its thread must not read the writer's confirmation.
    slow = writer.metrics.model_copy(update={"flush_interval": 3600.0})
    relay = RecordRelay(slow, writer.address)
    relay.start_run("gw-0", "gateway")
    record_call(relay, "gw-0", 1)
    retried = {"run_id": "gw-0", "task_id": "gw-0-task-2"}
    relay.emit(attempt_event(**retried, attempt=1, outcome="retry", error_kind="timeout"))
    relay.emit(attempt_event(**retried, attempt=2))
    relay.emit(task_event(**retried, attempts=2))
    relay.flush()
    wait_until(lambda: stored_attempts(writer.metrics) == 3)  # written by the first writer
    assert relay._sock is not None
    # Its confirmation never reaches the worker: the writer is killed before it is read.
    assert select.select([relay._sock], [], [], 10)[0]
    relay._sock.recv(64)
    writer.kill()

    second = start_writer(writer.address, writer.metrics)
    record_call(relay, "gw-0", 3)  # the worker sends what the first never confirmed, then this
    relay.finish_run("gw-0", "ok")
    relay.close()
    second.stop()

    run = stored_runs(writer.metrics)["gw-0"]
    assert (run.status, run.tasks, run.attempts) == ("ok", 3, 4)
    assert stored_attempts(writer.metrics) == 4
    with open_store(writer.metrics.url) as store:
        assert sum(row.requests for row in store.metrics()) == 4  # the rollups count each once
    assert (_lines(tmp_path, "gw-0", "attempt"), _lines(tmp_path, "gw-0", "task")) == (4, 3)


def test_a_run_whose_end_a_killed_writer_never_confirmed_stays_the_workers_run(
    tmp_path: Path, writer: Writer
) -> None:
    slow = writer.metrics.model_copy(update={"flush_interval": 3600.0})
    relay = RecordRelay(slow, writer.address)
    relay.start_run("gw-0", "gateway")
    record_call(relay, "gw-0", 1)
    relay.flush()
    wait_until(lambda: stored_attempts(writer.metrics) == 1)
    wait_until(lambda: all_confirmed(relay))
    record_call(relay, "gw-0", 2)
    relay.finish_run("gw-0", "ok")  # a worker stopping: its run's end is its last record
    relay.flush()
    wait_until(lambda: stored_runs(writer.metrics)["gw-0"].status == "ok")
    assert relay._sock is not None
    assert select.select([relay._sock], [], [], 10)[0]
    relay._sock.recv(64)  # that confirmation is lost: the writer is killed first
    writer.kill()

    second = start_writer(writer.address, writer.metrics)
    relay.close()  # sends the next writer the call and the end again, the run reopened first
    second.stop()

    run = stored_runs(writer.metrics)["gw-0"]
    assert (run.kind, run.status, run.tasks, run.attempts) == ("gateway", "ok", 2, 2)
    logged = read_run(run_log_path(tmp_path / "runs", "gw-0"))
    assert (logged.kind, logged.status, len(logged.tasks)) == ("gateway", "ok", 2)


def test_a_run_reopened_by_a_restarted_writer_reads_from_its_log_as_live_not_abandoned(
    tmp_path: Path, writer: Writer
) -> None:
    relay = RecordRelay(writer.metrics, writer.address)
    relay.start_run("gw-0", "gateway")
    record_call(relay, "gw-0", 1)
    relay.flush()
    wait_until(lambda: stored_attempts(writer.metrics) == 1)
    wait_until(lambda: all_confirmed(relay))
    writer.kill()  # its lock is gone: the log's first run_start names a dead writer

    second = start_writer(writer.address, writer.metrics)
    record_call(relay, "gw-0", 2)
    relay.flush()  # reopens the run with the second writer, which holds it now
    wait_until(lambda: stored_attempts(writer.metrics) == 2)
    path = run_log_path(tmp_path / "runs", "gw-0")
    live = read_run(path)
    assert (live.status, len(live.tasks)) == ("running", 2)
    assert stored_runs(writer.metrics)["gw-0"].status == "running"  # as the store says

    relay.finish_run("gw-0", "ok")
    relay.close()
    second.kill()  # the second writer gone too, after the run's end: the end stands
    finished = read_run(path)
    assert (finished.kind, finished.status, len(finished.tasks)) == ("gateway", "ok", 2)


def test_a_stopping_writer_beats_while_its_recorder_closes(tmp_path: Path) -> None:
    writer = start_writer(str(tmp_path / "records.sock"), relay_metrics(tmp_path), beats=True)
    assert writer.proc.stdout is not None
    beats: list[str] = []
    threading.Thread(target=lambda: beats.extend(writer.proc.stdout or ()), daemon=True).start()
    relay = RecordRelay(writer.metrics, writer.address)
    relay.start_run("gw-0", "gateway")
    record_call(relay, "gw-0", 1)
    relay.flush()
    wait_until(lambda: stored_attempts(writer.metrics) == 1)
    wait_until(lambda: all_confirmed(relay))
    # Another process holds the store's write lock: the writer's last write (the run's
    # end, its worker gone) waits for it, and so does the close of its recorder.
    holder = sqlite3.connect(tmp_path / "m.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        relay.close()
        writer.proc.send_signal(signal.SIGTERM)
        told = len(beats)
        # Still closing, and beating: the parent must not take it for a frozen writer.
        wait_until(lambda: len(beats) >= told + 2 or writer.proc.poll() is not None, 15)
        assert writer.proc.poll() is None and len(beats) >= told + 2
    finally:
        holder.rollback()
        holder.close()
    writer.stop()
    assert stored_runs(writer.metrics)["gw-0"].status == "interrupted"


def _shown_status(metrics: MetricsConfig, run_id: str) -> str:
    """The status ``rolecall runs list`` shows: a running run whose writer is gone is
    abandoned."""
    with open_store(metrics.url) as store:
        summary = next(run for run in store.runs(limit=100) if run.run_id == run_id)
        return settle_summary(summary, store.run_meta(run_id)).status


def test_an_idle_workers_run_is_reopened_by_a_restarted_writer_not_shown_abandoned(
    tmp_path: Path, writer: Writer
) -> None:
    busy = RecordRelay(writer.metrics, writer.address)
    idle = RecordRelay(writer.metrics, writer.address)
    busy.start_run("gw-busy", "gateway")
    idle.start_run("gw-idle", "gateway")
    for relay in (busy, idle):
        wait_until(lambda relay=relay: all_confirmed(relay))  # type: ignore[misc]
    writer.kill()
    second = start_writer(writer.address, writer.metrics)
    record_call(busy, "gw-busy", 1)  # only the busy worker has something to send
    wait_until(lambda: stored_attempts(writer.metrics) == 1)
    # The idle worker serves on with its run open: the next writer is told of it too.
    wait_until(lambda: _shown_status(writer.metrics, "gw-idle") == "running")
    assert _shown_status(writer.metrics, "gw-busy") == "running"
    assert read_run(run_log_path(tmp_path / "runs", "gw-idle")).status == "running"
    for relay in (busy, idle):
        relay.close()
    second.stop()
