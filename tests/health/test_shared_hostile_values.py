"""Shared provider health read back from Redis when another process wrote nonsense there.

Redis is shared by every process (and maybe other apps): what is under our keys is
read as a hint, never trusted. A value no rolecall writes must not fail a call, must
not keep a provider away longer than any real finding could, and must not flood the
log or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from redis_helpers import redis_keys, redis_package
from rolecall.config.schema import RolecallConfig
from rolecall.errors import MAX_RETRY_AFTER, ErrorKind, ProviderError
from rolecall.health.shared import RedisHealth
from rolecall.routing.router import Router
from rolecall.sim import SimServer

KEY = "test-key"
TEN_YEARS_MS = 10 * 365 * 86400 * 1000


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer("openai", api_key=KEY, reply="from x")
    server.start()
    yield server
    server.stop()


def _config(sim: SimServer, redis_url: str, prefix: str) -> RolecallConfig:
    return RolecallConfig.model_validate(
        {
            "providers": {
                "x": {
                    "type": "openai",
                    "model": "sim-model",
                    "api_key": KEY,
                    "base_url": sim.base_url,
                    "timeout": 5,
                }
            },
            "roles": {"coder": {"provider": "x"}},
            "state": {"redis_url": redis_url, "key_prefix": prefix},
        }
    )


def _write(redis_url: str, key: str, value: str, px: int | None = None) -> None:
    client = redis_package().Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        client.set(key, value, px=px)
    finally:
        client.close()


def _key(router: Router, field: str) -> str:
    health = router.health
    assert isinstance(health, RedisHealth)
    (key,) = [key for key in health.keys("x") if key.endswith(f":{field}")]
    return key


async def _answered(router: Router) -> None:
    """Until Redis has answered the router's tracker (its calls go by its own health before)."""
    health = router.health
    assert isinstance(health, RedisHealth)
    assert await health.connect()


async def test_values_we_never_write_under_our_keys_never_fail_or_skip_a_call(
    sim: SimServer, redis_url: str, prefix: str
) -> None:
    async with Router(_config(sim, redis_url, prefix), check_credentials=False) as router:
        _write(redis_url, _key(router, "circuit"), "[" * 100_000, px=60_000)
        _write(redis_url, _key(router, "unavailable"), "not ours", px=60_000)
        reply = await router.complete("coder", "hi")
        assert reply.provider == "x"


async def test_far_future_cooldown_in_redis_lasts_no_longer_than_any_vendor_reset(
    sim: SimServer, redis_url: str, prefix: str
) -> None:
    async with Router(_config(sim, redis_url, prefix), check_credentials=False) as router:
        key = _key(router, "cooldown")
        _write(redis_url, key, "1", px=TEN_YEARS_MS)
        await _answered(router)
        assert await router.health.admit("x") is None
        assert router.health.state("x") == "cooling_down"
        assert 0 < router.health.cooldown_remaining("x") <= MAX_RETRY_AFTER
        health = router.health
        assert isinstance(health, RedisHealth)
        await health._store.flush()
        # Cut in Redis too, so every process (this one included) is free within the hour.
        assert 0 < redis_keys(redis_url, prefix)[key] <= MAX_RETRY_AFTER * 1000


async def test_far_future_circuit_in_redis_is_probed_after_one_open_period(
    redis_url: str, prefix: str
) -> None:
    tracker = RedisHealth(redis_url, key_prefix=prefix, fingerprints={"x": "fp"}, open_for=0.3)
    try:
        assert await tracker.connect()  # its calls use Redis once it has answered
        (key,) = [key for key in tracker.keys("x") if key.endswith(":circuit")]
        body = '{"kind":"server","message":"boom","failures":true}'
        _write(redis_url, key, body, px=TEN_YEARS_MS)
        assert await tracker.admit("x") is None
        reason = tracker.reason("x")
        assert reason is not None
        assert reason.retry_after is not None and reason.retry_after <= tracker.open_for
        assert "True" not in reason.message  # a JSON true is no count of failures
        await asyncio.sleep(0.4)
        probe = await tracker.admit("x")
        assert probe is not None
        probe.release()
    finally:
        await tracker.aclose()


@pytest.mark.parametrize("px", [TEN_YEARS_MS, None], ids=["ten-years", "no-expiry"])
async def test_a_stray_probe_key_in_redis_holds_off_probing_for_one_open_period_at_most(
    redis_url: str, prefix: str, px: int | None
) -> None:
    # Expiries are Redis's own, on its clock: the waits below are for Redis, as above.
    tracker = RedisHealth(redis_url, key_prefix=prefix, fingerprints={"x": "fp"}, open_for=0.3)
    try:
        assert await tracker.connect()  # its calls use Redis once it has answered
        (probe_key,) = [key for key in tracker.keys("x") if key.endswith(":probe")]
        for _ in range(tracker.failure_threshold):
            tracker.record_failure("x", ProviderError("down", kind=ErrorKind.SERVER, provider="x"))
        await tracker._store.flush()
        _write(redis_url, probe_key, "1", px=px)  # left by a crashed or foreign process
        await asyncio.sleep(0.4)
        assert tracker.state("x") == "half_open"
        assert await tracker.admit("x") is None  # someone seems to be probing
        # The stray expiry is cut to one open period in Redis, for every process.
        assert 0 < redis_keys(redis_url, prefix)[probe_key] <= 300
        await asyncio.sleep(0.4)
        probe = await tracker.admit("x")
        assert probe is not None
        probe.release()
    finally:
        await tracker.aclose()


async def test_a_huge_multiline_message_in_redis_is_clipped_in_reason_and_log(
    sim: SimServer, redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rolecall.health")
    message = "line one\nline two " + "A" * 10_000
    async with Router(_config(sim, redis_url, prefix), check_credentials=False) as router:
        body = '{"kind":"auth","message":' + json.dumps(message) + "}"
        _write(redis_url, _key(router, "unavailable"), body, px=60_000)
        await _answered(router)
        assert await router.health.admit("x") is None
        reason = router.health.reason("x")
        assert reason is not None
        assert reason.message.startswith("line one line two AAA")
        assert len(reason.message) <= 300
    logged = [record.getMessage() for record in caplog.records]
    assert logged and all(len(line) < 500 and "\n" not in line for line in logged), logged
