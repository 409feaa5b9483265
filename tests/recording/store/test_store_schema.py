"""Migrations, re-opening, retention, and opening stores by URL."""

from __future__ import annotations

import socket
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from factories import attempt_event, task_event
from rolecall.errors import ConfigError, ErrorKind, MissingExtra
from rolecall.events import AttemptEvent
from rolecall.recording.store import (
    MetricsStore,
    StoreError,
    StoreNotFound,
    open_store,
    sqlite_path,
)
from rolecall.recording.store import base as store_base
from rolecall.recording.store.migrations import LATEST_VERSION, MIGRATIONS


def _attempt(
    ts: float, provider: str = "gpt", outcome: str = "ok", **extra: object
) -> AttemptEvent:
    return attempt_event(
        run_id=str(extra.pop("run_id", "run-1")),
        task_id=str(extra.pop("task_id", "t1")),
        role=str(extra.pop("role", "coder")),
        provider=provider,
        model="m",
        outcome=outcome,
        error_kind=None if outcome == "ok" else ErrorKind.SERVER,
        latency_ms=float(extra.pop("latency_ms", 100.0)),
        input_tokens=10,
        output_tokens=5,
        ts=ts,
    )


def _applied(store: MetricsStore) -> list[tuple[int, str]]:
    return [
        (int(v), str(n))
        for v, n in store._read("SELECT version, name FROM schema_migrations ORDER BY version")
    ]


def test_new_store_reaches_latest_version(store: MetricsStore) -> None:
    assert store.schema_version() == LATEST_VERSION
    assert _applied(store) == [(m.version, m.name) for m in MIGRATIONS]


def test_reopening_is_idempotent_and_keeps_data(store_url: str) -> None:
    first = open_store(store_url)
    first.record([_attempt(time.time())])
    first.close()
    for _ in range(2):
        again = open_store(store_url)
        assert again.schema_version() == LATEST_VERSION
        assert _applied(again) == [(m.version, m.name) for m in MIGRATIONS]
        assert again.migrate() == LATEST_VERSION
        assert again.metrics()[0].requests == 1
        again.close()


def test_a_newer_schema_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    with store._write() as cursor:
        store._exec(
            cursor,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (LATEST_VERSION + 1, "from the future", time.time()),
        )
    store.close()
    with pytest.raises(StoreError, match="upgrade rolecall"):
        open_store(store_url)


def test_a_half_applied_migration_rolls_back(tmp_path: Path) -> None:
    """Migrations run in one transaction: a failure leaves no partial schema behind."""
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at DOUBLE PRECISION NOT NULL)"
    )
    conn.execute("CREATE TABLE rollup_daily (x INTEGER)")  # migration 2 will collide with it
    conn.commit()
    conn.close()
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    applied = conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    conn.close()
    assert "runs" not in tables and applied == 0


