"""Hand-over timing on the real clock: within failover_within for transient faults, at once else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rolecall.errors import ErrorKind
from rolecall.router import Router

BUDGET = 0.5
LATENCY = 0.02
# One call that starts just before the budget ends, plus scheduling slack.
TOLERANCE = LATENCY + 0.08

RETRYABLE = ["server", "overloaded", "timeout", "network", "bad_response", "rate_limit"]


def _router(config: Any, providers: dict[str, Any], sleeps: list[float] | None = None) -> Router:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        await asyncio.sleep(seconds)

    return Router(config, providers=providers, sleep=sleep)


def _providers(scripted: Any, step_of: Any, fault: str) -> dict[str, Any]:
    kind, _, retry_after = fault.partition(":")
    failing = step_of(
        kind=ErrorKind(kind), retry_after=float(retry_after) if retry_after else None, delay=LATENCY
    )
    return {
        "a": scripted("a", default=failing),
        "b": scripted("b", default=step_of(delay=LATENCY)),
    }


@pytest.mark.parametrize(
    "retry",
    [{}, {"initial_backoff": 0.05, "max_attempts": 20}],
    ids=["default-retry", "fast-retry"],
)
@pytest.mark.parametrize("fault", [*RETRYABLE, "rate_limit:0.2", "rate_limit:30"])
async def test_retryable_faults_hand_over_within_budget(
    config_of: Any, scripted: Any, step_of: Any, fault: str, retry: dict[str, Any]
) -> None:
    config = config_of(
        ("a", "b"),
        roles={"coder": {"provider": "a", "fallback": ["b"]}},
        failover_within=BUDGET,
        retry=retry,
    )
    providers = _providers(scripted, step_of, fault)
    reply = await _router(config, providers).complete("coder", "hi")
    assert reply.provider == "b"
    a_calls, b_calls = providers["a"].calls, providers["b"].calls
    handover_after = b_calls[0] - (a_calls[0] + LATENCY)
    assert handover_after <= BUDGET + TOLERANCE
    if retry and fault not in ("rate_limit", "rate_limit:30"):
        # Short backoffs spend the budget on retries; a 429 whose reset (given, or 1 s by
        # default) lies past the budget hands over at once instead.
        assert len(a_calls) >= 2


@pytest.mark.parametrize("fault", ["auth", "permission", "not_found", "quota"])
async def test_disabling_faults_hand_over_at_once(
    config_of: Any, scripted: Any, step_of: Any, fault: str
) -> None:
    config = config_of(("a", "b"), roles={"coder": {"provider": "a", "fallback": ["b"]}})
    providers = _providers(scripted, step_of, fault)
    sleeps: list[float] = []
    reply = await _router(config, providers, sleeps).complete("coder", "hi")
    assert reply.provider == "b"
    assert sleeps == []
    assert providers["b"].calls[0] - (providers["a"].calls[0] + LATENCY) < 0.02
