"""Each provider's ``max_concurrency``: a semaphore in one process, a host-wide limit in
a worker of ``rolecall serve --workers`` (every worker's calls count against it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from rolecall.config.schema import RolecallConfig
from rolecall.health.host import host_table, host_worker, slot_key
from rolecall.health.host_limit import HostLimit
from rolecall.health.shared import provider_fingerprint
from rolecall.routing._inflight import in_use_on_another_loop

__all__ = ["ConcurrencyLimit", "ProcessLimit", "concurrency_limits", "slot_within"]


class ConcurrencyLimit(Protocol):
    """What the attempt loop holds while it calls a provider."""

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, never waiting (nor passing a waiting call)."""
        ...

    async def acquire(self) -> object: ...

    def release(self) -> None: ...


class ProcessLimit:
    """``max_concurrency`` for the calls of this process, on the event loop they run on now.

    A router used again from a new loop (a second ``asyncio.run``) gets a fresh semaphore:
    asyncio's is bound to the loop its first waiter ran on, and the ended loop's waiters
    are gone. Two running loops never share it: while one holds a slot (a stream between
    reads included), the other's call is refused, as ``InFlight`` refuses it.
    """

    __slots__ = ("_held", "_limit", "_loop", "_semaphore")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore = asyncio.Semaphore(limit)

    def _on_this_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                if self._held and self._loop.is_running():
                    raise in_use_on_another_loop()
                self._semaphore = asyncio.Semaphore(self._limit)
                self._held = 0
            self._loop = loop
        return self._semaphore

    def try_acquire(self) -> bool:
        semaphore = self._on_this_loop()
        # What acquire() does when it need not wait (locked() counts the waiting calls too),
        # without a coroutine: the attempt loop's common case.
        if semaphore.locked():
            return False
        semaphore._value -= 1
        self._held += 1
        return True

    async def acquire(self) -> bool:
        got = await self._on_this_loop().acquire()
        self._held += 1
        return got

    def release(self) -> None:
        self._held -= 1
        self._semaphore.release()


def concurrency_limits(
    config: RolecallConfig, limits: Mapping[str, int]
) -> dict[str, ConcurrencyLimit]:
    """One limit per provider id in ``limits`` (its ``max_concurrency``)."""
    table, worker = host_table(), host_worker()
    if table is None or worker is None:
        return {provider_id: ProcessLimit(limit) for provider_id, limit in limits.items()}
    shared: dict[str, ConcurrencyLimit] = {}
    for provider_id, limit in limits.items():
        provider = config.providers.get(provider_id)
        fingerprint = provider_fingerprint(provider) if provider is not None else "-"
        key = slot_key(provider_id, fingerprint)
        shared[provider_id] = HostLimit(table.limits, key, worker, limit)
    return shared


async def slot_within(
    limit: ConcurrencyLimit, seconds: float | None, sleep: Callable[[float], Awaitable[Any]]
) -> bool:
    """Wait for a slot of ``limit``, for ``seconds`` at most (None: for as long as it takes);
    whether one was taken. ``sleep`` times the wait (the router's clock)."""
    if seconds is None:
        await limit.acquire()
        return True
    taking = asyncio.ensure_future(limit.acquire())
    timer = asyncio.ensure_future(sleep(seconds))
    try:
        await asyncio.wait((taking, timer), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        timer.cancel()
        await _cancel(taking)
        if not taking.cancelled() and taking.exception() is None:
            limit.release()  # taken in the same instant
        raise
    timer.cancel()
    if not taking.done():
        await _cancel(taking)
        if taking.cancelled():
            return False
    taking.result()  # an error of the limit itself is raised
    return True


async def _cancel(future: asyncio.Future[Any]) -> None:
    future.cancel()
    await asyncio.gather(future, return_exceptions=True)
