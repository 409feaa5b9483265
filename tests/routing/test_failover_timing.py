"""Hand-over timing on the fake clock: within failover_within for transient faults, at once else."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.errors import ErrorKind

BUDGET = 0.5
LATENCY = 0.02

RETRYABLE = ["server", "overloaded", "timeout", "network", "bad_response", "rate_limit"]


def _harness(build: Any, config: Any, step_of: Any, fault: str) -> Any:
    kind, _, retry_after = fault.partition(":")
    failing = step_of(
        kind=ErrorKind(kind), retry_after=float(retry_after) if retry_after else None, delay=LATENCY
    )
    h = build(config, {})
    h.providers["a"].default = failing
    h.providers["b"].default = step_of(delay=LATENCY)
    return h


@pytest.mark.parametrize(
    "retry",
    [{}, {"initial_backoff": 0.05, "max_attempts": 20}],
    ids=["default-retry", "fast-retry"],
)
@pytest.mark.parametrize("fault", [*RETRYABLE, "rate_limit:0.2", "rate_limit:30"])
async def test_retryable_faults_hand_over_within_budget(
    build: Any, config_of: Any, step_of: Any, fault: str, retry: dict[str, Any]
) -> None:
    config = config_of(
        ("a", "b"),
        roles={"coder": {"provider": "a", "fallback": ["b"]}},
        failover_within=BUDGET,
        retry=retry,
    )
    h = _harness(build, config, step_of, fault)
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "b"
    a_calls, b_calls = h.providers["a"].calls, h.providers["b"].calls
    # The budget runs from the first failure; one more call may start just before it ends.
    assert b_calls[0] - (a_calls[0] + LATENCY) <= BUDGET + LATENCY
    assert reply.attempts[-2].outcome == "handover"
    if retry and fault not in ("rate_limit", "rate_limit:30"):
        # Short backoffs spend the budget on retries; a 429 whose reset (given, or 1 s by
        # default) lies past the budget hands over at once instead.
        assert len(a_calls) >= 2


@pytest.mark.parametrize("fault", ["auth", "permission", "not_found", "quota"])
async def test_disabling_faults_hand_over_at_once(
    build: Any, config_of: Any, step_of: Any, fault: str
) -> None:
    config = config_of(("a", "b"), roles={"coder": {"provider": "a", "fallback": ["b"]}})
    h = _harness(build, config, step_of, fault)
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "b"
    # No wait but the failing call's own latency: no backoff, no cooldown.
    assert h.providers["b"].calls[0] == pytest.approx(h.providers["a"].calls[0] + LATENCY)
    assert [a.outcome for a in reply.attempts] == ["handover", "ok"]
