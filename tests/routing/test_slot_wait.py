"""A call waiting for a provider's concurrency slot re-checks its health once it has one:
a provider that went down meanwhile (rate limited, dead key) is skipped, not called."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

CHAIN = {"coder": {"provider": "a", "fallback": ["b"]}}


@pytest.mark.parametrize(
    ("failure", "state"),
    [("rate_limit:30", "cooling_down"), ("auth", "unavailable"), ("quota", "unavailable")],
)
async def test_a_task_queued_for_a_slot_skips_a_provider_that_went_down_meanwhile(
    build: Any, config_of: Any, step_of: Any, failure: str, state: str
) -> None:
    config = config_of(("a", "b"), roles=CHAIN, provider_extra={"a": {"max_concurrency": 1}})
    # a's only slot: task one's slow answer, then task two's failure; task three was
    # admitted before that failure and waited for the slot behind them.
    h = build(config, {"a": [step_of(delay=1.0), failure]})
    h.router.health.mark_confirmed("a")  # a proven key: no first-call gate
    replies = await asyncio.gather(
        *(h.router.complete("coder", prompt) for prompt in ("one", "two", "three"))
    )
    assert h.router.health.state("a") == state
    assert [reply.provider for reply in replies] == ["a", "b", "b"]
    assert len(h.providers["a"].calls) == 2
    assert [a.provider for a in replies[2].attempts] == ["b"]


# ---- a provider whose slots are all taken: waited for within failover_within --------------

FAILOVER = 1.0
BUSY = 30.0  # how long the call holding a's only slot runs
ROLES = {
    "coder": {"provider": "a", "fallback": ["b"]},
    "solo": {"provider": "a"},  # a alone: its call is never raced, so it holds the slot
    "last": {"provider": "b", "fallback": ["a"]},
}


def _outcomes(attempts: Any) -> list[tuple[str, int, str, str | None]]:
    return [
        (a.provider, a.attempt, a.outcome, a.error_kind.value if a.error_kind else None)
        for a in attempts
    ]


def _full_a(build: Any, config_of: Any, step_of: Any, **scripts: Any) -> Any:
    config = config_of(
        ("a", "b"),
        roles=ROLES,
        failover_within=FAILOVER,
        retry={"max_attempts": 1},
        provider_extra={"a": {"max_concurrency": 1}},
    )
    h = build(config, {"a": [step_of(delay=BUSY)], **scripts})
    h.router.health.mark_confirmed("a")
    h.router.health.mark_confirmed("b")
    return h


async def _behind_a_busy_call(h: Any, call: Any) -> Any:
    """``call`` made while a's only slot is held by a call of BUSY seconds."""
    holder = asyncio.ensure_future(h.router.complete("solo", "hold the slot"))
    await asyncio.sleep(0)  # the holder takes a's slot first
    try:
        return await call()
    finally:
        await holder


@pytest.mark.parametrize("stream", [False, True])
async def test_a_full_provider_hands_over_within_failover_within(
    build: Any, config_of: Any, step_of: Any, stream: bool
) -> None:
    h = _full_a(build, config_of, step_of)
    started = h.time.now

    async def call() -> Any:
        if not stream:
            reply = await h.router.complete("coder", "hi")
            return reply, h.time.now
        replies = h.router.stream("coder", "hi")
        text = "".join([piece async for piece in replies])
        assert text == "answer from b"
        return replies.reply, h.time.now

    reply, answered_at = await _behind_a_busy_call(h, call)
    assert reply.provider == "b"
    assert answered_at - started == FAILOVER  # was BUSY: the wait for a's slot had no bound
    # A skip before any call, as an unsupported one is: attempt 0, no latency, no call.
    assert _outcomes(reply.attempts) == [("a", 0, "handover", "overloaded"), ("b", 1, "ok", None)]
    assert reply.attempts[0].latency_ms == 0.0
    assert len(h.providers["a"].calls) == 1  # the holder's only
    skipped = [e for e in h.recorder.of_type("attempt") if e.provider == "a" and e.attempt == 0]
    assert len(skipped) == 1 and "max_concurrency" in (skipped[0].error or "")
    # Not a's fault: its health is untouched.
    health = h.router.health.snapshot()["a"]
    assert (h.router.health.state("a"), health["consecutive_failures"]) == ("ok", 0)


async def test_a_full_last_provider_is_waited_for_without_a_bound(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = _full_a(build, config_of, step_of, b=["server"])
    started = h.time.now
    reply = await _behind_a_busy_call(h, lambda: h.router.complete("last", "hi"))
    assert reply.provider == "a"
    assert h.time.now - started == BUSY
    assert [(a.provider, a.attempt, a.outcome) for a in reply.attempts] == [
        ("b", 1, "handover"),
        ("a", 1, "ok"),
    ]


async def test_a_full_provider_is_waited_for_once_the_rest_of_the_chain_failed(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = _full_a(build, config_of, step_of, b=["auth"])
    started = h.time.now
    reply = await _behind_a_busy_call(h, lambda: h.router.complete("coder", "hi"))
    # a was only busy: once b has failed for good, a's slot is waited for after all.
    assert reply.provider == "a"
    assert h.time.now - started == BUSY
    assert _outcomes(reply.attempts) == [
        ("a", 0, "handover", "overloaded"),
        ("b", 1, "handover", "auth"),
        ("a", 1, "ok", None),
    ]


async def test_a_provider_with_a_free_slot_is_called_at_once(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = _full_a(build, config_of, step_of)
    h.providers["a"].script.clear()
    reply = await h.router.complete("coder", "hi")
    assert _outcomes(reply.attempts) == [("a", 1, "ok", None)]
    assert h.time.now == 1000.0


async def test_a_call_cancelled_while_waiting_for_a_slot_leaves_the_slot_free(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = _full_a(build, config_of, step_of)
    holder = asyncio.ensure_future(h.router.complete("solo", "hold the slot"))
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(h.router.complete("coder", "hi"))
    for _ in range(20):
        await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await holder
    reply = await h.router.complete("coder", "again")  # a's slot is free: taken at once
    assert _outcomes(reply.attempts) == [("a", 1, "ok", None)]
    assert [a.outcome for a in h.recorder.of_type("attempt") if a.provider == "b"] == []


async def test_a_provider_busy_with_its_first_call_hands_over_within_failover_within(
    build: Any, config_of: Any, step_of: Any
) -> None:
    # An unproven provider takes one call until its first answer (so fifty tasks against a
    # bad key make one call): the others wait for that answer as for a full provider.
    config = config_of(("a", "b"), roles=ROLES, failover_within=FAILOVER)
    h = build(config, {"a": [step_of(delay=BUSY)]})
    h.router.health.mark_confirmed("b")
    started = h.time.now
    reply = await _behind_a_busy_call(h, lambda: h.router.complete("coder", "hi"))
    assert reply.provider == "b"
    assert h.time.now - started == BUSY  # the holder's; the call itself ended at FAILOVER
    assert _outcomes(reply.attempts) == [("a", 0, "handover", "overloaded"), ("b", 1, "ok", None)]
    assert reply.latency_ms == FAILOVER * 1000.0  # was BUSY: it waited for a's first answer
    assert h.router.health.state("a") == "ok"
