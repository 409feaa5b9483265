"""Events as every store can hold them: what no column takes, changed as little as it can be.

A batch is stored in one transaction, so one event no column can take would lose the
whole batch: a NaN (SQLite stores it as NULL, which NOT NULL refuses; PostgreSQL keeps
it, and every sum it joins stays NaN), an infinity (added into a rollup for good), a
lone surrogate (UTF-8 cannot hold one), a NUL (PostgreSQL text refuses it), a count
past 64 bits. The store writes a batch as it is; only when that fails on such a value,
or when its sums are not finite numbers, does it write the copies made here instead,
counting what was changed:

- ``number``: a latency, time or cost that is not a finite number: the cost is stored
  as unknown (NULL), the latency as 0 and the time as the time of writing;
- ``count``: a token or attempt count that is no whole number a 64-bit column holds:
  the nearest one it holds (0 for a NaN);
- ``text``: text with a lone surrogate or a NUL: both as their escapes (``\\ud800``,
  ``\\x00``), the rest of the text as it was.

Events are shared with the other sinks: they are copied, never changed.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from rolecall.events import AttemptEvent, TaskEvent
from rolecall.recording.store.rollups import Rollup, RollupKey, RunDelta

__all__ = ["CHANGE_TOLD", "finite_sums", "storable_events", "storable_text"]

_LOWEST = -(2**63)
_HIGHEST = 2**63 - 1

_ATTEMPT_TEXTS = ("run_id", "task_id", "role", "provider", "model", "outcome")
_TASK_TEXTS = ("run_id", "task_id", "role", "status")
_ATTEMPT_OPTIONAL_TEXTS = ("error_kind", "error")
_TASK_OPTIONAL_TEXTS = ("provider", "model", "error", "stage", "dialect")
_ATTEMPT_COUNTS = ("attempt", "input_tokens", "output_tokens", "cached_input_tokens")
_TASK_COUNTS = ("attempts", "handovers", "input_tokens", "output_tokens", "cached_input_tokens")

_Event = TypeVar("_Event", AttemptEvent, TaskEvent)


def storable_text(value: object) -> str:
    """``value`` as text every store holds: lone surrogates and NULs as their escapes."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii():
        return text.replace("\x00", "\\x00") if "\x00" in text else text
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, _LOWEST), _HIGHEST)
    number = _number(value)
    if number is None:
        return 0
    return min(max(int(number), _LOWEST), _HIGHEST)


def _storable(event: _Event, changes: Counter[str]) -> _Event:
    """``event``, or a copy of it with what no store column takes changed."""
    is_attempt = isinstance(event, AttemptEvent)
    changed: dict[str, Any] = {}
    for name in _ATTEMPT_TEXTS if is_attempt else _TASK_TEXTS:
        value = getattr(event, name)
        text = storable_text("" if value is None else value)
        if text != value or not isinstance(value, str):
            changed[name] = text
    for name in _ATTEMPT_OPTIONAL_TEXTS if is_attempt else _TASK_OPTIONAL_TEXTS:
        value = getattr(event, name)
        if value is not None and storable_text(value) != value:
            changed[name] = storable_text(value)
    if changed:
        changes["text"] += 1
    counts = 0
    for name in _ATTEMPT_COUNTS if is_attempt else _TASK_COUNTS:
        value = getattr(event, name)
        if type(value) is not int or _count(value) != value:
            changed[name] = _count(value)
            counts += 1
    changes["count"] += bool(counts)
    numbers = 0
    if _number(event.latency_ms) is None:
        changed["latency_ms"], numbers = 0.0, numbers + 1
    if _number(event.ts) is None:
        changed["ts"], numbers = time.time(), numbers + 1
    if event.cost_usd is not None and _number(event.cost_usd) is None:
        changed["cost_usd"], numbers = None, numbers + 1
    changes["number"] += bool(numbers)
    return replace(event, **changed) if changed else event


def storable_events(
    attempts: Sequence[AttemptEvent], tasks: Sequence[TaskEvent]
) -> tuple[list[AttemptEvent], list[TaskEvent], Counter[str]]:
    """The attempts and tasks as every store holds them, and how many events had each
    kind of value changed (``number``, ``count``, ``text``; none when all were fine)."""
    changes: Counter[str] = Counter()
    stored_attempts = [_storable(event, changes) for event in attempts]
    stored_tasks = [_storable(event, changes) for event in tasks]
    return stored_attempts, stored_tasks, +changes


# What the store tells, once, of each kind of change (``dropped``: an event refused still).
CHANGE_TOLD = {
    "number": "stored a latency, time or cost that was not a finite number as unknown "
    "(a latency as 0, a time as the time of writing)",
    "count": "stored a token or attempt count that was no whole 64-bit number as the nearest one",
    "text": "stored text that UTF-8 or the store cannot hold (a lone surrogate, a NUL) "
    "with those characters escaped",
    "dropped": "dropped an event it could not store ({reason}); the rest of its batch is stored",
}


def finite_sums(
    hourly: dict[RollupKey, Rollup], per_run: dict[str, RunDelta], tasks: Sequence[TaskEvent]
) -> bool:
    """True when no figure of a batch is a NaN or an infinity: one would stay in every
    sum it joins."""
    total = 0.0
    for rollup in hourly.values():
        total += rollup.latency_sum + rollup.cost_usd
    for delta in per_run.values():
        total += 0.0 if delta.cost_usd is None else delta.cost_usd
    total += sum([task.latency_ms + task.ts + (task.cost_usd or 0.0) for task in tasks])
    return math.isfinite(total)
