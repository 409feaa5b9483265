"""Every attempt and one TaskEvent per task reach the sinks; a failing sink breaks nothing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.events import AttemptEvent, TaskEvent, answered_at_once, event_to_dict

CHAIN = {"coder": {"provider": "a", "fallback": ["b", "c"]}}


async def test_every_attempt_and_one_task_event(build: Any, config_of: Any) -> None:
    config = config_of(
        roles=CHAIN,
        provider_extra={"b": {"pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}},
    )
    h = build(config, {"a": ["server", "auth"]})
    reply = await h.router.complete("coder", "hi", run_id="run1", task_id="t1", stage="generate")
    attempts = h.recorder.of_type("attempt")
    assert [(e.provider, e.model, e.attempt, e.outcome, e.error_kind) for e in attempts] == [
        ("a", "a-model", 1, "retry", ErrorKind.SERVER),
        ("a", "a-model", 2, "handover", ErrorKind.AUTH),
        ("b", "b-model", 1, "ok", None),
    ]
    assert all((e.run_id, e.task_id, e.role) == ("run1", "t1", "coder") for e in attempts)
    assert attempts[0].error == "server from a"
    assert attempts[2].error is None
    assert (attempts[2].input_tokens, attempts[2].output_tokens) == (10, 5)
    assert attempts[2].cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    [task] = h.recorder.of_type("task")
    assert isinstance(task, TaskEvent)
    assert (task.run_id, task.task_id, task.role, task.stage) == ("run1", "t1", "coder", "generate")
    assert (task.status, task.provider, task.model) == ("ok", "b", "b-model")
    assert (task.attempts, task.handovers) == (3, 1)
    assert (task.input_tokens, task.output_tokens, task.cost_usd) == (10, 5, reply.cost_usd)
    assert task.latency_ms == pytest.approx(reply.latency_ms)
    # Events serialise to JSON-ready dicts.
    assert event_to_dict(attempts[0])["error_kind"] == "server"


async def test_a_call_answered_at_once_records_an_attempt_its_task_goes_with(
    build: Any, config_of: Any
) -> None:
    """The run log and the store keep such a pair on one line and row: the router's two
    events must say the same (model, tokens, cost) for that to happen."""
    config = config_of(
        roles=CHAIN,
        provider_extra={"a": {"pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}},
    )
    h = build(config, {})
    await h.router.complete("coder", "hi", run_id="run1", task_id="t1")
    attempt, task = h.recorder.events
    assert isinstance(attempt, AttemptEvent) and answered_at_once(attempt, task)
    assert attempt.cost_usd is not None


async def test_failed_task_event(build: Any, config_of: Any) -> None:
    h = build(config_of(roles=CHAIN), {"a": ["quota"], "b": ["quota"], "c": ["not_found"]})
    with pytest.raises(AllProvidersFailed) as caught:
        await h.router.complete("coder", "hi")
    [task] = h.recorder.of_type("task")
    assert (task.status, task.provider, task.attempts, task.handovers) == ("failed", "c", 3, 3)
    assert task.error == str(caught.value)
    assert len(h.recorder.of_type("attempt")) == 3


async def test_default_ids_are_short_hex_and_unique(build: Any, config_of: Any) -> None:
    h = build(config_of(), {})
    await asyncio.gather(*(h.router.complete("coder", "hi") for _ in range(5)))
    tasks = h.recorder.of_type("task")
    ids = {t.task_id for t in tasks}
    assert len(ids) == 5
    for t in tasks:
        int(t.run_id, 16), int(t.task_id, 16)
        assert len(t.task_id) == 12


class _Broken:
    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: Any) -> None:
        self.calls += 1
        raise RuntimeError("disk full")


async def test_failing_sink_never_breaks_a_call(
    build: Any, config_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    h = build(config_of(roles=CHAIN), {"a": ["server"]})
    broken = _Broken()
    h.router.events.add(broken)
    with caplog.at_level(logging.WARNING, logger="rolecall.events"):
        reply = await h.router.complete("coder", "hi")
        reply2 = await h.router.complete("coder", "again")
    assert (reply.provider, reply2.provider) == ("a", "a")
    assert broken.calls >= 3
    # Sinks after the broken one still get everything.
    assert len(h.recorder.of_type("task")) == 2
    assert sum("disk full" in r.getMessage() for r in caplog.records) == 1


async def test_sink_added_later_and_removed(build: Any, config_of: Any) -> None:
    h = build(config_of(), {})
    seen: list[Any] = []

    class Sink:
        def emit(self, event: Any) -> None:
            seen.append(event)

    sink = Sink()
    h.router.events.add(sink)
    await h.router.complete("coder", "hi")
    h.router.events.remove(sink)
    await h.router.complete("coder", "hi")
    assert [type(e) for e in seen] == [AttemptEvent, TaskEvent]


class _StartsToo:
    """A sink that asks for each call's start as well (the recorder of ask and the workflow)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def emit(self, event: Any) -> None:
        self.records.append(event)

    def emit_start(self, start: Any) -> None:
        self.records.append(start)


async def test_each_call_starts_before_it_ends_for_a_sink_that_asks(
    build: Any, config_of: Any
) -> None:
    """A start precedes each call made, and says what its end will repeat; a provider
    skipped without a call has none, and a sink that did not ask (the gateway's) gets none."""
    h = build(config_of(roles=CHAIN), {"a": ["server", "auth"]})
    starts = _StartsToo()
    h.router.events.add(starts, starts=True)
    await h.router.complete("coder", "hi", run_id="run1", task_id="t1", stage="generate")
    order = [(r.type, r.provider, r.attempt) for r in starts.records if r.type != "task"]
    assert order == [
        ("attempt_start", "a", 1),
        ("attempt", "a", 1),
        ("attempt_start", "a", 2),
        ("attempt", "a", 2),
        ("attempt_start", "b", 1),
        ("attempt", "b", 1),
    ]
    first = starts.records[0]
    assert (first.run_id, first.task_id, first.role, first.stage) == (
        "run1", "t1", "coder", "generate"
    )  # fmt: skip
    assert first.model == "a-model"
    assert all(e.type != "attempt_start" for e in h.recorder.events)

    h.router.events.remove(starts)
    assert not h.router.events.starts
    await h.router.complete("coder", "again", run_id="run1", task_id="t2")
    assert all(r.task_id != "t2" for r in starts.records)
