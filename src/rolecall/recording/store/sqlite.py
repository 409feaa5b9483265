"""SQLite backend: WAL journal, synchronous=NORMAL, one writer at a time.

WAL with synchronous=NORMAL keeps every committed batch across a killed process (only
a power loss can drop the last commits) and lets readers work while a batch is written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rolecall.recording.store import StoreError
from rolecall.recording.store.base import ATTEMPT_COLUMNS, MetricsStore, placeholders

__all__ = ["SqliteStore"]

_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({placeholders(len(ATTEMPT_COLUMNS))})"
)


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


class SqliteStore(MetricsStore):
    dialect = "sqlite"

    def __init__(self, path: Path | None) -> None:
        """Open (creating parent directories) and migrate; ``None`` is an in-memory db."""
        super().__init__(str(path) if path is not None else ":memory:")
        self.path = path
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path) if path is not None else ":memory:",
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # guarded by self._lock
                timeout=_OPEN_TIMEOUT_S,
            )
            _enable_wal(self._conn)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(f"PRAGMA busy_timeout={int(_OPEN_TIMEOUT_S * 1000)}")
            self.migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the metrics store {self.label}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                cursor.execute("COMMIT")
            finally:
                cursor.close()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _insert_attempts(self, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        cursor.executemany(_INSERT_ATTEMPT, rows)

    def integrity_check(self) -> str:
        """``ok`` when SQLite finds the database file intact."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
