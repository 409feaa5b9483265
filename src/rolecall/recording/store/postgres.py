"""PostgreSQL backend (psycopg 3, the ``rolecall[postgres]`` extra).

Writers from several processes serialise on a transaction-scoped advisory lock so that
the rollup read-merge-write never interleaves; attempts go in with ``COPY``.

The tables live in the connection's current schema (the first of its ``search_path``).
A schema that holds tables, none of them rolecall's, belongs to another application: it
is refused and left as it is. A store already at the latest schema is opened without a
statement that needs more than the privileges its use does (a reader: ``SELECT``).

Every wait is bounded: connecting, and each statement both in the server
(``statement_timeout``) and here, where a server that stops answering altogether has
its connection cut. A connection the server dropped while idle (a restart) is opened
again at the next use; the statement that found it dropped is sent again.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, TypeVar

from rolecall._secrets import redact
from rolecall.errors import MissingExtra
from rolecall.events import AttemptEvent
from rolecall.recording.store import StoreError, StoreNotFound, describe_url
from rolecall.recording.store.base import MetricsStore
from rolecall.recording.store.migrations import LATEST_VERSION, migrations_table_is_ours
from rolecall.recording.store.statements import ATTEMPT_COLUMNS, attempt_values, rows_of

__all__ = ["PostgresStore"]

# Any constant works; it only has to be the same in every rolecall process.
_WRITER_LOCK = 0x726F6C65
_COPY_ATTEMPTS = f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN"
_CONNECT_TIMEOUT_S = 10
# The server ends a statement running this long; a server that does not answer at all
# has the connection cut a little later.
_STATEMENT_TIMEOUT_S = 30.0
_ANSWER_WAIT_S = 35.0
_SCHEMA_TABLES = """SELECT c.relname FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"""
_MIGRATION_COLUMNS = """SELECT a.attname FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = to_regclass(quote_ident(current_schema()) || '.schema_migrations')
    AND a.attnum > 0 AND NOT a.attisdropped"""

_T = TypeVar("_T")

# What to do about a failure, by the words of the server's or libpq's message.
_FIXES = (
    (
        ("password authentication failed", "no password supplied", 'role "', "peer auth"),
        "check the user name and password in metrics.url",
    ),
    (
        ('database "',),
        "create that database (createdb NAME) or name an existing one in metrics.url",
    ),
    (
        ("permission denied",),
        "grant the metrics.url user what it lacks (USAGE and CREATE on the schema for a new "
        "store; SELECT, INSERT, UPDATE and DELETE on its tables), or use the user that "
        "created the store",
    ),
    (
        ("no schema has been selected",),
        "create the schema its search_path names, or name one in metrics.url "
        "(?options=-csearch_path%3DSCHEMA)",
    ),
    (
        ("invalid uri", "invalid sslmode", "invalid connection option", "invalid integer"),
        "fix the query parameters of metrics.url (libpq connection parameters)",
    ),
    (
        ("ssl",),
        "check sslmode in metrics.url against what the server offers",
    ),
    (
        ("statement timeout", "did not answer", "timeout expired"),
        "check that the PostgreSQL server is up and not overloaded",
    ),
    (
        ("refused", "resolve host", "translate host", "no such file", "could not connect", ""),
        "check that the PostgreSQL server is running and that metrics.url names its host and port",
    ),
)


def _problem(exc: BaseException) -> str:
    """psycopg's message on one line, with what to do about it."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    # "connection failed: connection to server at ... failed: FATAL:  <the reason>"
    reason = first.rsplit("FATAL:", 1)[-1].strip()
    lowered = reason.lower()
    for words, fix in _FIXES:
        if any(word in lowered for word in words):
            return redact(f"{reason}: {fix}")
    return redact(reason)


class _NoAnswer(StoreError):
    """The server did not answer in time: its connection was cut."""


