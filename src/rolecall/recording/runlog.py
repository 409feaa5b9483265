"""The execution log: one append-only JSONL file per run.

``<runs_dir>/<run_id>.jsonl`` holds, one JSON object a line: a ``run_start`` record
(run id, kind, meta, ts, and the writing process: see ``runwriter``; another when the
run writer that replaced a killed one opens the run again, naming itself), every attempt
and task event (``event_to_dict`` shape), an ``outcome`` record for each task a workflow
finished (what it concluded: ``TaskOutcome``'s fields), an ``attempt_start`` record for
each call still running when a batch was written (``AttemptStart``'s fields and
``latency_ms``, how long it had run then; its attempt record follows once it ends) and
a ``run_end`` record (status, ts). Logs written before outcome records existed read as
before. A task its first attempt answered (nearly every gateway call) is one line when
orjson writes the log (the ``gateway`` extra installs it): the task's record followed by
``attempt_latency_ms`` and ``attempt_ts``, the only fields of that attempt the task does
not repeat; the reader gives back the attempt's record and the task's. Lines are appended
in batches by the recorder; a process killed mid-write leaves at most a truncated last
line, which the reader skips and the next writer terminates before appending.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import isfinite
from pathlib import Path
from typing import Any

from rolecall._secrets import redact
from rolecall.events import AttemptEvent, AttemptStart, Event, TaskOutcome
from rolecall.recording._runlog_lines import append_lines, event_line, event_record
from rolecall.recording.runwriter import settled_status
from rolecall.recording.store.rows import RunDetail, build_tasks, folded_attempt

__all__ = [
    "RunLog",
    "RunRecord",
    "attempt_start_record",
    "event_line",
    "event_record",
    "find_run_files",
    "list_runs",
    "newest_run_files",
    "outcome_record",
    "read_run",
    "run_end_record",
    "run_log_path",
    "run_start_record",
]

RUN_START = "run_start"
RUN_END = "run_end"
OUTCOME = "outcome"
ATTEMPT_START = "attempt_start"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def run_log_path(runs_dir: Path, run_id: str) -> Path:
    """The file of ``run_id``; characters unsafe in file names become ``_``."""
    name = _UNSAFE.sub("_", run_id) or "_"
    if name.startswith("."):
        name = "_" + name[1:]
    return runs_dir / f"{name}.jsonl"


def run_start_record(
    run_id: str,
    kind: str,
    meta: Mapping[str, Any] | None,
    ts: float,
    writer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The first line of a run's log; ``writer`` names the process recording it."""
    record = {"type": RUN_START, "run_id": run_id, "kind": kind, "meta": dict(meta or {}), "ts": ts}
    if writer is not None:
        record["writer"] = dict(writer)
    return record


def run_end_record(run_id: str, status: str, ts: float) -> dict[str, Any]:
    return {"type": RUN_END, "run_id": run_id, "status": status, "ts": ts}


def outcome_record(outcome: TaskOutcome) -> dict[str, Any]:
    """The line of what a front end concluded of a task (its error redacted)."""
    error = outcome.error
    return {
        "type": OUTCOME,
        "run_id": outcome.run_id,
        "task_id": outcome.task_id,
        "role": outcome.role,
        "stage": outcome.stage,
        "status": outcome.status,
        "error": redact(error) if error else error,
        "note": outcome.note,
        "ts": outcome.ts,
    }


def attempt_start_record(start: AttemptStart, latency_ms: float) -> dict[str, Any]:
    """The line of a call still running ``latency_ms`` after it started."""
    return {
        "type": ATTEMPT_START,
        "run_id": start.run_id,
        "task_id": start.task_id,
        "role": start.role,
        "stage": start.stage,
        "provider": start.provider,
        "model": start.model,
        "attempt": start.attempt,
        "latency_ms": latency_ms,
        "ts": start.ts,
    }


class RunLog:
    """Appends records to per-run JSONL files under ``runs_dir`` (created on first write)."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._checked: set[Path] = set()

    def append(self, records: Sequence[Mapping[str, Any] | Event]) -> None:
        """Append events and records (dicts with a ``run_id``) to their runs' files, in order."""
        if not records:
            return
        by_run: dict[str, bytearray] = {}
        append_lines(by_run, records)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        for run_id, text in by_run.items():
            path = run_log_path(self.runs_dir, run_id)
            if path not in self._checked:
                self._checked.add(path)
                if _ends_mid_line(path):
                    text[:0] = b"\n"  # a killed writer left a partial line: close it
            with open(path, "ab") as handle:
                handle.write(text)

    def unwritten(
        self, records: Sequence[Mapping[str, Any] | Event]
    ) -> list[Mapping[str, Any] | Event]:
        """``records`` less those their run's file holds already: a worker's records sent
        again to the writer that replaced one killed before it confirmed them (read only
        then: each run's file is read whole)."""
        written: dict[str, set[tuple[Any, ...]]] = {}
        kept: list[Mapping[str, Any] | Event] = []
        for record in records:
            run_id = str(record["run_id"] if isinstance(record, Mapping) else record.run_id)
            keys = written.get(run_id)
            if keys is None:
                path = run_log_path(self.runs_dir, run_id)
                lines = _records(path)[0] if path.is_file() else []
                keys = written[run_id] = {_identity(line) for line in lines}
            if _identity(record) not in keys:
                kept.append(record)
        return kept

    def prune(self, cutoff: float, keep: Collection[str] = ()) -> int:
        """Delete run logs last written before ``cutoff`` (epoch seconds), except the runs in
        ``keep``; how many went."""
        removed = 0
        if not self.runs_dir.is_dir():
            return removed
        kept = {run_log_path(self.runs_dir, run_id) for run_id in keep}
        for path in self.runs_dir.glob("*.jsonl"):
            if path in kept:
                continue
            with contextlib.suppress(OSError):  # a file another process just removed
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    self._checked.discard(path)
                    removed += 1
        return removed