def test_a_store_of_schema_4_keeps_its_rows_and_folds_what_comes_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 5 keeps the attempt that answered a task at once on the task's row; the
    rows written before it stay as they were and read the same."""
    from rolecall.recording.store import base

    url = f"sqlite:///{tmp_path / 'm.db'}"
    with monkeypatch.context() as patch:
        patch.setattr(base, "MIGRATIONS", MIGRATIONS[:4])
        patch.setattr(base, "LATEST_VERSION", 4)
        with open_store(url) as old:
            assert old.schema_version() == 4
    conn = sqlite3.connect(tmp_path / "m.db")
    with conn:
        conn.execute("INSERT INTO runs (run_id, started_at) VALUES ('r', 1.0)")
        conn.execute(
            "INSERT INTO attempts (run_id, task_id, role, provider, model, attempt, outcome, "
            "latency_ms, input_tokens, output_tokens, ts) "
            "VALUES ('r', 'old', 'coder', 'gpt', 'm', 1, 'ok', 40.0, 1, 2, 2.0)"
        )
        conn.execute(
            "INSERT INTO tasks (run_id, task_id, role, status, provider, model, attempts, "
            "handovers, latency_ms, input_tokens, output_tokens, ts) "
            "VALUES ('r', 'old', 'coder', 'ok', 'gpt', 'm', 1, 0, 41.0, 1, 2, 2.1)"
        )
    conn.close()
    with open_store(url) as store:
        assert store.schema_version() == LATEST_VERSION
        shared = {"run_id": "r", "task_id": "new", "model": "m", "latency_ms": 50.0}
        store.record([attempt_event(**shared, ts=3.0), task_event(**shared, ts=3.1)])
        run = store.run("r")
        assert run is not None
        assert [(t.task_id, [a.latency_ms for a in t.attempts]) for t in run.tasks] == [
            ("old", [40.0]),
            ("new", [50.0]),
        ]
        assert store._read("SELECT task_id FROM attempts") == [("old",)]
        assert store._read("SELECT task_id FROM all_attempts ORDER BY ts") == [("old",), ("new",)]


def test_retention_prunes_raw_rows_but_keeps_rollups(store: MetricsStore) -> None:
    now = time.time()
    old = now - 40 * 86400
    store.record(
        [
            _attempt(old, run_id="old", task_id="a"),
            task_event(
                run_id="old",
                task_id="a",
                role="coder",
                provider="gpt",
                model="m",
                latency_ms=100.0,
                ts=old + 1,
            ),
            _attempt(now, run_id="new", task_id="b", outcome="retry"),
        ]
    )
    before = store.metrics()
    removed = store.prune(now - 30 * 86400)
    assert removed == 2  # one attempt, one task
    assert store.metrics() == before
    old_run = store.run("old")
    assert old_run is not None and old_run.tasks == []  # raw rows gone, summary kept
    assert [s.run_id for s in store.runs()] == ["new", "old"]
    new_run = store.run("new")
    assert new_run is not None and len(new_run.tasks[0].attempts) == 1


def test_retention_deletes_in_parts_and_as_many_rows_as_asked(
    store: MetricsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten million old rows in one transaction held the store from every other writer
    for most of a minute: rows go a part at a time, and a caller may ask for fewer."""
    monkeypatch.setattr(store_base, "PRUNE_PART", 2)
    now = time.time()
    old = [_attempt(now - 40 * 86400 + n, run_id="old", task_id=f"t{n}") for n in range(5)]
    store.record([*old, _attempt(now, run_id="new", task_id="b")])
    assert store.prune(now - 30 * 86400, most=3) == 3
    assert len(store._read("SELECT id FROM attempts")) == 3
    assert store.prune(now - 30 * 86400) == 2  # the rest, in parts of two
    assert store._read("SELECT run_id FROM all_attempts") == [("new",)]
    assert store.prune(now - 30 * 86400) == 0


def test_sqlite_url_forms(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///rel/m.db", tmp_path) == tmp_path / "rel" / "m.db"
    assert sqlite_path("sqlite:////abs/m.db", tmp_path) == Path("/abs/m.db")
    assert sqlite_path("sqlite://:memory:") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite://") is None


def test_relative_sqlite_url_creates_its_directories(tmp_path: Path) -> None:
    store = open_store("sqlite:///deep/dir/m.db", base_dir=tmp_path)
    store.close()
    assert (tmp_path / "deep" / "dir" / "m.db").is_file()


def test_sqlite_uses_wal_and_normal_sync(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert store._read("PRAGMA journal_mode")[0][0] == "wal"
        assert store._read("PRAGMA synchronous")[0][0] == 1  # NORMAL
    finally:
        store.close()


def test_in_memory_store_works() -> None:
    with open_store("sqlite://:memory:") as store:
        store.record([_attempt(time.time())])
        assert store.metrics()[0].requests == 1


def test_read_only_open_does_not_create_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFound, match="no metrics recorded yet"):
        open_store("sqlite:///none.db", base_dir=tmp_path, create=False)
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    "tables",
    [
        ["CREATE TABLE notes (id INTEGER, body TEXT)", "INSERT INTO notes VALUES (1, 'keep me')"],
        # Another framework's migrations table of the same name (Rails), beside its own tables.
        [
            "CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY)",
            "INSERT INTO schema_migrations VALUES ('20240101120000')",
            "CREATE TABLE notes (id INTEGER, body TEXT)",
        ],
    ],
)
def test_a_database_of_another_application_is_refused_and_left_as_it_is(
    tmp_path: Path, tables: list[str]
) -> None:
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    for statement in tables:
        conn.execute(statement)
    conn.commit()
    conn.close()
    before = path.read_bytes()
    for create in (True, False):
        with pytest.raises(StoreError, match=r"not a rolecall metrics store .*notes") as refused:
            open_store(f"sqlite:///{path}", create=create)
        assert "upgrade rolecall" not in refused.value.message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_a_reader_writes_nothing_to_an_empty_file_or_a_current_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreNotFound):
        open_store(f"sqlite:///{empty}", create=False)
    assert empty.stat().st_size == 0
    path = tmp_path / "m.db"
    with open_store(f"sqlite:///{path}") as store:
        store.record([_attempt(time.time())])
    before = path.read_bytes()
    with open_store(f"sqlite:///{path}", create=False) as store:
        assert store.metrics()[0].requests == 1
    assert path.read_bytes() == before


