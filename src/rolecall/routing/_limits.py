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

__all__ = ["ConcurrencyLimit", "concurrency_limits"]


class ConcurrencyLimit(Protocol):
    """What the attempt loop holds while it calls a provider (``asyncio.Semaphore`` is one)."""

    async def acquire(self) -> object: ...

    def release(self) -> None: ...


def concurrency_limits(
    config: RolecallConfig, limits: Mapping[str, int]
) -> dict[str, ConcurrencyLimit]:
    """One limit per provider id in ``limits`` (its ``max_concurrency``)."""
    table, worker = host_table(), host_worker()
    if table is None or worker is None:
        return {provider_id: asyncio.Semaphore(limit) for provider_id, limit in limits.items()}
    shared: dict[str, ConcurrencyLimit] = {}
    for provider_id, limit in limits.items():
        provider = config.providers.get(provider_id)
        fingerprint = provider_fingerprint(provider) if provider is not None else "-"
        key = slot_key(provider_id, fingerprint)
        shared[provider_id] = HostLimit(table.limits, key, worker, limit)
    return shared