def _identity(record: Mapping[str, Any] | Event) -> tuple[Any, ...]:
    """What tells a record from every other of its run, sent again unchanged: its kind,
    task, attempt number and time (an event's, or its line's)."""
    if isinstance(record, Mapping):
        get = record.get
        return (get("type"), get("task_id"), get("attempt"), get("ts"))
    attempt = record.attempt if isinstance(record, AttemptEvent) else None
    return (record.type, record.task_id, attempt, record.ts)


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


@dataclass(slots=True)
class RunRecord(RunDetail):
    """A run rebuilt from its log file; ``skipped_lines`` counts unreadable lines."""

    path: Path | None = None
    skipped_lines: int = 0
    events: list[dict[str, Any]] | None = None


# The fields a record's reader converts, by what they must be when present: counts are
# whole numbers (a float count is only ever one the writer took from a whole one);
# times, latencies and costs any number, NaN and infinities included (the writer keeps
# what the event held).
_COUNTS = (
    "attempt",
    "attempts",
    "handovers",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
)
_NUMBERS = ("ts", "latency_ms", "cost_usd", "attempt_latency_ms", "attempt_ts")
_TEXTS = (
    *("run_id", "task_id", "role", "provider", "model", "outcome", "status", "kind"),
    *("stage", "dialect", "error", "error_kind", "finish_reason", "note"),
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _well_formed(record: dict[str, Any]) -> bool:
    """True when every field the reader uses has its type (a line edited or written by
    something else can be valid JSON of another shape)."""
    get = record.get
    if any(get(name) is not None and not _is_number(get(name)) for name in _NUMBERS):
        return False
    for name in _COUNTS:
        value = get(name)
        if value is not None and not (_is_number(value) and isfinite(value)):
            return False
    if any(not isinstance(get(name, ""), str | None) for name in _TEXTS):
        return False
    if get("type") in ("attempt", ATTEMPT_START) and not isinstance(get("provider"), str):
        return False
    return isinstance(get("meta") or {}, dict)


def _records(path: Path) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                skipped += 1  # the partial last line of a killed writer, or a damaged one
                continue
            if isinstance(record, dict) and _well_formed(record):
                if record.get("type") == "task":
                    attempt = folded_attempt(record)
                    if attempt is not None:
                        records.append(attempt)
                records.append(record)
            else:
                skipped += 1
    return records, skipped


def read_run(path: Path | str) -> RunRecord:
    """Rebuild a run from its log: status, times, and every task with its attempts.

    A run without a ``run_end`` record is ``running`` while the process writing it lives,
    and ``abandoned`` once that process is known to be gone (killed, crashed).
    """
    path = Path(path)
    records, skipped = _records(path)
    first, start, end = _start_and_end(records)
    events = [r for r in records if r.get("type") in ("attempt", "task", OUTCOME, ATTEMPT_START)]
    run_id = str((start or end or (events[0] if events else {})).get("run_id") or path.stem)
    started_at = first.get("ts") if first else _first_start(events)
    status = str(end.get("status")) if end else "running"
    if start and not end:
        status = settled_status(status, start.get("writer"))
    return RunRecord(
        run_id=run_id,
        kind=str(start.get("kind") or "ask") if start else "ask",
        status=status,
        started_at=started_at,
        finished_at=end.get("ts") if end else None,
        tasks=build_tasks(events, run_open=status == "running"),
        meta=dict(start.get("meta") or {}) if start else {},
        path=path,
        skipped_lines=skipped,
        events=events,
    )


def _start_and_end(
    records: Iterable[dict[str, Any]],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The run's first ``run_start``, its last, and its last ``run_end``.

    The run writer that replaced a killed one opens the run again (a ``run_start`` upsert,
    as in the store): the last start names the process writing it now.
    """
    first = start = end = None
    for record in records:
        kind = record.get("type")
        if kind == RUN_START:
            first, start = first or record, record
        elif kind == RUN_END:
            end = record
    return first, start, end


def _first_start(events: Iterable[Mapping[str, Any]]) -> float | None:
    starts = [
        float(e.get("ts") or 0.0)
        - (0.0 if e.get("type") == ATTEMPT_START else float(e.get("latency_ms") or 0.0) / 1000.0)
        for e in events
    ]
    return min(starts) if starts else None


def list_runs(runs_dir: Path | str, limit: int = 20) -> list[RunRecord]:
    """The most recently written runs first."""
    return [read_run(path) for path in newest_run_files(runs_dir, limit)]


def newest_run_files(runs_dir: Path | str, limit: int = 20) -> list[Path]:
    """The log files of the ``limit`` most recently written runs, newest first (a caller
    that keeps a summary of each reads them one at a time: a gateway's run log holds up
    to 100,000 tasks)."""
    directory = Path(runs_dir)
    if not directory.is_dir():
        return []
    paths = sorted(directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    return paths[: max(0, limit)]


def find_run_files(runs_dir: Path | str, prefix: str) -> list[Path]:
    """Log files whose run id equals ``prefix``, else starts with it."""
    directory = Path(runs_dir)
    if not directory.is_dir():
        return []
    exact = run_log_path(directory, prefix)
    try:
        if exact.is_file():
            return [exact]
    except OSError:  # a name longer than a file name can be: no file has it
        return []
    safe = run_log_path(directory, prefix).stem
    return sorted(p for p in directory.glob("*.jsonl") if p.stem.startswith(safe))
