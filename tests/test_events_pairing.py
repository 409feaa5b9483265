"""events.answered_at_once: which attempt and task the run log and the store keep together."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from factories import attempt_event, task_event
from rolecall.errors import ErrorKind
from rolecall.events import answered_at_once

SHARED = {"input_tokens": 7, "output_tokens": 9, "cost_usd": 0.002, "cached_input_tokens": 3}


def test_a_task_its_first_attempt_answered_goes_with_it() -> None:
    attempt = attempt_event(**SHARED, latency_ms=40.0, ts=1.0)
    task = task_event(**SHARED, latency_ms=41.0, ts=1.001, dialect="chat", finish_reason="stop")
    assert answered_at_once(attempt, task)


@pytest.mark.parametrize(
    ("attempt_change", "task_change"),
    [
        ({"outcome": "retry", "error_kind": ErrorKind.SERVER}, {}),
        ({"attempt": 2}, {}),
        ({"error": "slow"}, {}),
        ({"error_kind": ErrorKind.STALLED}, {}),
        ({}, {"attempts": 2}),
        ({}, {"status": "failed", "error": "no provider answered"}),
        ({}, {"task_id": "other"}),
        ({}, {"run_id": "other"}),
        ({}, {"role": "reviewer"}),
        ({}, {"provider": "claude"}),
        ({}, {"model": "other-model"}),
        ({}, {"input_tokens": 8}),
        ({}, {"output_tokens": 8}),
        ({}, {"cached_input_tokens": 0}),
        ({}, {"cost_usd": None}),
    ],
)
def test_anything_else_to_tell_keeps_them_apart(
    attempt_change: dict[str, Any], task_change: dict[str, Any]
) -> None:
    attempt = replace(attempt_event(**SHARED), **attempt_change)
    task = replace(task_event(**SHARED), **task_change)
    assert not answered_at_once(attempt, task)


def test_only_a_task_event_can_go_with_an_attempt() -> None:
    attempt = attempt_event(**SHARED)
    assert not answered_at_once(attempt, replace(attempt, latency_ms=1.0))
    assert not answered_at_once(attempt, {"type": "task"})
