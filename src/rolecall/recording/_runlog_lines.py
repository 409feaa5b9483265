"""Run-log lines: events and run records as JSON lines, written fast.

An event's line is written by orjson when it is installed (the ``gateway`` extra brings
it) from one dict per event type refilled for each line, else by :func:`event_line`,
built directly; both write the keys of :func:`event_record` in its order. With orjson, a
task its first attempt answered shares that attempt's line (:func:`append_lines`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from rolecall._secrets import redact
from rolecall.events import AttemptEvent, Event, TaskEvent, answered_at_once

__all__ = ["append_lines", "event_line", "event_record"]


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
# The line of a task its first attempt answered: the task's fields, then the two the
# attempt does not share with it (see rolecall.events.answered_at_once).
_ANSWERED_FIELDS = (*_TASK_FIELDS, "attempt_latency_ms", "attempt_ts")
# One encoder for every line: json.dumps with options builds a new one per call. A key
# JSON cannot hold (in a run's meta) is left out rather than costing the batch its lines.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str, skipkeys=True).encode
_ESCAPE: Callable[[str], str] = json.encoder.encode_basestring_ascii
_isfinite = math.isfinite


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
        pass
    try:
        return _careful_line(event)
    except (TypeError, ValueError, OverflowError):
        # A count that is no number (a NaN, None): the record as json writes it, so the
        # line, and every other line of its batch, is still written.
        return _ENCODE(event_record(event))


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


def _fill_answered(
    fields: dict[str, Any], task: TaskEvent, attempt: AttemptEvent
) -> dict[str, Any]:
    """``fields`` (:data:`_ANSWERED_FIELDS`) holding ``task`` and what ``attempt`` adds."""
    _fill_task(fields, task)
    fields["attempt_latency_ms"] = attempt.latency_ms
    fields["attempt_ts"] = attempt.ts
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
    fresh pages: 3x slower). A task its first attempt answered shares that attempt's line
    (:func:`~rolecall.events.answered_at_once`).
    """
    attempt_fields = dict.fromkeys(_ATTEMPT_FIELDS)
    task_fields = dict.fromkeys(_TASK_FIELDS)
    answered_fields = dict.fromkeys(_ANSWERED_FIELDS)
    last_run: str | None = None
    text = bytearray()
    following = iter(records)
    ahead: Mapping[str, Any] | Event | None = None
    while True:
        record = ahead if ahead is not None else next(following, None)
        ahead = None
        if record is None:
            break
        event: Event
        if type(record) is AttemptEvent:
            # Its task mostly comes next: the router records the answer, then the task.
            task = next(following, None)
            if task is not None and answered_at_once(record, task):
                assert type(task) is TaskEvent
                event = task
                fields = _fill_answered(answered_fields, task, record)
                line = _orjson_line(dumps, task, fields, record.latency_ms + record.ts)
                if line is None:
                    line = b"%s\n%s" % (event_line(record).encode(), event_line(task).encode())
            else:
                ahead = task
                event = record
                line = _orjson_line(dumps, record, _fill_attempt(attempt_fields, record))
                if line is None:
                    line = event_line(record).encode()
        elif type(record) is TaskEvent:
            event = record
            line = _orjson_line(dumps, record, _fill_task(task_fields, record))
            if line is None:
                line = event_line(record).encode()
        else:  # a run record (or an event of a subclass)
            last_run, other = _record_line(record)
            text = by_run.setdefault(last_run, bytearray())
            text += other
            text += b"\n"
            continue
        run_id = event.run_id
        if run_id is not last_run:  # consecutive records mostly share their run
            last_run = run_id
            text = by_run.setdefault(run_id, bytearray())
        text += line
        text += b"\n"


def _orjson_line(
    dumps: Callable[[Any], bytes], event: Event, fields: dict[str, Any], more: float = 0.0
) -> bytes | None:
    """orjson's line of ``fields`` (``event``'s values, and the finite number ``more`` must
    be), or None where orjson would not write it as it must be."""
    if event.error is not None:
        return None
    cost = event.cost_usd
    try:
        if _isfinite(event.latency_ms + event.ts + more + (0.0 if cost is None else cost)):
            return dumps(fields)
    except (TypeError, ValueError):  # orjson's JSONEncodeError is a TypeError
        pass
    return None


def append_lines(
    by_run: dict[str, bytearray], records: Sequence[Mapping[str, Any] | Event]
) -> None:
    """Each record's line onto its run's buffer in ``by_run`` (created as needed), in order."""
    dumps = _orjson_dumps()
    if dumps is not None:
        _append_orjson_lines(by_run, dumps, records)
        return
    for record in records:
        run_id, line = _record_line(record)
        text = by_run.get(run_id)
        if text is None:
            text = by_run[run_id] = bytearray()
        text += line
        text += b"\n"
