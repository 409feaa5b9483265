"""Provider health: unavailable, cooldowns, the circuit breaker, the first-call gate, latency."""

from __future__ import annotations

import asyncio

import pytest

from rolecall.errors import ErrorKind, ProviderError
from rolecall.health.memory import HealthTracker, ProviderHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _error(kind: ErrorKind) -> ProviderError:
    return ProviderError(f"{kind.value} happened", kind=kind, provider="p")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> ProviderHealth:
    return ProviderHealth(clock=clock, failure_threshold=3, open_for=10.0)


def test_is_a_health_tracker(health: ProviderHealth) -> None:
    tracker: HealthTracker = health
    assert tracker.state("new") == "ok"
    assert tracker.is_available("new")
    assert tracker.reason("new") is None


def test_unavailable_until_reset(health: ProviderHealth, clock: Clock) -> None:
    error = _error(ErrorKind.AUTH)
    health.mark_unavailable("p", error)
    clock.now += 10_000
    assert health.state("p") == "unavailable"
    assert not health.is_available("p")
    assert health.reason("p") is error
    health.reset()
    assert health.state("p") == "ok"


def test_cool_down_until_reset_time(health: ProviderHealth, clock: Clock) -> None:
    health.cool_down("p", clock.now + 2.0)
    health.cool_down("p", clock.now + 1.0)  # an earlier reset never shortens the cooldown
    assert health.state("p") == "cooling_down"
    assert health.cooldown_remaining("p") == pytest.approx(2.0)
    reason = health.reason("p")
    assert reason is not None and reason.kind is ErrorKind.RATE_LIMIT
    assert reason.retry_after == pytest.approx(2.0)
    clock.now += 2.0
    assert health.state("p") == "ok"
    assert health.cooldown_remaining("p") == 0.0


async def test_breaker_opens_then_probes_once(health: ProviderHealth, clock: Clock) -> None:
    for _ in range(2):
        health.record_failure("p", _error(ErrorKind.SERVER))
    assert health.state("p") == "ok"
    health.record_failure("p", _error(ErrorKind.TIMEOUT))
    assert health.state("p") == "open"
    assert await health.admit("p") is None
    reason = health.reason("p")
    assert reason is not None and "3 failures in a row" in reason.message
    clock.now += 10.0
    assert health.state("p") == "half_open"
    probe = await health.admit("p")
    assert probe is not None
    assert await health.admit("p") is None  # exactly one probe at a time
    assert not health.is_available("p")
    health.record_failure("p", _error(ErrorKind.SERVER))
    probe.release()
    assert health.state("p") == "open"  # a failed probe re-opens for a full period
    clock.now += 10.0
    probe = await health.admit("p")
    assert probe is not None
    health.record_success("p", 12.0)
    probe.release()
    assert health.state("p") == "ok"
    assert await health.admit("p") is not None


def test_success_resets_the_failure_count(health: ProviderHealth) -> None:
    for _ in range(2):
        health.record_failure("p", _error(ErrorKind.SERVER))
    health.record_success("p", 5.0)
    for _ in range(2):
        health.record_failure("p", _error(ErrorKind.SERVER))
    assert health.state("p") == "ok"


def test_request_errors_do_not_open_the_breaker(health: ProviderHealth) -> None:
    for kind in (ErrorKind.CONTEXT_LENGTH, ErrorKind.CONTENT_FILTER, ErrorKind.BAD_REQUEST) * 3:
        health.record_failure("p", _error(kind))
    assert health.state("p") == "ok"


def test_ewma_latency(health: ProviderHealth) -> None:
    assert health.latency_ms("p") is None
    health.record_success("p", 100.0)
    assert health.latency_ms("p") == 100.0
    health.record_success("p", 200.0)
    assert health.latency_ms("p") == pytest.approx(130.0)


async def test_first_call_gate_admits_one_until_an_answer() -> None:
    health = ProviderHealth()
    first = await health.admit("p")
    assert first is not None
    waiters = [asyncio.ensure_future(health.admit("p")) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)  # they wait on an event, holding nothing
    health.mark_unavailable("p", _error(ErrorKind.AUTH))
    first.release()
    assert await asyncio.gather(*waiters) == [None] * 5


async def test_first_call_gate_lifts_after_success() -> None:
    health = ProviderHealth()
    first = await health.admit("p")
    assert first is not None
    waiters = [asyncio.ensure_future(health.admit("p")) for _ in range(3)]
    await asyncio.sleep(0)
    health.record_success("p", 3.0)
    first.release()
    admitted = await asyncio.gather(*waiters)
    assert all(a is not None for a in admitted)


async def test_cancelled_first_call_passes_the_gate_on() -> None:
    health = ProviderHealth()
    first = await health.admit("p")
    assert first is not None
    waiter = asyncio.ensure_future(health.admit("p"))
    await asyncio.sleep(0)
    first.release()  # no answer was recorded (the call was cancelled)
    second = await waiter
    assert second is not None
    third = asyncio.ensure_future(health.admit("p"))
    await asyncio.sleep(0.01)
    assert not third.done()  # still gated: the provider has not answered yet
    health.record_success("p", 1.0)
    second.release()
    assert await third is not None


async def test_confirmed_provider_has_no_gate() -> None:
    health = ProviderHealth()
    health.mark_confirmed("p")
    admissions = await asyncio.gather(*(health.admit("p") for _ in range(10)))
    assert all(a is not None for a in admissions)


async def test_reset_wakes_waiters() -> None:
    health = ProviderHealth()
    first = await health.admit("p")
    assert first is not None
    waiter = asyncio.ensure_future(health.admit("p"))
    await asyncio.sleep(0)
    health.reset()
    assert await waiter is not None  # it becomes the new first call


def test_snapshot(health: ProviderHealth, clock: Clock) -> None:
    health.record_success("a", 10.0)
    health.mark_unavailable("b", _error(ErrorKind.QUOTA))
    health.cool_down("c", clock.now + 3)
    snap = health.snapshot()
    assert snap["a"]["state"] == "ok" and snap["a"]["latency_ms"] == 10.0
    assert snap["b"]["state"] == "unavailable" and snap["b"]["reason"] == "quota happened"
    assert snap["c"]["state"] == "cooling_down" and snap["c"]["cooldown_remaining_s"] == 3.0
