"""Each provider's ``max_concurrency``: a semaphore in one process, a host-wide limit in
a worker of ``rolecall serve --workers`` (every worker's calls count against it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from rolecall.config.schema import RolecallConfig
from rolecall.health.host import host_table, host_worker, slot_key
from rolecall.health.host_limit import HostLimit
from rolecall.health.shared import provider_fingerprint
from rolecall.routing._inflight import in_use_on_another_loop

__all__ = ["ConcurrencyLimit", "LoopSemaphore", "concurrency_limits"]


class ConcurrencyLimit(Protocol):
    """What the attempt loop holds while it calls a provider (``asyncio.Semaphore`` is one)."""

    async def acquire(self) -> object: ...

    def release(self) -> None: ...


class LoopSemaphore:
    """A semaphore for the event loop the router's calls run on now. A router used again
    from a new loop (a second ``asyncio.run``) gets a fresh one: asyncio's semaphore is
    bound to the loop its first waiter ran on, and the ended loop's waiters are gone.
    Two running loops never share it: while one holds a slot (a stream between reads
    included), the other's call is refused, as ``InFlight`` refuses it."""

    __slots__ = ("_held", "_limit", "_loop", "_semaphore")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore = asyncio.Semaphore(limit)

    async def acquire(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                if self._held and self._loop.is_running():
                    raise in_use_on_another_loop()
                self._semaphore = asyncio.Semaphore(self._limit)
                self._held = 0
            self._loop = loop
        got = await self._semaphore.acquire()
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
        return {provider_id: LoopSemaphore(limit) for provider_id, limit in limits.items()}
    shared: dict[str, ConcurrencyLimit] = {}
    for provider_id, limit in limits.items():
        provider = config.providers.get(provider_id)
        fingerprint = provider_fingerprint(provider) if provider is not None else "-"
        key = slot_key(provider_id, fingerprint)
        shared[provider_id] = HostLimit(table.limits, key, worker, limit)
    return shared