def test_a_reader_does_not_wait_for_a_writer_holding_the_store(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with open_store(f"sqlite:///{path}") as store:
        store.record([_attempt(time.time())])
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        with open_store(f"sqlite:///{path}", create=False) as store:
            assert store.metrics()[0].requests == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_damaged_store_is_one_error_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(StoreError, match="not a SQLite database; move it aside") as damaged:
        open_store(f"sqlite:///{garbage}", create=False)
    assert str(garbage) in str(damaged.value)
    assert garbage.read_bytes() == bytes(range(256)) * 64
    path = tmp_path / "m.db"
    with open_store(f"sqlite:///{path}") as store:
        store.record([_attempt(time.time())])
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE runs")
    conn.commit()
    conn.close()
    store = open_store(f"sqlite:///{path}", create=False)
    with store, pytest.raises(StoreError, match=r"no such table: runs.*move it aside") as broken:
        store.runs()
    assert str(path) in str(broken.value)
    with pytest.raises(StoreError, match="not a regular file"):
        open_store(f"sqlite:///{tmp_path}", create=False)


def test_unsupported_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.url.*mysql://u:\*\*\*@h/db"):
        open_store("mysql://u:secret-password@h/db")


def test_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtra, match=r"rolecall\[postgres\]") as info:
        open_store("postgresql://u@127.0.0.1:1/db")
    assert info.value.extra == "postgres"
    assert "psycopg" in info.value.message


def test_unreachable_postgres_is_one_clear_error() -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before connecting: nothing listens
    with pytest.raises(StoreError, match=r"cannot connect to the metrics store") as info:
        open_store(f"postgresql://user:hunter2-secret@127.0.0.1:{port}/db")
    assert "hunter2-secret" not in info.value.message


def test_a_store_of_schema_6_reads_its_tasks_and_takes_the_workflows_outcomes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 7 keeps what the workflow concluded of a task; a task stored before reads
    as it was, and an outcome stored after sets its status without touching the metrics."""
    from rolecall.events import TaskOutcome
    from rolecall.recording.store import base

    url = f"sqlite:///{tmp_path / 'm.db'}"
    shared = {"run_id": "r", "task_id": "plan", "model": "m", "latency_ms": 50.0}
    with monkeypatch.context() as patch:
        patch.setattr(base, "MIGRATIONS", MIGRATIONS[:6])
        patch.setattr(base, "LATEST_VERSION", 6)
        with open_store(url) as old:
            old.record([attempt_event(**shared, ts=3.0), task_event(**shared, ts=3.1)])
    with open_store(url) as store:
        assert store.schema_version() == LATEST_VERSION
        run = store.run("r")
        assert run is not None and [(t.task_id, t.status, t.note) for t in run.tasks] == [
            ("plan", "ok", None)
        ]
        outcome = TaskOutcome(
            run_id="r", task_id="plan", role="planner", stage="plan", status="failed",
            error="the plan is still invalid", ts=3.2,
        )  # fmt: skip
        store.record_rows((), (), [outcome])
        run = store.run("r")
        assert run is not None
        assert [(t.status, t.error, len(t.attempts)) for t in run.tasks] == [
            ("failed", "the plan is still invalid", 1)
        ]
        assert [(s.tasks, s.tasks_failed) for s in store.runs()] == [(1, 1)]
        [row] = store.metrics()
        assert (row.requests, row.successes) == (1, 1)
