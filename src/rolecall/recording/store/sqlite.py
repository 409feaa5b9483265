"""SQLite backend: WAL journal, synchronous=NORMAL, one writer at a time.

WAL with synchronous=NORMAL keeps every committed batch across a killed process (only
a power loss can drop the last commits) and lets readers work while a batch is written.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from rolecall.events import AttemptEvent
from rolecall.recording.store import StoreError, StoreNotFound, file_identity
from rolecall.recording.store.base import MetricsStore
from rolecall.recording.store.migrations import LATEST_VERSION, migrations_table_is_ours
from rolecall.recording.store.statements import (
    ATTEMPT_COLUMNS,
    NULLABLE_ATTEMPT_TEXT,
    NULLABLE_TASK_TEXT,
    TASK_COLUMNS,
    TaskRow,
    attempt_values,
    task_values,
)

__all__ = ["SqliteStore"]

# Rows per INSERT statement, at most: 32 rows of 17 values stay under the 999 values a
# statement may bind in SQLite before 3.32.
_MOST_ROWS = 32

_Event = TypeVar("_Event", AttemptEvent, TaskRow)


class _BulkInsert(Generic[_Event]):
    """Rows go in as INSERTs of 32, 16, ... 1 rows (each statement prepared once).

    One multi-row statement is one ``sqlite3_step``: the per-row overhead of
    ``executemany`` (a step, a reset and a release and retake of the GIL each) is paid
    once per 32 rows. A busy event loop holding the GIL makes every retake wait, so
    fewer of them is what keeps a flush short while the gateway is under load. Each
    statement's values are built for it alone: a batch's whole list of them would be
    traversed by every collection of the young generation while it lives.

    The mostly NULL text columns are bound as the int 0 and stored through
    ``NULLIF(?, 0)``: an int binds at a fraction of None's cost (see
    :func:`_bind_none_as_is`), and no text equals an int, so every string is kept as
    it is, "0" and "" among them.
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        nullable: Collection[str],
        values: Callable[[Sequence[_Event], Any], list[Any]],
    ) -> None:
        self.values: Callable[[Sequence[_Event], Any], list[Any]] = values
        row = "(" + ", ".join("NULLIF(?, 0)" if c in nullable else "?" for c in columns) + ")"
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self.sql: dict[int, str] = {}
        size = _MOST_ROWS
        while size:
            self.sql[size] = head + ", ".join([row] * size)
            size //= 2

    def run(self, cursor: sqlite3.Cursor, events: Sequence[_Event]) -> None:
        """Insert the events' rows."""
        values, execute, sql = self.values, cursor.execute, self.sql
        done, size, total = 0, _MOST_ROWS, len(events)
        while done < total:
            while size > total - done:
                size //= 2
            execute(sql[size], values(events[done : done + size], 0))
            done += size


def _bind_none_as_is() -> None:
    """Bind None (NULL) without the sqlite3 module's search for an adapter.

    None is not among the types the module binds directly: each None value looks for an
    adapter and, finding none, builds and drops an AttributeError (about 0.3 us). Rows
    carry several (no error, no cost, no stage...), so None gets an adapter of its own
    that returns it unchanged, which binds NULL exactly as before. The registry is the
    module's, shared by the process: one already there is left alone.
    """
    adapters: dict[tuple[type, type], Any] = getattr(sqlite3, "adapters", {})
    if (type(None), sqlite3.PrepareProtocol) not in adapters:
        sqlite3.register_adapter(type(None), _NOTHING.get)  # C-level: returns None


_NOTHING: dict[None, None] = {}
_bind_none_as_is()

_INSERT_ATTEMPTS = _BulkInsert("attempts", ATTEMPT_COLUMNS, NULLABLE_ATTEMPT_TEXT, attempt_values)
_INSERT_TASKS = _BulkInsert("tasks", TASK_COLUMNS, NULLABLE_TASK_TEXT, task_values)


log = logging.getLogger("rolecall.recording.store")

_OPEN_TIMEOUT_S = 30.0


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out another connection doing the same on a new file.

    SQLite answers "database is locked" at once, without calling the busy handler, when
    two connections change a fresh database's journal mode together, so wait here.
    """
    deadline = time.monotonic() + _OPEN_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


# Tables SQLite itself may add to any database.
_SQLITE_OWN = frozenset({"sqlite_sequence", "sqlite_stat1", "sqlite_stat4"})


def _problem(path: Path | None, exc: Exception) -> str:
    """What is wrong with the store file and what to do about it, from SQLite's error."""
    text = str(exc)
    if path is not None and path.exists() and not path.is_file():
        return f"{text}: it is not a regular file; point metrics.url at a database file"
    if "locked" in text:
        return f"{text}: another process holds it; try again once that process is done"
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return (
            f"{text}: the file is damaged or not a SQLite database; move it aside "
            "(rolecall starts a new store there) or point metrics.url at another file"
        )
    if "no such table" in text or "no such column" in text:
        return (
            f"{text}: the file is not a whole rolecall store; move it aside "
            "(rolecall starts a new store there) or point metrics.url at another file"
        )
    if path is not None and path.is_file() and not os.access(path.parent, os.W_OK):
        # Reading too: SQLite makes the WAL's index (-shm) beside the file to read it.
        return (
            f"{text}: this user cannot write to {path.parent}, where SQLite keeps the "
            "store's lock and journal files (even to read it); make that directory "
            "writable, or copy the store to one that is and point metrics.url at the copy"
        )
    return text


