"""A metrics store that cannot be written for a while: what it missed is kept and
written once it takes writes again, and the recorder says what it still lacks.

The store here is a real SQLite file another connection holds with ``BEGIN
EXCLUSIVE``; the wait for its lock is cut to a fraction of a second, and the time
between two tries at the store runs on a fake clock. (The PostgreSQL case, a server
down, is in ``store/test_store_postgres.py``.)
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from factories import attempt_event, task_event
from rolecall.config.schema import MetricsConfig
from rolecall.recording import backlog as backlog_module
from rolecall.recording.recorder import Recorder
from rolecall.recording.runlog import read_run, run_log_path
from rolecall.recording.store import open_store
from rolecall.recording.store import sqlite as sqlite_module


class _Clock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sqlite_module, "_OPEN_TIMEOUT_S", 0.2)  # the wait for a lock
    return tmp_path / "m.db"


@contextmanager
def _held(path: Path) -> Iterator[None]:
    """Another process's connection holding the store locked."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def _recorder(tmp_path: Path, db: Path, clock: _Clock) -> Recorder:
    config = MetricsConfig.model_validate(
        {"url": f"sqlite:///{db}", "runs_dir": str(tmp_path / "runs"), "flush_interval": 3600}
    )
    return Recorder(config, install_signal_handlers=False, clock=clock)


def _call(recorder: Recorder, n: int) -> None:
    """One one-off call: a run of one task answered at its first attempt."""
    run_id = f"call-{n}"
    recorder.emit(attempt_event(run_id=run_id, task_id="t"))
    recorder.emit(task_event(run_id=run_id, task_id="t"))
    recorder.flush()


def _stored(db: Path) -> tuple[int, int]:
    with open_store(f"sqlite:///{db}", create=False) as store:
        metrics = store.metrics()
        return (metrics[0].requests if metrics else 0), len(store.runs(limit=100))


def _told(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rolecall.recorder"]


def test_what_a_locked_store_missed_is_written_once_it_is_free(
    tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    recorder = _recorder(tmp_path, db, clock)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        _call(recorder, 0)
        with _held(db):
            for n in (1, 2, 3):
                _call(recorder, n)
        _call(recorder, 4)  # free now, but the next try is not due yet
        assert _stored(db) == (1, 1)
        clock.now += 5.0
        recorder.flush()
        assert _stored(db) == (5, 5)
        recorder.close()
    failed, back = _told(caplog)
    assert "cannot write to the metrics store" in failed and "database is locked" in failed
    assert f"the run logs in {tmp_path / 'runs'} take them" in failed
    assert back.endswith("takes writes again: stored the 4 calls and 4 tasks kept meanwhile")
    assert _stored(db) == (5, 5)


def test_close_says_what_a_store_still_locked_lacks_and_where_it_is(
    tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    recorder = _recorder(tmp_path, db, clock)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        _call(recorder, 0)
        with _held(db):
            _call(recorder, 1)
            _call(recorder, 2)
            recorder.close()
    failed, lacks = _told(caplog)
    assert "database is locked" in failed
    assert lacks.startswith("the metrics store lacks 2 calls and 2 tasks recorded since it failed")
    assert lacks.endswith(f"the run logs in {tmp_path / 'runs'} hold them")
    assert _stored(db) == (1, 1)
    for n in (1, 2):
        assert read_run(run_log_path(tmp_path / "runs", f"call-{n}")).status == "ok"


def test_past_the_bound_the_oldest_are_dropped_counted_and_told(
    tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backlog_module, "MOST_KEPT", 8)  # two one-off calls: 4 records each
    clock = _Clock()
    recorder = _recorder(tmp_path, db, clock)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        _call(recorder, 0)
        with _held(db):
            for n in range(1, 6):
                _call(recorder, n)
        clock.now += 5.0
        recorder.flush()
        recorder.close()
    _, back = _told(caplog)
    assert "stored the 2 calls and 2 tasks kept meanwhile" in back
    assert "it lacks 3 calls and 3 tasks dropped past the 8 records kept" in back
    assert back.endswith(f"the run logs in {tmp_path / 'runs'} hold them")
    assert _stored(db) == (3, 3)
    with open_store(f"sqlite:///{db}", create=False) as store:
        assert {run.run_id for run in store.runs()} == {"call-0", "call-4", "call-5"}


def test_a_second_outage_is_reported_again(
    tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    recorder = _recorder(tmp_path, db, clock)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        _call(recorder, 0)
        for outage in (1, 2):
            with _held(db):
                _call(recorder, outage)
            clock.now += 5.0
            recorder.flush()
        recorder.close()
    told = _told(caplog)
    assert len(told) == 4
    assert ["kept meanwhile" in message for message in told] == [False, True, False, True]
    assert _stored(db) == (3, 3)
