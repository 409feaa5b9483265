"""Connecting to Redis, first or again after an outage, happens in the background, never
inside a call.

Before, the first call of a process, and the first after every ``reconnect_after``
seconds of an outage, made the attempt itself: while Redis stalled (a server that
accepts and never answers) that call waited for the Redis timeout before going on
with local health.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from redis_helpers import DedicatedRedis, free_port, redis_keys, redis_package
from rolecall.errors import ErrorKind, ProviderError
from rolecall.health.shared import RedisHealth

# A call that waited on the hung Redis would wait this long: it could never pass for one
# that did not. HANG_GUARD only keeps a failing test from hanging; it measures no speed.
REDIS_TIMEOUT = 3600.0
HANG_GUARD = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StalledRedis:
    """Accepts connections on 127.0.0.1 and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self.accepted = 0
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", port)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await self._release.wait()
        writer.close()

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def stalled() -> AsyncIterator[StalledRedis]:
    server = StalledRedis()
    yield server
    await server.stop()


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _admit_quickly(tracker: RedisHealth) -> None:
    async with asyncio.timeout(HANG_GUARD):
        admission = await tracker.admit("x")
    assert admission is not None
    admission.release()


async def test_a_call_during_a_redis_outage_never_waits_on_the_reconnect_attempt(
    stalled: StalledRedis,
) -> None:
    redis_package()
    clock = Clock()
    port = free_port()  # nothing listens there yet: the outage starts at once
    tracker = RedisHealth(
        f"redis://127.0.0.1:{port}/0",
        key_prefix="p",
        clock=clock,
        timeout=REDIS_TIMEOUT,
        reconnect_after=30.0,
    )
    try:
        await _admit_quickly(tracker)
        assert not await tracker.connect()  # nothing listens: the outage starts
        assert not tracker.shared

        await stalled.start(port)  # Redis is back, but hangs
        clock.now += 31.0  # a reconnect attempt is due
        await _admit_quickly(tracker)
        tracker.record_failure("x", ProviderError("down", kind=ErrorKind.SERVER, provider="x"))
        # The attempt was made, in the background, and is still waiting on Redis.
        await _until(lambda: stalled.accepted >= 1, "the background reconnect attempt")
        await _admit_quickly(tracker)
        assert not tracker.shared
        async with asyncio.timeout(HANG_GUARD):  # closing does not wait on it either
            await tracker.aclose()
    finally:
        await stalled.stop()
        await tracker.aclose()


async def test_redis_back_after_an_outage_is_picked_up_in_the_background() -> None:
    redis_package()
    clock = Clock()
    port = free_port()
    tracker = RedisHealth(
        f"redis://127.0.0.1:{port}/0", key_prefix="p", clock=clock, reconnect_after=30.0
    )
    server: DedicatedRedis | None = None
    try:
        await _admit_quickly(tracker)
        assert not await tracker.connect()  # nothing listens: the outage starts
        assert not tracker.shared

        server = DedicatedRedis(port)
        clock.now += 31.0
        await _admit_quickly(tracker)  # local health; the attempt runs meanwhile
        await _until(lambda: tracker.shared, "the background reconnect")
        tracker.mark_unavailable("z", ProviderError("bad", kind=ErrorKind.AUTH, provider="z"))
        await tracker._store.flush()
        assert list(redis_keys(server.url, "p")) == ["p:health:z:-:unavailable"]
    finally:
        await tracker.aclose()
        if server is not None:
            server.kill()


async def test_the_first_call_never_waits_on_a_redis_that_stalls_from_the_start(
    stalled: StalledRedis,
) -> None:
    redis_package()
    port = free_port()
    await stalled.start(port)  # up, and hung, before the tracker's first call
    tracker = RedisHealth(
        f"redis://127.0.0.1:{port}/0", key_prefix="p", clock=Clock(), timeout=REDIS_TIMEOUT
    )
    try:
        await _admit_quickly(tracker)
        tracker.record_failure("x", ProviderError("down", kind=ErrorKind.SERVER, provider="x"))
        # The first connection is under way, in the background, and waits on Redis.
        await _until(lambda: stalled.accepted >= 1, "the background first connection")
        await _admit_quickly(tracker)
        async with asyncio.timeout(HANG_GUARD):  # closing does not wait on it either
            await tracker.aclose()
    finally:
        await stalled.stop()
        await tracker.aclose()


async def test_closing_ends_a_first_connection_to_a_hung_redis_whatever_the_moment(
    stalled: StalledRedis,
) -> None:
    """redis-py sends each command under asyncio.wait_for, which on Python 3.11 drops a
    cancel that arrives in the loop turns between the send's end and its own wake-up: the
    attempt then waited on the hung Redis for its whole timeout, and so did closing.
    Closing at every loop turn of the attempt's start lands in that window."""
    redis_package()
    port = free_port()
    await stalled.start(port)
    for turns in range(30):
        tracker = RedisHealth(
            f"redis://127.0.0.1:{port}/0", key_prefix="p", clock=Clock(), timeout=REDIS_TIMEOUT
        )
        try:
            await _admit_quickly(tracker)  # starts the first connection, in the background
            for _ in range(turns):
                await asyncio.sleep(0)
            async with asyncio.timeout(HANG_GUARD):
                await tracker.aclose()
        finally:
            await tracker.aclose()
