"""Calls in flight in the store: a start written while its call runs goes with its end, and
the start of a process that died mid-call becomes the ``cancelled`` attempt it was, stored
once by whoever opens the store next (schema 8)."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest

from factories import attempt_event
from rolecall.config.schema import MetricsConfig
from rolecall.events import AttemptStart
from rolecall.recording.recorder import Recorder
from rolecall.recording.runwriter import WriterLock
from rolecall.recording.store import open_store
from rolecall.recording.store.migrations import LATEST_VERSION, MIGRATIONS
from rolecall.recording.store.starts import CallsInFlight


def _start(**fields: object) -> AttemptStart:
    values: dict[str, object] = {
        "run_id": "r",
        "task_id": "t",
        "role": "coder",
        "provider": "gpt",
        "model": "gpt-model",
        "attempt": 1,
        "stage": "generate",
        "ts": 1_000.0,
    }
    values.update(fields)
    return AttemptStart(**values)  # type: ignore[arg-type]


def _gone_writer(tmp_path: Path) -> dict[str, object]:
    """The writer record of a process that is gone: its lock file no longer exists."""
    return {"host": socket.gethostname(), "pid": 1, "lock": str(tmp_path / "gone.lock")}


def _in_flight_rows(url: str) -> int:
    with open_store(url) as store:
        return int(store._read("SELECT COUNT(*) FROM attempt_starts")[0][0])


def test_a_dead_writers_call_is_stored_cancelled_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with open_store(url) as store:
        store.start_run("r", "workflow", {"writer": _gone_writer(tmp_path)}, 999.0)
        calls = CallsInFlight([(_start(), 250.0)], (), _gone_writer(tmp_path))
        store.record_rows((), (), in_flight=calls)
    for _ in range(2):  # each open closes what is left: the second finds nothing
        with open_store(url) as store:
            [row] = store.metrics()
            assert (row.requests, row.successes, row.failures) == (1, 0, 1)
            assert row.errors == {"cancelled": 1}
            assert row.latency_avg_ms == pytest.approx(250.0)
            run = store.run("r")
            assert run is not None
            [task] = run.tasks
            assert (task.task_id, task.role, task.provider) == ("t", "coder", "gpt")
            assert [(a.outcome, a.error_kind, a.latency_ms) for a in task.attempts] == [
                ("cancelled", None, 250.0)
            ]
            [summary] = store.runs()
            assert (summary.attempts, summary.handovers, summary.tasks) == (1, 0, 0)
    assert _in_flight_rows(url) == 0


def test_a_live_writers_call_stays_in_flight(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    lock = WriterLock(tmp_path / "runs")
    writer = lock.acquire()
    try:
        with open_store(url) as store:
            store.start_run("r", "workflow", {"writer": writer}, 999.0)
            store.record_rows((), (), in_flight=CallsInFlight([(_start(), 250.0)], (), writer))
        with open_store(url) as store:
            assert store.metrics() == []
            run = store.run("r")
            assert run is not None
            [task] = run.tasks  # in flight: the task runs, its call has no outcome yet
            assert (task.status, task.attempts) == ("running", [])
        assert _in_flight_rows(url) == 1
    finally:
        lock.release()
    with open_store(url) as store:  # the writer is gone now
        assert [row.requests for row in store.metrics()] == [1]


def test_a_call_that_ends_in_the_flush_after_its_start_leaves_no_start(tmp_path: Path) -> None:
    config = MetricsConfig(
        url=f"sqlite:///{tmp_path / 'm.db'}", runs_dir=str(tmp_path / "runs"), flush_interval=3600
    )
    recorder = Recorder(config, install_signal_handlers=False)
    recorder.start_run("r", "workflow")
    quick = _start(task_id="quick")
    recorder.emit_start(quick)
    recorder.emit(attempt_event(task_id="quick", ts=1_000.1))
    slow = _start(task_id="slow")
    recorder.emit_start(slow)
    recorder.flush()  # quick's start and end cancel out; slow's start is written
    assert _in_flight_rows(config.url) == 1
    recorder.emit(attempt_event(task_id="slow", outcome="handover", error_kind="server"))
    recorder.flush()  # slow's end takes its start's row away
    assert _in_flight_rows(config.url) == 0
    recorder.finish_run("r", "ok")
    recorder.close()
    [log] = (tmp_path / "runs").glob("*.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["type"], r.get("task_id")) for r in records if "attempt" in r["type"]] == [
        ("attempt", "quick"),
        ("attempt_start", "slow"),
        ("attempt", "slow"),
    ]
    with open_store(config.url) as store:
        assert sorted((row.successes, row.failures) for row in store.metrics()) == [(1, 1)]
        run = store.run("r")
        assert run is not None
        assert [len(task.attempts) for task in run.tasks] == [1, 1]


def test_a_store_of_schema_7_takes_calls_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolecall.recording.store import base

    url = f"sqlite:///{tmp_path / 'm.db'}"
    with monkeypatch.context() as patch:
        patch.setattr(base, "MIGRATIONS", MIGRATIONS[:7])
        patch.setattr(base, "LATEST_VERSION", 7)
        with open_store(url) as old:
            assert old.schema_version() == 7
            old.record([attempt_event(ts=5.0)])
    conn = sqlite3.connect(tmp_path / "m.db")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "attempt_starts" not in tables
    with open_store(url) as store:
        assert store.schema_version() == LATEST_VERSION == 8
        store.record_rows(
            (),
            (),
            in_flight=CallsInFlight([(_start(task_id="u"), 10.0)], (), _gone_writer(tmp_path)),
        )
    with open_store(url) as store:
        [row] = store.metrics()
        assert (row.requests, row.successes, row.errors) == (2, 1, {"cancelled": 1})
