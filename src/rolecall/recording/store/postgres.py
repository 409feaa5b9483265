"""PostgreSQL backend (psycopg 3, the ``rolecall[postgres]`` extra).

Writers from several processes serialise on a transaction-scoped advisory lock so that
the rollup read-merge-write never interleaves; attempts go in with ``COPY``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rolecall._secrets import redact
from rolecall.errors import MissingExtra
from rolecall.events import AttemptEvent
from rolecall.recording.store import StoreError, describe_url
from rolecall.recording.store.base import MetricsStore
from rolecall.recording.store.statements import ATTEMPT_COLUMNS, attempt_values, rows_of

__all__ = ["PostgresStore"]

# Any constant works; it only has to be the same in every rolecall process.
_WRITER_LOCK = 0x726F6C65
_COPY_ATTEMPTS = f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN"


class PostgresStore(MetricsStore):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MissingExtra("postgres", "psycopg", "a PostgreSQL metrics store") from exc
        super().__init__(describe_url(url))
        self._psycopg = psycopg
        # A NUL in text, a number past its column's range, a NULL where none goes.
        self._data_errors = (*self._data_errors, psycopg.DataError, psycopg.IntegrityError)
        self._url = url
        self._sql_cache: dict[str, str] = {}
        self._conn: Any = None
        with self._lock:
            self._connection()
        try:
            self.migrate()
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare the metrics store {self.label}: {exc}") from exc

    def _connection(self) -> Any:
        """The open connection, reconnecting after the server dropped it (lock held)."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            self._conn = self._psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            first_line = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            raise StoreError(
                f"cannot connect to the metrics store {self.label}: {first_line}"
            ) from exc
        return self._conn

    def _sql(self, sql: str) -> str:
        converted = self._sql_cache.get(sql)
        if converted is None:
            converted = self._sql_cache[sql] = sql.replace("?", "%s")
        return converted

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))
                yield cursor

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            with conn.cursor() as cursor:
                cursor.execute(self._sql(sql), tuple(params))
                return list(cursor.fetchall())

    def _insert_attempts(self, cursor: Any, events: Sequence[AttemptEvent]) -> None:
        with cursor.copy(_COPY_ATTEMPTS) as copy:
            for row in rows_of(attempt_values(events), len(ATTEMPT_COLUMNS)):
                copy.write_row(row)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