class SqliteStore(MetricsStore):
    dialect = "sqlite"
    # NULL for a NaN, text it cannot encode, a value of a type it cannot bind.
    _data_errors = (
        *MetricsStore._data_errors,
        sqlite3.IntegrityError,
        sqlite3.DataError,
        sqlite3.ProgrammingError,
    )

    def __init__(self, path: Path | None, *, read_only: bool = False) -> None:
        """Open (creating parent directories) and migrate; ``None`` is an in-memory db.

        ``read_only`` writes nothing to a store already at the latest schema, and raises
        :class:`StoreNotFound` for a file that holds no tables at all. A database of
        another application (tables, but none of ours) is refused either way.
        """
        super().__init__(str(path) if path is not None else ":memory:")
        self.path = path
        self._data_version: int | None = None
        self._open(read_only)

    def _open(self, read_only: bool) -> None:
        path = self.path
        try:
            if path is not None and not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path) if path is not None else ":memory:",
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # guarded by self._lock
                timeout=_OPEN_TIMEOUT_S,
            )
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the metrics store {self.label}: {_problem(path, exc)}"
            ) from exc
        self._identity = file_identity(path)
        try:
            self._prepare(read_only)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.Error | OSError):
                problem = _problem(path, exc)
                raise StoreError(f"cannot open the metrics store {self.label}: {problem}") from exc
            raise

    def _reopen_if_replaced(self) -> None:
        """Open the file at ``path`` again when it is no longer the one open: deleted, or
        moved aside and replaced, while recording. The open connection would go on writing
        into a file no one can read any more."""
        if self.path is None or file_identity(self.path) == self._identity:
            return
        with self._lock:
            if file_identity(self.path) == self._identity:
                return  # another thread opened it again meanwhile
            log.warning(
                "the metrics store %s was deleted or replaced while recording; "
                "recording goes on in the file now at that path",
                self.label,
            )
            self._conn.close()
            self._data_version = None
            self._rolled_back()  # the rollups written so far are in the old file
        self._open(read_only=False)  # outside the lock: migrating takes it

    def _prepare(self, read_only: bool) -> None:
        self._conn.execute(f"PRAGMA busy_timeout={int(_OPEN_TIMEOUT_S * 1000)}")
        tables = self._tables()
        if read_only and self.path is not None and not tables:
            raise StoreNotFound(self.path)  # an empty file: nothing recorded yet
        if read_only:
            version = self.schema_version()
            self._refuse_newer(version)
            if version == LATEST_VERSION:
                return  # nothing to migrate: a reader writes nothing
        _enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    def _tables(self) -> set[str]:
        """The database's tables and views; refuses one that holds none of rolecall's (a
        ``schema_migrations`` table of another framework is not rolecall's)."""
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        ).fetchall()
        tables = {str(row[0]) for row in rows} - _SQLITE_OWN
        if not tables:
            return tables
        if "schema_migrations" in tables:
            columns = self._conn.execute("PRAGMA table_info(schema_migrations)").fetchall()
            if migrations_table_is_ours({str(column[1]) for column in columns}):
                return tables
        named = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(
            f"{self.label} is not a rolecall metrics store (it holds the tables {named} "
            "of another application): point metrics.url at another file; rolecall "
            "leaves this one as it is"
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        self._reopen_if_replaced()
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                self._rolled_back()
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                self._committed()
            finally:
                cursor.close()

    def _rollups_unchanged(self, cursor: Any) -> bool:
        # data_version moves when another connection commits, never for this one's own.
        version = cursor.execute("PRAGMA data_version").fetchone()[0]
        unchanged: bool = version == self._data_version
        self._data_version = version
        return unchanged

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                problem = _problem(self.path, exc)
                raise StoreError(f"cannot read the metrics store {self.label}: {problem}") from exc

    def _insert_attempts(self, cursor: Any, events: Sequence[AttemptEvent]) -> None:
        _INSERT_ATTEMPTS.run(cursor, events)

    def _insert_tasks(self, cursor: Any, rows: Sequence[TaskRow]) -> None:
        _INSERT_TASKS.run(cursor, rows)

    def integrity_check(self) -> str:
        """``ok`` when SQLite finds the database file intact."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
