"""What every metrics store does, over SQL shared by SQLite and PostgreSQL.

Backends supply a connection, a write transaction (one writer at a time, so rollup
read-merge-write is safe across processes) and the bulk insert of attempts; the
statements and row values are in :mod:`~rolecall.recording.store.statements`. A batch
merges its rollup deltas into the stored rows; a backend that can tell that no other
connection wrote since its own last batch (SQLite) merges into the rows it wrote then
instead of reading and decoding them again.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from rolecall.events import AttemptEvent, Event, TaskEvent, TaskOutcome
from rolecall.recording.store import StoreError
from rolecall.recording.store.migrations import LATEST_VERSION, MIGRATIONS, Dialect
from rolecall.recording.store.outcomes import INSERT_OUTCOME, add_runs, outcome_rows
from rolecall.recording.store.reading import StoreReading, TimeArg
from rolecall.recording.store.resent import unstored
from rolecall.recording.store.rollups import (
    Rollup,
    RollupKey,
    aggregate,
    count_tasks,
    daily_from_hourly,
    run_deltas,
)
from rolecall.recording.store.starts import (
    NO_CALLS,
    CallsInFlight,
    StartsGone,
    dead_starts,
    drop_settled,
    write_in_flight,
)
from rolecall.recording.store.statements import (
    ADD_TO_RUN,
    ATTEMPT_COLUMNS,
    FINISH_RUN,
    INSERT_TASK,
    ROLLUP_SQL,
    START_RUN,
    TASK_COLUMNS,
    TaskRow,
    fold_answered,
    placeholders,
    rows_of,
    task_values,
)
from rolecall.recording.store.storable import (
    CHANGE_TOLD,
    finite_sums,
    storable_events,
    storable_text,
)

__all__ = ["ATTEMPT_COLUMNS", "MetricsStore", "TimeArg", "placeholders"]


log = logging.getLogger("rolecall.recording.store")

# Old rows a transaction of ``prune`` deletes, at most (tens of milliseconds): ten million
# in one held the store from every other writer for most of a minute.
PRUNE_PART = 10_000
# Task ids looked up in one statement (far below SQLite's and PostgreSQL's parameter limits).
_LOOKUP_CHUNK = 500


class MetricsStore(StoreReading, ABC):
    """Runs, tasks, attempts and rollups; all methods are thread-safe."""

    dialect: ClassVar[Dialect]
    # What a backend raises for a value it cannot store (the batch is then written again,
    # with such values changed); never for a store it cannot reach or write.
    _data_errors: tuple[type[Exception], ...] = (ValueError, TypeError, OverflowError)

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        # The rollup rows this connection last wrote, by table: while nobody else writes,
        # the next batch merges into them instead of reading and decoding them again.
        self._written_rollups: dict[str, dict[RollupKey, Rollup]] = {}
        self._pending_rollups: dict[str, dict[RollupKey, Rollup]] = {}
        # Events stored with values changed, by kind of change (see record_rows).
        self.changed: Counter[str] = Counter()
        self._reported: set[str] = set()

    # -- backend primitives -------------------------------------------------------------

    @abstractmethod
    def _write(self) -> AbstractContextManager[Any]:
        """A cursor inside a write transaction that excludes other writers."""

    @abstractmethod
    def _insert_attempts(self, cursor: Any, events: Sequence[AttemptEvent]) -> None:
        """Insert the attempts' rows (:func:`attempt_values`)."""

    def _insert_tasks(self, cursor: Any, rows: Sequence[TaskRow]) -> None:
        """Insert the tasks' rows (:func:`task_values`)."""
        self._exec_many(cursor, INSERT_TASK, rows_of(task_values(rows), len(TASK_COLUMNS)))

    @abstractmethod
    def close(self) -> None: ...

    def _rollups_unchanged(self, cursor: Any) -> bool:
        """Inside a write transaction: True when no other connection has written since
        this one's last write, so the rollup rows it wrote are still those stored. A
        backend that cannot tell says False, and every batch reads its rows again."""
        return False

    def _committed(self) -> None:
        """The backend calls this under the lock once a write transaction committed."""
        if self._pending_rollups:
            self._written_rollups, self._pending_rollups = self._pending_rollups, {}

    def _rolled_back(self) -> None:
        """The backend calls this under the lock when a write transaction failed: the
        kept rows may hold merges that were never stored."""
        self._written_rollups, self._pending_rollups = {}, {}

    def _sql(self, sql: str) -> str:
        return sql

    def _exec(self, cursor: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return cursor.execute(self._sql(sql), params)

    def _exec_many(self, cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cursor.executemany(self._sql(sql), rows)

    def __enter__(self) -> MetricsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version reached."""
        with self._write() as cursor:
            self._exec(
                cursor,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
            )
            applied = {
                int(row[0])
                for row in self._exec(cursor, "SELECT version FROM schema_migrations").fetchall()
            }
            self._refuse_newer(max(applied, default=0))
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.statements(self.dialect):
                    self._exec(cursor, statement)
                self._exec(
                    cursor,
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
        return self.schema_version()

    def _refuse_newer(self, version: int) -> None:
        if version > LATEST_VERSION:
            raise StoreError(
                f"the metrics store {self.label} has schema version {version}, newer "
                f"than this rolecall understands ({LATEST_VERSION}): upgrade rolecall"
            )

    def schema_version(self) -> int:
        rows = self._read("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0) if rows else 0

    # -- writing ------------------------------------------------------------------------

    def record(self, events: Sequence[Event]) -> None:
        """Store a batch of events and fold it into the rollups, in one transaction."""
        self.record_rows(
            [e for e in events if isinstance(e, AttemptEvent)],
            [e for e in events if isinstance(e, TaskEvent)],
        )

    def record_rows(
        self,
        attempts: Sequence[AttemptEvent],
        tasks: Sequence[TaskEvent],
        outcomes: Sequence[TaskOutcome] = (),
        *,
        resent: bool = False,
        in_flight: CallsInFlight = NO_CALLS,
    ) -> None:
        """:meth:`record` for a batch already split into its attempts and its tasks, each
        in their order, and what the front end concluded of its tasks (after them).

        ``resent``: a batch a worker sent again, some of which may be stored already
        (:mod:`~rolecall.recording.store.resent`): what is stored is left out.
        ``in_flight``: the calls the batch starts and ends (:mod:`.starts`).

        An event holding what no column takes (a NaN, a lone surrogate...: see
        :mod:`~rolecall.recording.store.storable`) does not cost the batch: the batch is
        written again with such values changed, counted in :attr:`changed`. Should one
        event still be refused, each event is written on its own and only those refused
        are dropped (counted as ``dropped``).
        """
        if resent and (attempts or tasks or outcomes):
            with self._write() as cursor:
                attempts, tasks, outcomes = unstored(
                    lambda sql, params: self._exec(cursor, sql, params).fetchall(),
                    attempts,
                    tasks,
                    outcomes,
                )
        if not attempts and not tasks and not outcomes and not in_flight:
            return
        try:
            self._record_rows(attempts, tasks, outcomes, in_flight)
            return
        except self._data_errors:
            stored_attempts, stored_tasks, changes = storable_events(attempts, tasks)
        self._note_changes(changes)
        try:
            self._record_rows(stored_attempts, stored_tasks, outcomes, in_flight)
        except self._data_errors:
            self._record_one_by_one(stored_attempts, stored_tasks)
            # Text made storable: only the events fail.
            self._record_rows((), (), outcomes, in_flight)

    def _record_one_by_one(
        self, attempts: Sequence[AttemptEvent], tasks: Sequence[TaskEvent]
    ) -> None:
        dropped: Counter[str] = Counter()
        reason = ""
        alone: list[tuple[list[AttemptEvent], list[TaskEvent]]] = [([a], []) for a in attempts]
        alone += [([], [t]) for t in tasks]
        for one_attempt, one_task in alone:
            try:
                self._record_rows(one_attempt, one_task)
            except self._data_errors as exc:
                dropped["dropped"] += 1
                reason = str(exc)
        if dropped:
            self._note_changes(dropped, reason)

    def _note_changes(self, changes: Counter[str], reason: str = "") -> None:
        """Count what a batch had changed; each kind of change is reported once."""
        self.changed.update(changes)
        for kind in changes:
            if kind not in self._reported:
                self._reported.add(kind)
                log.warning(
                    "the metrics store %s %s; later ones are counted, not reported",
                    self.label,
                    CHANGE_TOLD[kind].format(reason=reason),
                )

    def _record_rows(
        self,
        attempts: Sequence[AttemptEvent],
        tasks: Sequence[TaskEvent],
        outcomes: Sequence[TaskOutcome] = (),
        in_flight: CallsInFlight = NO_CALLS,
        settled: Sequence[int] = (),
    ) -> None:
        hourly = aggregate(attempts)
        daily = daily_from_hourly(hourly)
        per_run = run_deltas(attempts, tasks)
        if not finite_sums(hourly, per_run, tasks):
            raise ValueError("a figure that is not a finite number")
        add_runs(per_run, outcomes)
        own_rows, task_rows = fold_answered(attempts, tasks)
        finishes: Sequence[TaskEvent | TaskOutcome] = [*tasks, *outcomes] if outcomes else tasks
        with self._write() as cursor:
            execute = functools.partial(self._exec, cursor)
            drop_settled(execute, settled)
            if in_flight:
                write_in_flight(execute, in_flight)
            if finishes:  # read before this batch's rows are in
                count_tasks(per_run, finishes, self._stored_statuses(cursor, finishes))
            run_rows = [
                (
                    run_id,
                    d.first_ts,
                    d.tasks,
                    d.tasks_failed,
                    d.attempts,
                    d.handovers,
                    d.input_tokens,
                    d.output_tokens,
                    d.cost_usd,
                )
                for run_id, d in per_run.items()
            ]
            if own_rows:
                self._insert_attempts(cursor, own_rows)
            if task_rows:
                self._insert_tasks(cursor, task_rows)
            self._exec_many(cursor, INSERT_OUTCOME, outcome_rows(outcomes))
            self._exec_many(cursor, ADD_TO_RUN, run_rows)
            written = self._written_rollups if self._rollups_unchanged(cursor) else {}
            self._pending_rollups = {
                table: self._merge_rollups(cursor, table, deltas, written.get(table, {}))
                for table, deltas in (("rollup_hourly", hourly), ("rollup_daily", daily))
            }

    def close_dead_starts(self, dead: Callable[[Any], bool]) -> int:
        """Store the calls in flight of processes that are gone (``dead(writer)``) as the
        ``cancelled`` attempts they were (see :mod:`.starts`); how many."""
        for _ in range(3):  # another process closing some of them at the same time
            ids, attempts = dead_starts(self._read, dead)
            if not ids:
                return 0
            try:
                self._record_rows(attempts, (), settled=ids)
            except StartsGone:
                continue
            return len(ids)
        return 0

    def _stored_statuses(
        self, cursor: Any, tasks: Sequence[TaskEvent | TaskOutcome]
    ) -> dict[tuple[str, str], str]:
        """The last stored status of each (run id, task id) of ``tasks`` already stored."""
        wanted: dict[str, dict[str, None]] = {}
        for task in tasks:
            wanted.setdefault(task.run_id, {})[task.task_id] = None
        found: dict[tuple[str, str], str] = {}
        for run_id, ids in wanted.items():
            task_ids = list(ids)
            for start in range(0, len(task_ids), _LOOKUP_CHUNK):
                chunk = task_ids[start : start + _LOOKUP_CHUNK]
                sql = (
                    "SELECT task_id, status FROM tasks WHERE run_id = ? "
                    f"AND task_id IN ({placeholders(len(chunk))}) ORDER BY id"
                )
                for task_id, status in self._exec(cursor, sql, (run_id, *chunk)).fetchall():
                    found[(run_id, str(task_id))] = str(status)
        return found

    def _merge_rollups(
        self,
        cursor: Any,
        table: str,
        deltas: dict[RollupKey, Rollup],
        written: dict[RollupKey, Rollup],
    ) -> dict[RollupKey, Rollup]:
        """Add ``deltas`` to the stored rows (``written`` holds rows known to be current);
        returns the rows as now written."""
        select, upsert = ROLLUP_SQL[table]
        rows: list[tuple[Any, ...]] = []
        merged_rows: dict[RollupKey, Rollup] = {}
        for key, delta in deltas.items():
            # Merged in place: a transaction that fails drops every kept row (_rolled_back).
            merged = written.get(key)
            if merged is None:
                merged = Rollup()
                existing = self._exec(cursor, select, key).fetchone()
                if existing is not None:
                    merged.add_row(existing)
            merged.merge(delta)
            merged_rows[key] = merged
            rows.append((*key, *merged.to_row()))
        self._exec_many(cursor, upsert, rows)
        return merged_rows

    def start_run(
        self,
        run_id: str,
        kind: str = "ask",
        meta: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> None:
        # A key JSON cannot hold is left out rather than costing the run its row.
        meta_text = json.dumps(meta, default=str, skipkeys=True) if meta else None
        when = _finite_or_now(started_at)
        with self._write() as cursor:
            self._exec(
                cursor, START_RUN, (storable_text(run_id), storable_text(kind), when, meta_text)
            )

    def finish_run(self, run_id: str, status: str, finished_at: float | None = None) -> None:
        when = _finite_or_now(finished_at)
        with self._write() as cursor:
            self._exec(
                cursor, FINISH_RUN, (storable_text(run_id), storable_text(status), when, when)
            )

    def prune(self, before: float, most: int | None = None) -> int:
        """Delete raw attempts and tasks older than ``before`` (epoch), at most ``most``
        rows (None: all), :data:`PRUNE_PART` per transaction so that other writers get
        the store in between; rollups stay. Returns how many went."""
        removed = 0
        for table in ("attempts", "tasks"):
            sql = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE ts < ? LIMIT ?)"
            while most is None or removed < most:
                part = PRUNE_PART if most is None else min(PRUNE_PART, most - removed)
                with self._write() as cursor:
                    gone = int(self._exec(cursor, sql, (before, part)).rowcount)
                removed += gone
                if gone < part:
                    break
        return removed


def _finite_or_now(ts: float | None) -> float:
    return ts if ts is not None and math.isfinite(ts) else time.time()
