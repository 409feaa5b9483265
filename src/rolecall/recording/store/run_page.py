"""The raw rows of one run, whole or only its newest tasks.

A gateway run holds up to 100,000 tasks (``gateway/_run.py`` rolls it over then), and
the dashboard shows the run the gateway is writing: reading all of it for each look
would take seconds and a few hundred megabytes in the gateway's own process. The
newest tasks are read instead: the task ids of the newest task rows (from the
``(run_id, task_id)`` index alone, sorted in SQL keeping only that many), then every
row of those tasks, and the attempts of tasks still in flight since.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rolecall.recording.store.outcomes import READ_COLUMNS, read_record
from rolecall.recording.store.rows import folded_attempt
from rolecall.recording.store.statements import ATTEMPT_COLUMNS, placeholders

__all__ = ["run_meta_of", "run_records", "run_rows"]

Row = tuple[Any, ...]
Read = Callable[[str, Sequence[Any]], list[Row]]

_ATTEMPTS = f"SELECT id, {', '.join(ATTEMPT_COLUMNS)} FROM attempts WHERE run_id = ?"
_TASKS = f"SELECT id, {', '.join(READ_COLUMNS)} FROM tasks WHERE run_id = ?"
_TS = 1 + READ_COLUMNS.index("ts")
# Read from the index alone (it holds the row's id): the rows themselves are not visited.
_NEWEST = "SELECT id, task_id FROM tasks WHERE run_id = ? ORDER BY id DESC LIMIT ?"
# Task ids looked up in one statement (far below SQLite's and PostgreSQL's parameter limits).
_CHUNK = 500


def run_records(
    read: Read, run_id: str, last_tasks: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """The run's attempt and task records in their order, as ``build_tasks`` reads them,
    and whether they are the whole run (see :func:`run_rows`)."""
    attempt_rows, task_rows, whole = run_rows(read, run_id, last_tasks)
    records: list[tuple[float, int, int, dict[str, Any]]] = []
    for row in attempt_rows:
        record = dict(zip(ATTEMPT_COLUMNS, row[1:], strict=True))
        record["type"] = "attempt"
        records.append((float(record["ts"]), 0, int(row[0]), record))
    for row in task_rows:
        record = read_record(row[1:])
        attempt = folded_attempt(record)
        if attempt is not None:
            records.append((float(attempt["ts"]), 0, int(row[0]), attempt))
        records.append((float(record["ts"]), 1, int(row[0]), record))
    records.sort(key=lambda item: item[:3])
    return [item[3] for item in records], whole


def run_rows(read: Read, run_id: str, last_tasks: int | None) -> tuple[list[Row], list[Row], bool]:
    """``(attempt rows, task rows, whole)``, each row led by its id: every row of the run,
    or, when it has more than ``last_tasks`` task rows (``whole`` False), the rows of the
    tasks of its newest ``last_tasks`` and the attempts since of tasks with no row yet."""
    if last_tasks is not None:
        newest = read(_NEWEST, (run_id, last_tasks + 1))
        if len(newest) > last_tasks:
            return (*_newest(read, run_id, newest[:last_tasks]), False)
    return read(_ATTEMPTS, (run_id,)), read(_TASKS, (run_id,)), True


def _newest(read: Read, run_id: str, newest: list[Row]) -> tuple[list[Row], list[Row]]:
    task_ids = list(dict.fromkeys(str(row[1]) for row in newest))
    tasks = _of_tasks(read, _TASKS, run_id, task_ids)
    attempts = _of_tasks(read, _ATTEMPTS, run_id, task_ids)
    # Tasks in flight: their attempts since the oldest of the newest tasks, with no row.
    oldest = newest[-1][0]
    since = min(float(row[_TS]) for row in tasks if row[0] >= oldest)
    wanted = set(task_ids)
    later = [
        row for row in read(f"{_ATTEMPTS} AND ts >= ?", (run_id, since)) if row[2] not in wanted
    ]
    finished = {str(row[2]) for row in _of_tasks(read, _TASKS, run_id, [r[2] for r in later])}
    attempts += [row for row in later if row[2] not in finished]
    return attempts, tasks


def _of_tasks(read: Read, select: str, run_id: str, task_ids: Sequence[str]) -> list[Row]:
    ids = list(dict.fromkeys(task_ids))
    rows: list[Row] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows += read(f"{select} AND task_id IN ({placeholders(len(chunk))})", (run_id, *chunk))
    return rows


def run_meta_of(text: Any) -> dict[str, Any]:
    """A run's meta column read; {} for none, or for what is no JSON object (another
    program's, a damaged row): the meta only informs, so the run is shown without it."""
    try:
        meta = json.loads(text) if text else {}
    except (ValueError, TypeError):
        return {}
    return meta if isinstance(meta, dict) else {}
