"""A task whose caller went away ends: one task event of status ``cancelled``, after its
cancelled call.

Only the call used to be recorded: the task had no end, so the sinks that keep a task's
attempts until its end (telemetry) kept them for ever, and ``runs show`` listed the task
as ``running``. A stall race's loser is cancelled too, but its task goes on: it ends once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest

from rolecall.errors import RouterClosed

CHAIN = {"coder": {"provider": "a", "fallback": ["b"]}}
STALL = 60.0


@pytest.fixture
def build(build: Any) -> Any:
    """Providers that stream "Hello world" in three pieces."""
    return functools.partial(build, chunks=("Hel", "lo ", "world"))


async def _until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (a few loop turns, no time)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def _ends(h: Any) -> list[tuple[str, str | None, int]]:
    return [(t.status, t.provider, t.attempts) for t in h.recorder.of_type("task")]


def _kinds(h: Any) -> list[str]:
    return [e.type for e in h.recorder.events]


async def test_a_whole_answer_its_caller_cancelled_ends_cancelled(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a",)), {"a": [step_of(delay=STALL)]})
    call = asyncio.ensure_future(h.router.complete("coder", "hi", stage="plan"))
    await _until(lambda: bool(h.providers["a"].calls))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert _kinds(h) == ["attempt", "task"]
    assert _ends(h) == [("cancelled", "a", 1)]
    task = h.recorder.of_type("task")[0]
    assert task.stage == "plan"
    assert (task.error, task.input_tokens, task.cost_usd) == (None, 0, None)


async def test_a_timeout_the_caller_set_ends_the_task_cancelled(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a",)), {"a": [step_of(delay=STALL)]})
    call = asyncio.ensure_future(asyncio.wait_for(h.router.complete("coder", "hi"), 30))
    await _until(lambda: bool(h.providers["a"].calls))
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert _ends(h) == [("cancelled", "a", 1)]


async def test_a_stream_its_reader_closed_ends_cancelled(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a",)), {"a": ["ok"]})
    stream = h.router.stream("coder", "hi")
    async for _ in stream:
        break
    await stream.aclose()
    assert _kinds(h) == ["attempt", "task"]
    assert _ends(h) == [("cancelled", "a", 1)]
    assert h.recorder.of_type("attempt")[0].outcome == "cancelled"


async def test_a_stream_cancelled_before_its_first_text_ends_cancelled(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a",)), {"a": [step_of(delay=STALL)]})

    async def read() -> list[str]:
        return [text async for text in h.router.stream("coder", "hi")]

    reader = asyncio.ensure_future(read())
    await _until(lambda: bool(h.providers["a"].calls))
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert _kinds(h) == ["attempt", "task"]
    assert _ends(h) == [("cancelled", "a", 1)]


async def test_a_client_gone_during_a_race_ends_its_task_once(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(
        config_of(("a", "b"), roles=CHAIN),
        {"a": [step_of(delay=STALL)], "b": [step_of(delay=STALL)]},
    )
    call = asyncio.ensure_future(h.router.complete("coder", "hi"))
    await _until(lambda: bool(h.providers["b"].calls))
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert _kinds(h) == ["attempt", "attempt", "task"]
    [(status, _, attempts)] = _ends(h)
    assert (status, attempts) == ("cancelled", 2)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_stall_race_loser_does_not_end_its_task(
    build: Any, config_of: Any, step_of: Any, stream: bool
) -> None:
    h = build(config_of(("a", "b"), roles=CHAIN), {"a": [step_of(delay=STALL)]})
    if stream:
        assert "".join([t async for t in h.router.stream("coder", "hi")]) == "Hello world"
    else:
        assert (await h.router.complete("coder", "hi")).provider == "b"
    outcomes = [(e.provider, e.outcome) for e in h.recorder.of_type("attempt")]
    assert outcomes == [("a", "cancelled"), ("b", "ok")]
    assert _ends(h) == [("ok", "b", 2)]


async def test_a_stalled_call_that_wins_after_all_ends_its_task_once(
    build: Any, config_of: Any, step_of: Any
) -> None:
    # The challenger is cancelled (recorded as such); the task is answered, not cancelled.
    h = build(
        config_of(("a", "b"), roles=CHAIN),
        {"a": [step_of(delay=6.0)], "b": [step_of(delay=STALL)]},
    )
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "a"
    assert ("b", "cancelled") in [(e.provider, e.outcome) for e in h.recorder.of_type("attempt")]
    assert [t.status for t in h.recorder.of_type("task")] == ["ok"]


@pytest.mark.parametrize("stream", [False, True])
async def test_closing_the_router_under_a_call_ends_its_task_cancelled(
    build: Any, config_of: Any, step_of: Any, stream: bool
) -> None:
    h = build(config_of(("a",)), {"a": [step_of(delay=STALL)]})

    async def read() -> list[str]:
        return [text async for text in h.router.stream("coder", "hi")]

    call = asyncio.ensure_future(read() if stream else h.router.complete("coder", "hi"))
    await _until(lambda: bool(h.providers["a"].calls))
    await h.router.aclose()
    with pytest.raises(RouterClosed):
        await call
    assert _ends(h) == [("cancelled", "a", 1)]
