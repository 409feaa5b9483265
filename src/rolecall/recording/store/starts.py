"""Calls in flight in the store: the ``attempt_starts`` rows, and closing those of dead processes.

A call's start (:class:`~rolecall.events.AttemptStart`) is written only when the call
outlasts the flush that finds it; its row names the process writing it (the ``writer``
of :mod:`~rolecall.recording.runwriter`) and how long the call had run then
(``latency_ms``). The batch that stores the call's end removes the row in the same
transaction, so the table holds the calls in flight, and the starts of processes killed
mid-call.

Whichever process opens the store next closes the latter (:func:`dead_starts`, then
``MetricsStore.close_dead_starts``): each becomes the ``cancelled`` attempt it was, ended
on rolecall's side, counted in the metrics like any other (a request, a failure under
``cancelled``), with the time it was known to have run as its latency, and its row goes,
in one transaction: two processes opening the store at once cannot count it twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rolecall.events import AttemptEvent, AttemptStart
from rolecall.recording.store.statements import placeholders
from rolecall.recording.store.storable import storable_text

__all__ = [
    "NO_CALLS",
    "CallsInFlight",
    "StartKey",
    "StartsGone",
    "dead_starts",
    "drop_settled",
    "start_key",
    "start_records",
    "write_in_flight",
]

StartKey = tuple[str, str, str, int]  # (run id, task id, provider, attempt)

_COLUMNS = (
    "run_id",
    "task_id",
    "role",
    "stage",
    "provider",
    "model",
    "attempt",
    "ts",
    "latency_ms",
    "writer",
)
_INSERT = f"INSERT INTO attempt_starts ({', '.join(_COLUMNS)}) VALUES ({placeholders(10)})"
# One row of the key: the same call key can come again later (a task calling again).
_DELETE_ENDED = (
    "DELETE FROM attempt_starts WHERE id IN (SELECT id FROM attempt_starts WHERE run_id = ? "
    "AND task_id = ? AND provider = ? AND attempt = ? ORDER BY id LIMIT 1)"
)
_DELETE_ONE = "DELETE FROM attempt_starts WHERE id = ?"
_SELECT_ALL = f"SELECT id, {', '.join(_COLUMNS)} FROM attempt_starts ORDER BY id"
_SELECT_RUN = f"SELECT {', '.join(_COLUMNS[:-1])} FROM attempt_starts WHERE run_id = ? ORDER BY id"


def start_key(call: AttemptEvent | AttemptStart) -> StartKey:
    """What a call's start and its end share."""
    return (call.run_id, call.task_id, call.provider, call.attempt)


@dataclass(frozen=True, slots=True)
class CallsInFlight:
    """What a batch changes of the calls in flight: the starts of calls still running when
    it was written (``latency_ms`` each: how long they had run then), and the keys of
    starts written earlier whose ends the batch holds."""

    begun: Sequence[tuple[AttemptStart, float]] = ()
    ended: Sequence[StartKey] = ()
    writer: Mapping[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.begun or self.ended)


NO_CALLS = CallsInFlight()


class StartsGone(Exception):
    """Another process closed some of the starts first (the transaction is rolled back)."""


def write_in_flight(execute: Callable[[str, Sequence[Any]], Any], calls: CallsInFlight) -> None:
    """Inside the batch's transaction: remove the ended starts' rows, add the begun ones."""
    for key in calls.ended:
        execute(_DELETE_ENDED, key)
    writer = json.dumps(dict(calls.writer)) if calls.writer is not None else None
    for start, latency_ms in calls.begun:
        execute(
            _INSERT,
            (
                storable_text(start.run_id),
                storable_text(start.task_id),
                storable_text(start.role),
                None if start.stage is None else storable_text(start.stage),
                storable_text(start.provider),
                storable_text(start.model or ""),
                start.attempt,
                start.ts,
                latency_ms,
                writer,
            ),
        )


def drop_settled(execute: Callable[[str, Sequence[Any]], Any], ids: Sequence[int]) -> None:
    """Inside the transaction that stores them as attempts: remove the closed starts' rows;
    :class:`StartsGone` when another process removed one first."""
    for row_id in ids:
        if execute(_DELETE_ONE, (row_id,)).rowcount != 1:
            raise StartsGone


def dead_starts(
    read: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
    dead: Callable[[Any], bool],
) -> tuple[list[int], list[AttemptEvent]]:
    """The rows of starts whose writer is gone (``dead(writer)``), and the ``cancelled``
    attempts they stand for."""
    ids: list[int] = []
    attempts: list[AttemptEvent] = []
    verdicts: dict[str | None, bool] = {}
    for row in read(_SELECT_ALL, ()):
        row_id, run_id, task_id, role, _stage, provider, model, attempt, ts, latency, writer = row
        if writer not in verdicts:
            try:
                verdicts[writer] = writer is not None and dead(json.loads(writer))
            except ValueError:
                verdicts[writer] = False  # a writer nobody can check: left as it is
        if not verdicts[writer]:
            continue
        ids.append(int(row_id))
        attempts.append(
            AttemptEvent(
                run_id=str(run_id),
                task_id=str(task_id),
                role=str(role),
                provider=str(provider),
                model=str(model),
                attempt=int(attempt),
                outcome="cancelled",
                error_kind=None,
                latency_ms=float(latency),
                ts=float(ts) + float(latency) / 1000.0,
            )
        )
    return ids, attempts


def start_records(
    read: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]], run_id: str
) -> list[dict[str, Any]]:
    """The run's calls in flight as ``attempt_start`` records (as the run log holds them)."""
    records = []
    for row in read(_SELECT_RUN, (run_id,)):
        record = dict(zip(_COLUMNS[:-1], row, strict=True))
        record["type"] = "attempt_start"
        records.append(record)
    return records
