"""The columns of the raw tables, a batch's rows as flat values, and the SQL that stores them.

Statements are written with ``?`` placeholders; backends translate them. A batch's rows
go one after another into one flat list (no tuple per row), which a backend binds
slice by slice (SQLite's multi-row INSERTs) or cuts back into rows (``rows_of``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rolecall._secrets import redact
from rolecall.events import AttemptEvent, TaskEvent, answered_at_once
from rolecall.recording.store.rollups import ROLLUP_COLUMNS

__all__ = [
    "ADD_TO_RUN",
    "ATTEMPT_COLUMNS",
    "FINISH_RUN",
    "INSERT_TASK",
    "NULLABLE_ATTEMPT_TEXT",
    "NULLABLE_TASK_TEXT",
    "ROLLUP_SQL",
    "RUN_COLUMNS",
    "START_RUN",
    "TASK_COLUMNS",
    "TaskRow",
    "attempt_values",
    "fold_answered",
    "placeholders",
    "rows_of",
    "task_values",
]

ATTEMPT_COLUMNS = (
    "run_id",
    "task_id",
    "role",
    "provider",
    "model",
    "attempt",
    "outcome",
    "error_kind",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "ts",
    "cached_input_tokens",
)
TASK_COLUMNS = (
    "run_id",
    "task_id",
    "role",
    "stage",
    "status",
    "provider",
    "model",
    "attempts",
    "handovers",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "ts",
    "cached_input_tokens",
    "dialect",
    # The attempt that answered the task at once (events.answered_at_once), which has no
    # row of its own: its latency and time, the rest being the task's. NULL otherwise.
    "attempt_latency_ms",
    "attempt_ts",
)
RUN_COLUMNS = (
    "run_id",
    "kind",
    "status",
    "started_at",
    "finished_at",
    "tasks",
    "tasks_failed",
    "attempts",
    "handovers",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


# The text columns that are mostly NULL: a backend may have them bound as ``null``, a
# stand-in it turns back into NULL in its INSERT (SQLite binds None at several times the
# cost of an int: it first looks for an adapter of None's type).
NULLABLE_ATTEMPT_TEXT = ("error_kind", "error")
NULLABLE_TASK_TEXT = ("stage", "error", "dialect")


def attempt_values(events: Sequence[AttemptEvent], null: Any = None) -> list[Any]:
    """The attempts' rows (:data:`ATTEMPT_COLUMNS`) one after another in one flat list:
    no tuple per row is kept, and multi-row INSERTs bind the list's slices as they are.
    A None in the columns of :data:`NULLABLE_ATTEMPT_TEXT` is given as ``null``."""
    values: list[Any] = []
    add = values.extend
    for event in events:
        kind, error = event.error_kind, event.error
        add(
            (
                event.run_id,
                event.task_id,
                event.role,
                event.provider,
                event.model or "",
                event.attempt,
                event.outcome,
                null if kind is None else str(kind),
                event.latency_ms,
                event.input_tokens,
                event.output_tokens,
                event.cost_usd,
                redact(error) if error else null if error is None else error,
                event.ts,
                event.cached_input_tokens,
            )
        )
    return values


TaskRow = tuple[TaskEvent, AttemptEvent | None]  # a task, and the attempt its row holds


def fold_answered(
    attempts: Sequence[AttemptEvent], tasks: Sequence[TaskEvent]
) -> tuple[list[AttemptEvent], list[TaskRow]]:
    """The attempts that need a row of their own, and each task with the attempt its row
    holds: the one that answered it at once (:func:`~rolecall.events.answered_at_once`)."""
    own: list[AttemptEvent] = []
    firsts: dict[str, AttemptEvent] = {}
    first = firsts.setdefault
    for attempt in attempts:
        # A first answer, the first of its task id in the batch (ids may repeat across runs).
        if (
            attempt.attempt != 1
            or attempt.outcome != "ok"
            or first(attempt.task_id, attempt) is not attempt
        ):
            own.append(attempt)
    rows: list[TaskRow] = []
    add = rows.append
    take = firsts.pop
    for task in tasks:
        answer: AttemptEvent | None = take(task.task_id, None)
        if answer is None:
            add((task, None))
        elif answered_at_once(answer, task):
            add((task, answer))
        else:
            add((task, None))
            own.append(answer)
    own += firsts.values()
    return own, rows


def task_values(rows: Sequence[TaskRow], null: Any = None) -> list[Any]:
    """The tasks' rows (:data:`TASK_COLUMNS`) one after another in one flat list; a None
    in the columns of :data:`NULLABLE_TASK_TEXT` is given as ``null``."""
    values: list[Any] = []
    add = values.extend
    for event, attempt in rows:
        error, stage, dialect = event.error, event.stage, event.dialect
        add(
            (
                event.run_id,
                event.task_id,
                event.role,
                null if stage is None else stage,
                event.status,
                event.provider,
                event.model,
                event.attempts,
                event.handovers,
                event.latency_ms,
                event.input_tokens,
                event.output_tokens,
                event.cost_usd,
                redact(error) if error else null if error is None else error,
                event.ts,
                event.cached_input_tokens,
                null if dialect is None else dialect,
                None if attempt is None else attempt.latency_ms,
                None if attempt is None else attempt.ts,
            )
        )
    return values


def rows_of(values: Sequence[Any], width: int) -> list[Sequence[Any]]:
    """A flat list of values cut back into rows of ``width``."""
    return [values[start : start + width] for start in range(0, len(values), width)]


INSERT_TASK = (
    f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({placeholders(len(TASK_COLUMNS))})"
)
ADD_TO_RUN = """INSERT INTO runs (run_id, started_at, tasks, tasks_failed, attempts, handovers,
        input_tokens, output_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (run_id) DO UPDATE SET
        tasks = runs.tasks + excluded.tasks,
        tasks_failed = runs.tasks_failed + excluded.tasks_failed,
        attempts = runs.attempts + excluded.attempts,
        handovers = runs.handovers + excluded.handovers,
        input_tokens = runs.input_tokens + excluded.input_tokens,
        output_tokens = runs.output_tokens + excluded.output_tokens,
        cost_usd = CASE WHEN excluded.cost_usd IS NULL THEN runs.cost_usd
                        ELSE COALESCE(runs.cost_usd, 0) + excluded.cost_usd END"""
START_RUN = """INSERT INTO runs (run_id, kind, status, started_at, meta)
        VALUES (?, ?, 'running', ?, ?)
    ON CONFLICT (run_id) DO UPDATE SET kind = excluded.kind, status = 'running',
        finished_at = NULL, meta = excluded.meta,
        started_at = CASE WHEN excluded.started_at < runs.started_at
                          THEN excluded.started_at ELSE runs.started_at END"""
FINISH_RUN = """INSERT INTO runs (run_id, status, started_at, finished_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (run_id) DO UPDATE SET status = excluded.status,
        finished_at = excluded.finished_at"""


def _rollup_sql(table: str, period: str) -> tuple[str, str]:
    key = f"{period}, provider, role, model"
    select = (
        f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM {table} "
        f"WHERE {period} = ? AND provider = ? AND role = ? AND model = ?"
    )
    updates = ", ".join(f"{column} = excluded.{column}" for column in ROLLUP_COLUMNS)
    upsert = (
        f"INSERT INTO {table} ({key}, {', '.join(ROLLUP_COLUMNS)}) "
        f"VALUES ({placeholders(4 + len(ROLLUP_COLUMNS))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    return select, upsert


ROLLUP_SQL = {
    "rollup_hourly": _rollup_sql("rollup_hourly", "hour"),
    "rollup_daily": _rollup_sql("rollup_daily", "day"),
}
