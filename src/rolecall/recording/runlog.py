"""The execution log: one append-only JSONL file per run.

``<runs_dir>/<run_id>.jsonl`` holds, one JSON object a line: a ``run_start`` record
(run id, kind, meta, ts, and the writing process: see ``runwriter``), every attempt
and task event (``event_to_dict`` shape) and a ``run_end`` record (status, ts). Lines
are appended in batches by the recorder; a process killed mid-write leaves at most a
truncated last line, which the reader skips and the next writer terminates before
appending.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rolecall._secrets import redact
from rolecall.events import AttemptEvent, Event, TaskEvent
from rolecall.recording.runwriter import settled_status
from rolecall.recording.store.rows import RunDetail, build_tasks

__all__ = [
    "RunLog",
    "RunRecord",
    "event_line",
    "event_record",
    "find_run_files",
    "list_runs",
    "read_run",
    "run_end_record",
    "run_log_path",
    "run_start_record",
]

RUN_START = "run_start"
RUN_END = "run_end"


@functools.cache
def _orjson_dumps() -> Callable[[Any], bytes] | None:
    """orjson's ``dumps`` when it is installed (the ``gateway`` extra brings it), else None;
    looked up at the first write, so that reading run logs does not import it.

    It writes an event's line about twice as fast as :func:`event_line` (its floats
    especially: ``repr`` of a float is half the cost of a line), with the same keys,
    values and order; only the spelling of a few values differs (non-ASCII characters
    as UTF-8 instead of ``\\u`` escapes, ``1e-05`` as ``1e-5``), which every JSON
    reader reads alike.
    """
    try:
        import orjson
    except ImportError:
        return None
    dumps: Callable[[Any], bytes] = orjson.dumps
    return dumps


_ATTEMPT_FIELDS = tuple(f.name for f in fields(AttemptEvent))
_TASK_FIELDS = tuple(f.name for f in fields(TaskEvent))
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode
_ESCAPE: Callable[[str], str] = json.encoder.encode_basestring_ascii
_isfinite = math.isfinite


def run_log_path(runs_dir: Path, run_id: str) -> Path:
    """The file of ``run_id``; characters unsafe in file names become ``_``."""
    name = _UNSAFE.sub("_", run_id) or "_"
    if name.startswith("."):
        name = "_" + name[1:]
    return runs_dir / f"{name}.jsonl"


def event_record(event: Event) -> dict[str, Any]:
    """The same dict as :func:`rolecall.events.event_to_dict`, built without a deep copy."""
    names = _ATTEMPT_FIELDS if isinstance(event, AttemptEvent) else _TASK_FIELDS
    data = {name: getattr(event, name) for name in names}
    kind = data.get("error_kind")
    if kind is not None:
        data["error_kind"] = str(kind)
    if data.get("error"):
        data["error"] = redact(data["error"])
    return data


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


def _json_string(value: str | None) -> str:
    return "null" if value is None else _ESCAPE(value)


def _json_number(value: float | None) -> str:
    if value is None:
        return "null"
    if _isfinite(value):
        return repr(value)
    return _ENCODE(value)  # NaN/Infinity, as json.dumps writes them


class _EscapedNames(dict[str, str]):
    """JSON string literals of the few names every line repeats (run, role, provider,
    model, outcome...): a dict lookup instead of escaping them again on every line."""

    def __missing__(self, name: str | None) -> str:
        if len(self) >= _MOST_NAMES:
            self.clear()  # many distinct runs over a long life: start over, stay small
        escaped = "null" if name is None else _ESCAPE(str(name))
        self[name] = escaped  # type: ignore[index]
        return escaped


_MOST_NAMES = 4096
_NAMES = _EscapedNames()


def event_line(event: Event) -> str:
    """``event_record(event)`` as one JSON line, built directly (the recording hot path).

    Floats are written with ``repr`` (shortest exact text); a NaN or an infinity, or a
    missing number, takes the careful path, which writes them as ``json.dumps`` does.
    """
    try:
        if isinstance(event, AttemptEvent):
            return _attempt_line(event)
        return _task_line(event)
    except (TypeError, ValueError):  # a count that is no int, a number that is None...
        return _careful_line(event)


def _attempt_line(event: AttemptEvent) -> str:
    latency, ts, cost = event.latency_ms, event.ts, event.cost_usd
    if not _isfinite(latency + ts if cost is None else latency + ts + cost):
        return _careful_line(event)
    names, kind, error = _NAMES, event.error_kind, event.error
    return (
        f'{{"run_id":{names[event.run_id]},"task_id":{_ESCAPE(event.task_id)},'
        f'"role":{names[event.role]},"provider":{names[event.provider]},'
        f'"model":{names[event.model]},"attempt":{event.attempt:d},'
        f'"outcome":{names[event.outcome]},'
        f'"error_kind":{"null" if kind is None else names[kind]},"latency_ms":{latency!r},'
        f'"input_tokens":{event.input_tokens:d},"output_tokens":{event.output_tokens:d},'
        f'"cost_usd":{"null" if cost is None else repr(cost)},'
        f'"error":{"null" if error is None else _ESCAPE(redact(error))},"ts":{ts!r},'
        f'"type":"attempt","cached_input_tokens":{event.cached_input_tokens:d}}}'
    )


def _task_line(event: TaskEvent) -> str:
    latency, ts, cost = event.latency_ms, event.ts, event.cost_usd
    if not _isfinite(latency + ts if cost is None else latency + ts + cost):
        return _careful_line(event)
    names, provider, model, error = _NAMES, event.provider, event.model, event.error
    stage, finish, dialect = event.stage, event.finish_reason, event.dialect
    return (
        f'{{"run_id":{names[event.run_id]},"task_id":{_ESCAPE(event.task_id)},'
        f'"role":{names[event.role]},"status":{names[event.status]},'
        f'"provider":{"null" if provider is None else names[provider]},'
        f'"model":{"null" if model is None else names[model]},"attempts":{event.attempts:d},'
        f'"handovers":{event.handovers:d},"latency_ms":{latency!r},'
        f'"input_tokens":{event.input_tokens:d},"output_tokens":{event.output_tokens:d},'
        f'"cost_usd":{"null" if cost is None else repr(cost)},'
        f'"error":{"null" if error is None else _ESCAPE(redact(error))},'
        f'"stage":{"null" if stage is None else names[stage]},'
        f'"finish_reason":{"null" if finish is None else names[finish]},"ts":{ts!r},'
        f'"type":"task","cached_input_tokens":{event.cached_input_tokens:d},'
        f'"dialect":{"null" if dialect is None else names[dialect]}}}'
    )


_ATTEMPT_LINE = (
    '{"run_id":%s,"task_id":%s,"role":%s,"provider":%s,"model":%s,"attempt":%d,'
    '"outcome":%s,"error_kind":%s,"latency_ms":%s,"input_tokens":%d,"output_tokens":%d,'
    '"cost_usd":%s,"error":%s,"ts":%s,"type":"attempt",'
    '"cached_input_tokens":%d}'
)
_TASK_LINE = (
    '{"run_id":%s,"task_id":%s,"role":%s,"status":%s,"provider":%s,"model":%s,'
    '"attempts":%d,"handovers":%d,"latency_ms":%s,"input_tokens":%d,"output_tokens":%d,'
    '"cost_usd":%s,"error":%s,"stage":%s,"finish_reason":%s,"ts":%s,"type":"task",'
    '"cached_input_tokens":%d,"dialect":%s}'
)


def _careful_line(event: Event) -> str:
    """:func:`event_line` for events with a NaN, an infinity or a missing number."""
    esc = _ESCAPE
    error = event.error
    if isinstance(event, AttemptEvent):
        kind = event.error_kind
        return _ATTEMPT_LINE % (
            esc(event.run_id),
            esc(event.task_id),
            esc(event.role),
            esc(event.provider),
            esc(event.model),
            event.attempt,
            esc(event.outcome),
            "null" if kind is None else esc(str(kind)),
            _json_number(event.latency_ms),
            event.input_tokens,
            event.output_tokens,
            _json_number(event.cost_usd),
            "null" if error is None else esc(redact(error)),
            _json_number(event.ts),
            event.cached_input_tokens,
        )
    return _TASK_LINE % (
        esc(event.run_id),
        esc(event.task_id),
        esc(event.role),
        esc(event.status),
        _json_string(event.provider),
        _json_string(event.model),
        event.attempts,
        event.handovers,
        _json_number(event.latency_ms),
        event.input_tokens,
        event.output_tokens,
        _json_number(event.cost_usd),
        "null" if error is None else esc(redact(error)),
        _json_string(event.stage),
        _json_string(event.finish_reason),
        _json_number(event.ts),
        event.cached_input_tokens,
        _json_string(event.dialect),
    )


def _fill_attempt(fields: dict[str, Any], e: AttemptEvent) -> dict[str, Any]:
    """``fields`` (a dict of the attempt's field names, in order) holding ``e``'s values.

    orjson writes a dict about three times faster than the slotted dataclass itself (for
    which it looks up ``__dict__`` in vain, then each field's kind and value by name); one
    dict refilled for every line costs about half of a new one built for it and freed
    after it: the keys stay where they are, only the values are replaced. A test checks
    that every field is filled, in order.
    """
    fields["run_id"] = e.run_id
    fields["task_id"] = e.task_id
    fields["role"] = e.role
    fields["provider"] = e.provider
    fields["model"] = e.model
    fields["attempt"] = e.attempt
    fields["outcome"] = e.outcome
    fields["error_kind"] = e.error_kind
    fields["latency_ms"] = e.latency_ms
    fields["input_tokens"] = e.input_tokens
    fields["output_tokens"] = e.output_tokens
    fields["cost_usd"] = e.cost_usd
    fields["error"] = e.error
    fields["ts"] = e.ts
    fields["type"] = e.type
    fields["cached_input_tokens"] = e.cached_input_tokens
    return fields


def _fill_task(fields: dict[str, Any], e: TaskEvent) -> dict[str, Any]:
    """``fields`` (the task's field names, in order) holding ``e``'s values (see
    :func:`_fill_attempt`)."""
    fields["run_id"] = e.run_id
    fields["task_id"] = e.task_id
    fields["role"] = e.role
    fields["status"] = e.status
    fields["provider"] = e.provider
    fields["model"] = e.model
    fields["attempts"] = e.attempts
    fields["handovers"] = e.handovers
    fields["latency_ms"] = e.latency_ms
    fields["input_tokens"] = e.input_tokens
    fields["output_tokens"] = e.output_tokens
    fields["cost_usd"] = e.cost_usd
    fields["error"] = e.error
    fields["stage"] = e.stage
    fields["finish_reason"] = e.finish_reason
    fields["ts"] = e.ts
    fields["type"] = e.type
    fields["cached_input_tokens"] = e.cached_input_tokens
    fields["dialect"] = e.dialect
    return fields


def _record_line(record: Mapping[str, Any] | Event) -> tuple[str, bytes]:
    """(run id, line) of a run record, or of an event by :func:`event_line`."""
    if isinstance(record, AttemptEvent | TaskEvent):
        return record.run_id, event_line(record).encode()
    return str(record["run_id"]), _ENCODE(record).encode()


def _append_orjson_lines(
    by_run: dict[str, bytearray],
    dumps: Callable[[Any], bytes],
    records: Sequence[Mapping[str, Any] | Event],
) -> None:
    """Each record's line onto its run's buffer in ``by_run``, events written by orjson.

    An event orjson cannot write as it must be takes :func:`event_line`: an error to
    redact, a NaN or an infinity (orjson writes null), a value orjson refuses (an int
    past 64 bits, a lone surrogate). Each line goes into its buffer at once: orjson's
    result is then freed before the next call reuses its memory (kept alive, each takes
    fresh pages: 3x slower).
    """
    attempt_fields = dict.fromkeys(_ATTEMPT_FIELDS)
    task_fields = dict.fromkeys(_TASK_FIELDS)
    last_run: str | None = None
    text = bytearray()
    for record in records:
        event: Event
        if type(record) is AttemptEvent:
            event, fields = record, _fill_attempt(attempt_fields, record)
        elif type(record) is TaskEvent:
            event, fields = record, _fill_task(task_fields, record)
        else:  # a run record (or an event of a subclass)
            last_run, other = _record_line(record)
            text = by_run.setdefault(last_run, bytearray())
            text += other
            text += b"\n"
            continue
        line: bytes | None = None
        if event.error is None:
            cost = event.cost_usd
            try:
                if _isfinite(event.latency_ms + event.ts + (0.0 if cost is None else cost)):
                    line = dumps(fields)
            except (TypeError, ValueError):  # orjson's JSONEncodeError is a TypeError
                pass
        if line is None:
            line = event_line(event).encode()
        run_id = event.run_id
        if run_id is not last_run:  # consecutive records mostly share their run
            last_run = run_id
            text = by_run.setdefault(run_id, bytearray())
        text += line
        text += b"\n"


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
        dumps = _orjson_dumps()
        if dumps is None:
            for record in records:
                run_id, line = _record_line(record)
                text = by_run.get(run_id)
                if text is None:
                    text = by_run[run_id] = bytearray()
                text += line
                text += b"\n"
        else:
            _append_orjson_lines(by_run, dumps, records)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        for run_id, text in by_run.items():
            path = run_log_path(self.runs_dir, run_id)
            if path not in self._checked:
                self._checked.add(path)
                if _ends_mid_line(path):
                    text[:0] = b"\n"  # a killed writer left a partial line: close it
            with open(path, "ab") as handle:
                handle.write(text)

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
                skipped += 1  # the partial last line of a killed writer
                continue
            if isinstance(record, dict):
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
    start = next((r for r in records if r.get("type") == RUN_START), None)
    end = next((r for r in reversed(records) if r.get("type") == RUN_END), None)
    events = [r for r in records if r.get("type") in ("attempt", "task")]
    run_id = str((start or end or (events[0] if events else {})).get("run_id") or path.stem)
    started_at = start.get("ts") if start else _first_start(events)
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


def _first_start(events: Iterable[Mapping[str, Any]]) -> float | None:
    starts = [
        float(e.get("ts") or 0.0) - float(e.get("latency_ms") or 0.0) / 1000.0 for e in events
    ]
    return min(starts) if starts else None


def list_runs(runs_dir: Path | str, limit: int = 20) -> list[RunRecord]:
    """The most recently written runs first."""
    directory = Path(runs_dir)
    if not directory.is_dir():
        return []
    paths = sorted(directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [read_run(p) for p in paths[: max(0, limit)]]


def find_run_files(runs_dir: Path | str, prefix: str) -> list[Path]:
    """Log files whose run id equals ``prefix``, else starts with it."""
    directory = Path(runs_dir)
    if not directory.is_dir():
        return []
    exact = run_log_path(directory, prefix)
    if exact.is_file():
        return [exact]
    safe = run_log_path(directory, prefix).stem
    return sorted(p for p in directory.glob("*.jsonl") if p.stem.startswith(safe))