class _Watch:
    """Cuts a connection whose statement gets no answer within ``limit`` seconds."""

    def __init__(self, conn: Any, limit: float) -> None:
        self.cut = False
        self._conn = conn
        self._done = False
        self._timer = threading.Timer(limit, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        if self._done:
            return
        try:
            fd = os.dup(self._conn.pgconn.socket)
        except Exception:  # already closed: the statement ends on its own
            return
        self.cut = True
        with socket.socket(fileno=fd) as sock, suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._done = True
        self._timer.cancel()


class PostgresStore(MetricsStore):
    dialect = "postgres"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        """Connect, check the schema and migrate it; ``read_only`` creates nothing (a
        schema without rolecall's tables raises :class:`StoreNotFound`)."""
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
        try:
            self._prepare(read_only)
        except BaseException:
            self.close()
            raise

    def _prepare(self, read_only: bool) -> None:
        tables = {str(row[0]) for row in self._read(_SCHEMA_TABLES)}
        if tables and "schema_migrations" not in tables:
            self._refuse(tables)
        if "schema_migrations" in tables:
            columns = {str(row[0]) for row in self._read(_MIGRATION_COLUMNS)}
            if not migrations_table_is_ours(columns):
                self._refuse(tables)  # a schema_migrations of another framework
            version = self.schema_version()
            self._refuse_newer(version)
            if version == LATEST_VERSION:
                return  # nothing to create: needs no more privileges than its use does
        elif read_only:
            raise StoreNotFound(label=self.label)
        self.migrate()

    def _refuse(self, tables: set[str]) -> None:
        named = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(
            f"{self.label} is not a rolecall metrics store (its schema holds the tables "
            f"{named} of another application): give rolecall a database or a schema of its "
            "own (?options=-csearch_path%3DSCHEMA in metrics.url); rolecall leaves this one "
            "as it is"
        )

    def _connection(self) -> Any:
        """The open connection, reconnecting after the server dropped it (lock held)."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            conn = self._psycopg.connect(
                self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
            )
        except self._psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the metrics store {self.label}: {_problem(exc)}"
            ) from None
        try:
            with self._watched(conn):
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, false)",
                    (f"{int(_STATEMENT_TIMEOUT_S * 1000)}ms",),
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextmanager
    def _watched(self, conn: Any) -> Iterator[None]:
        """Bound the wait for the server's answers; its errors become :class:`StoreError`."""
        watch = _Watch(conn, _ANSWER_WAIT_S)
        try:
            yield
        except self._data_errors:
            raise  # a value no column takes: the batch is written again without it (base)
        except self._psycopg.Error as exc:
            if watch.cut:
                raise _NoAnswer(
                    f"cannot use the metrics store {self.label}: the server did not answer "
                    f"within {_ANSWER_WAIT_S:g}s: check that the PostgreSQL server is up and "
                    "not overloaded"
                ) from None
            raise StoreError(
                f"cannot use the metrics store {self.label}: {_problem(exc)}"
            ) from None
        finally:
            watch.stop()

    def _retrying(self, first: Callable[[Any], _T]) -> _T:
        """``first(conn)`` on the open connection; once more on a new one when the server
        had dropped the old one before it was sent anything (lock held)."""
        conn = self._connection()
        try:
            with self._watched(conn):
                return first(conn)
        except StoreError as exc:
            if isinstance(exc, _NoAnswer) or conn is not self._conn or not conn.broken:
                raise
        conn = self._connection()
        with self._watched(conn):
            return first(conn)

    def _sql(self, sql: str) -> str:
        converted = self._sql_cache.get(sql)
        if converted is None:
            converted = self._sql_cache[sql] = sql.replace("?", "%s")
        return converted

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            try:
                with ExitStack() as transaction:
                    conn = self._retrying(lambda conn: self._begin(transaction, conn))
                    with self._watched(conn):
                        with conn.cursor() as cursor:
                            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))
                            yield cursor
                        transaction.close()  # COMMIT
            except BaseException:
                self._rolled_back()
                raise
            self._committed()

    @staticmethod
    def _begin(transaction: ExitStack, conn: Any) -> Any:
        # BEGIN is the first thing a write sends: safe to send again on a new connection.
        transaction.enter_context(conn.transaction())
        return conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def read(conn: Any) -> list[tuple[Any, ...]]:
            with conn.cursor() as cursor:
                cursor.execute(self._sql(sql), tuple(params))
                return list(cursor.fetchall())

        with self._lock:
            return self._retrying(read)

    def _insert_attempts(self, cursor: Any, events: Sequence[AttemptEvent]) -> None:
        with cursor.copy(_COPY_ATTEMPTS) as copy:
            for row in rows_of(attempt_values(events), len(ATTEMPT_COLUMNS)):
                copy.write_row(row)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
