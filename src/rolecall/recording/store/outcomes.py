"""What a front end concluded of its tasks (:class:`~rolecall.events.TaskOutcome`), in
the store: a row of the ``tasks`` table marked ``outcome = 1``, after the task's own rows.

Such a row has no provider, call, token or cost: the metrics (the rollups, built from
the attempts alone) never see it. It counts in the run's summary as the task's last
finish (``count_tasks``), and ``run`` reads it back as an ``outcome`` record, which sets
the task's status, error and note over what its calls said.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rolecall._secrets import redact
from rolecall.events import TaskOutcome
from rolecall.recording.store.rollups import RunDelta
from rolecall.recording.store.statements import TASK_COLUMNS, placeholders
from rolecall.recording.store.storable import storable_text

__all__ = ["INSERT_OUTCOME", "READ_COLUMNS", "add_runs", "outcome_rows", "read_record"]

_COLUMNS = ("run_id", "task_id", "role", "stage", "status", "error", "note", "ts")
INSERT_OUTCOME = (
    f"INSERT INTO tasks ({', '.join(_COLUMNS)}, attempts, handovers, latency_ms, "
    f"input_tokens, output_tokens, outcome) VALUES ({placeholders(len(_COLUMNS))}, "
    "0, 0, 0, 0, 0, 1)"
)
# The columns ``run`` reads of every task row: the task's, then the outcome's two.
READ_COLUMNS = (*TASK_COLUMNS, "note", "outcome")


def _text(value: str | None) -> str | None:
    return None if value is None else storable_text(value)


def outcome_rows(outcomes: Sequence[TaskOutcome]) -> list[tuple[Any, ...]]:
    """The outcomes' rows (``INSERT_OUTCOME``), text as every store holds it."""
    return [
        (
            storable_text(o.run_id),
            storable_text(o.task_id),
            storable_text(o.role or ""),
            _text(o.stage),
            storable_text(o.status),
            _text(redact(o.error) if o.error else o.error),
            _text(o.note),
            o.ts if isinstance(o.ts, int | float) and math.isfinite(o.ts) else time.time(),
        )
        for o in outcomes
    ]


def add_runs(per_run: dict[str, RunDelta], outcomes: Sequence[TaskOutcome]) -> None:
    """A summary delta for each run that only outcomes of this batch touch."""
    for outcome in outcomes:
        if outcome.run_id not in per_run:
            per_run[outcome.run_id] = RunDelta(first_ts=outcome.ts)


def read_record(row: Sequence[Any]) -> dict[str, Any]:
    """A task row (``READ_COLUMNS``) as the record ``build_tasks`` reads: an outcome's
    own record when the row is one."""
    record = dict(zip(READ_COLUMNS, row, strict=True))
    if not record.pop("outcome", 0):
        record["type"] = "task"
        return record
    keep: Mapping[str, Any] = record
    return {"type": "outcome", **{name: keep[name] for name in _COLUMNS}}
