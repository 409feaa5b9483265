"""Stall hand-over on the fake clock: a call with no first item after failover_within is raced."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest

from rolecall.errors import ErrorKind, ProviderError

CHAIN = {"coder": {"provider": "a", "fallback": ["b"]}}
STALL = 60.0


@pytest.fixture
def build(build: Any) -> Any:
    """Providers that stream "Hello world" in three pieces."""
    return functools.partial(build, chunks=("Hel", "lo ", "world"))


def _outcomes(attempts: Any) -> list[tuple[str, str, str | None]]:
    return [(a.provider, a.outcome, a.error_kind.value if a.error_kind else None) for a in attempts]


async def _until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (a few loop turns, no time)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def _read(stream: Any) -> str:
    return "".join([chunk async for chunk in stream])


async def test_stalled_whole_answer_hands_over_at_failover_within(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a", "b"), roles=CHAIN), {"a": [step_of(delay=STALL)]})
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "b"
    assert reply.latency_ms == 5000.0  # the stall timer, then b's instant answer
    assert _outcomes(reply.attempts) == [("a", "cancelled", "stalled"), ("b", "ok", None)]
    task = h.recorder.of_type("task")[-1]
    assert task.handovers == 1
    assert task.input_tokens == 10  # b's tokens only: the stalled call bills nothing
    attempt_a = h.recorder.of_type("attempt")[0]
    assert (attempt_a.outcome, attempt_a.input_tokens, attempt_a.cost_usd) == ("cancelled", 0, None)
    # A stall counts toward the provider's health like a timeout.
    assert h.router.health.snapshot()["a"]["consecutive_failures"] == 1


async def test_stalled_stream_hands_over_before_any_text(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a", "b"), roles=CHAIN), {"a": [step_of(delay=STALL)]})
    stream = h.router.stream("coder", "hi")
    assert await _read(stream) == "Hello world"
    assert stream.reply.provider == "b"
    assert stream.reply.latency_ms == 5000.0
    assert _outcomes(stream.reply.attempts) == [("a", "cancelled", "stalled"), ("b", "ok", None)]
    assert h.recorder.of_type("task")[-1].handovers == 1


async def test_the_last_provider_is_never_raced(build: Any, config_of: Any, step_of: Any) -> None:
    h = build(config_of(("a",)), {"a": [step_of(delay=STALL)]})
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "a"
    assert reply.latency_ms == STALL * 1000
    assert _outcomes(reply.attempts) == [("a", "ok", None)]


async def test_a_stalled_call_that_answers_first_still_wins(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(
        config_of(("a", "b"), roles=CHAIN), {"a": [step_of(delay=6.0)], "b": [step_of(delay=10)]}
    )
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "a"
    assert reply.latency_ms == 6000.0
    # b started at 5 s and lost: cancelled, not a failure of b's.
    assert _outcomes(reply.attempts) == [("b", "cancelled", None), ("a", "ok", None)]
    assert h.recorder.of_type("task")[-1].handovers == 0
    assert h.router.health.snapshot()["b"]["failures"] == 0


async def test_when_the_rest_of_the_chain_fails_the_stalled_call_is_awaited(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a", "b"), roles=CHAIN), {"a": [step_of(delay=8.0)], "b": ["auth"]})
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "a"
    assert _outcomes(reply.attempts) == [("b", "handover", "auth"), ("a", "ok", None)]


async def test_a_stall_race_reaches_past_the_next_provider(
    build: Any, config_of: Any, step_of: Any
) -> None:
    roles = {"coder": {"provider": "a", "fallback": ["b", "c"]}}
    h = build(config_of(roles=roles), {"a": [step_of(delay=STALL)], "b": [step_of(delay=STALL)]})
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "c"
    assert reply.latency_ms == 10000.0
    assert sorted(_outcomes(reply.attempts)) == [
        ("a", "cancelled", "stalled"),
        ("b", "cancelled", "stalled"),
        ("c", "ok", None),
    ]


async def test_moved_on_while_waiting_to_retry_is_a_handover(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(("a", "b"), roles=CHAIN), {"a": ["server"]})

    async def take_a_down() -> None:
        await _until(lambda: bool(h.providers["a"].calls))
        h.router.health.mark_unavailable(
            "a", ProviderError("key revoked", kind=ErrorKind.AUTH, provider="a")
        )

    downer = asyncio.ensure_future(take_a_down())
    reply = await h.router.complete("coder", "hi")
    await downer
    assert reply.provider == "b"
    assert len(h.providers["a"].calls) == 1  # a's retry never happened
    assert _outcomes(reply.attempts) == [("a", "handover", "server"), ("b", "ok", None)]
    assert h.recorder.of_type("task")[-1].handovers == 1
    assert [e.outcome for e in h.recorder.of_type("attempt")] == ["handover", "ok"]


async def test_a_retry_is_recorded_once_the_provider_is_called_again(
    build: Any, config_of: Any
) -> None:
    h = build(config_of(("a", "b"), roles=CHAIN), {"a": ["server"]})
    reply = await h.router.complete("coder", "hi")
    assert _outcomes(reply.attempts) == [("a", "retry", "server"), ("a", "ok", None)]
    assert h.recorder.of_type("task")[-1].handovers == 0


async def test_a_client_gone_during_a_race_cancels_both_calls(
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
    outcomes = sorted((e.provider, e.outcome) for e in h.recorder.of_type("attempt"))
    assert outcomes == [("a", "cancelled"), ("b", "cancelled")]
    assert h.providers["a"].in_flight == h.providers["b"].in_flight == 0
