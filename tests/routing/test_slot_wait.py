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
