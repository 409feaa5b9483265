"""Keyword builders for the records the suite checks, with sensible defaults.

``attempt_event(outcome="retry", error_kind=ErrorKind.TIMEOUT)`` instead of a dozen
positional arguments: a test names only what it is about.
"""

from __future__ import annotations

import random
import time
from typing import Any

from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent, TaskEvent

__all__ = ["T0", "attempt_event", "task_event"]

# A fixed wall-clock instant (2026-01-01 00:00 UTC) for events that need a known time;
# without ``ts`` an event is stamped now, as the dataclasses do.
T0 = 1_767_225_600.0


def attempt_event(**fields: Any) -> AttemptEvent:
    """An answered first attempt of task ``t`` in run ``r`` on ``gpt``; override any field."""
    values: dict[str, Any] = {
        "run_id": "r",
        "task_id": "t",
        "role": "coder",
        "provider": "gpt",
        "model": "gpt-model",
        "attempt": 1,
        "outcome": "ok",
        "error_kind": None,
        "latency_ms": 100.0,
    }
    values.update(fields)
    if isinstance(values["error_kind"], str):
        values["error_kind"] = ErrorKind(values["error_kind"])
    return AttemptEvent(**values)


def task_event(**fields: Any) -> TaskEvent:
    """Task ``t`` of run ``r`` answered by ``gpt`` at its first attempt; override any field."""
    values: dict[str, Any] = {
        "run_id": "r",
        "task_id": "t",
        "role": "coder",
        "status": "ok",
        "provider": "gpt",
        "model": "gpt-model",
        "attempts": 1,
        "handovers": 0,
        "latency_ms": 100.0,
    }
    values.update(fields)
    return TaskEvent(**values)


def calls_in_the_last_hour(
    provider: str, count: int, success: float, seed: int
) -> list[AttemptEvent]:
    """``count`` coder calls to ``provider`` an hour ago, a ``success`` share of them
    answered (the rest handed over as overloaded), drawn from ``seed``."""
    rng = random.Random(seed)
    now = time.time()
    return [
        attempt_event(
            run_id=f"run-{seed}",
            task_id=f"t{index}",
            provider=provider,
            outcome="ok" if ok else "handover",
            error_kind=None if ok else "overloaded",
            latency_ms=500.0,
            ts=now - 3600 + index,
        )
        for index, ok in ((i, rng.random() < success) for i in range(count))
    ]
