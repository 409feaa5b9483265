"""Which records of a batch sent again the store holds already.

A ``serve --workers`` worker sends again what a killed run writer had not confirmed
(:mod:`~rolecall.recording.relay`); a writer killed after its write and before its
confirmation had stored some of it. Such a batch is looked up before it is written and
what is found is left out, so no call counts twice in the rows, the runs' summaries or
the rollups. A record is known by what the worker sends again unchanged: its run, task,
kind (attempt number), and time to the bit. Only batches sent again pay for the lookup,
through indexes every store has (``attempts_ts``, ``tasks_run_task``): no schema change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rolecall.events import AttemptEvent, TaskEvent, TaskOutcome
from rolecall.recording.store.statements import placeholders

__all__ = ["unstored"]

Read = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
Batch = tuple[list[AttemptEvent], list[TaskEvent], list[TaskOutcome]]

_CHUNK = 500  # values looked up in one statement


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[start : start + _CHUNK] for start in range(0, len(values), _CHUNK)]


def _stored(
    read: Read, attempts: Sequence[AttemptEvent], finishes: Sequence[TaskEvent | TaskOutcome]
) -> set[tuple[Any, ...]]:
    """The keys (see :func:`unstored`) of the stored rows that may be these records."""
    keys: set[tuple[Any, ...]] = set()
    times = sorted({attempt.ts for attempt in attempts})
    for chunk in _chunks(times):
        sql = (
            "SELECT run_id, task_id, attempt, ts FROM attempts "
            f"WHERE ts IN ({placeholders(len(chunk))})"
        )
        keys.update(("attempt", *row) for row in read(sql, chunk))
    # A task's row also holds the attempt that answered it at once (attempt_ts).
    task_ids: dict[str, dict[str, None]] = {}
    for record in (*attempts, *finishes):
        task_ids.setdefault(record.run_id, {})[record.task_id] = None
    for run_id, ids in task_ids.items():
        for chunk in _chunks(list(ids)):
            sql = (
                "SELECT task_id, outcome, ts, attempt_ts FROM tasks "
                f"WHERE run_id = ? AND task_id IN ({placeholders(len(chunk))})"
            )
            for task_id, outcome, ts, attempt_ts in read(sql, (run_id, *chunk)):
                keys.add(("outcome" if outcome else "task", run_id, task_id, ts))
                if attempt_ts is not None:
                    keys.add(("attempt", run_id, task_id, 1, attempt_ts))
    return keys


def unstored(
    read: Read,
    attempts: Sequence[AttemptEvent],
    tasks: Sequence[TaskEvent],
    outcomes: Sequence[TaskOutcome],
) -> Batch:
    """The attempts, tasks and outcomes of a batch that the store does not hold yet."""
    keys = _stored(read, attempts, [*tasks, *outcomes])
    return (
        [a for a in attempts if ("attempt", a.run_id, a.task_id, a.attempt, a.ts) not in keys],
        [t for t in tasks if ("task", t.run_id, t.task_id, t.ts) not in keys],
        [o for o in outcomes if ("outcome", o.run_id, o.task_id, o.ts) not in keys],
    )
