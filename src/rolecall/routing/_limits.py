"""Each provider's ``max_concurrency``: a semaphore in one process, a host-wide limit in
a worker of ``rolecall serve --workers`` (every worker's calls count against it).

The embedded model (``type: local``) runs one request at a time in each process, so its
limit is one call whatever ``max_concurrency`` says (:class:`ModelLimit`): a call waits
for it here, where the attempt loop bounds the wait, not in the model's own queue, where
it looked like a call that had stalled. Its slot is free only once the model is loaded:
the first load is a wait for the slot, not a call.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from rolecall.config.provider_models import LocalProviderConfig
from rolecall.config.schema import RolecallConfig
from rolecall.health.host import host_table, host_worker, slot_key
from rolecall.health.host_limit import HostLimit
from rolecall.health.shared import provider_fingerprint
from rolecall.routing._inflight import in_use_on_another_loop

__all__ = [
    "ConcurrencyLimit",
    "ModelLimit",
    "ProcessLimit",
    "concurrency_limits",
]


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


class ModelLimit:
    """The embedded model's slot: one call at a time (shared by the providers that run the
    same model), free once the provider's model is loaded (by ``load()``, when it has one).

    The load runs on even when the call that started it stops waiting (a hand-over), so
    a later call finds the model loaded. A load that fails lets its call through, which
    then fails with the load's own error (a missing file, a missing runtime).
    """

    def __init__(self, turn: ProcessLimit, provider: Callable[[], object]) -> None:
        self._turn = turn
        self._provider = provider
        self._loading: asyncio.Future[Any] | None = None
        self._loaded = False

    def try_acquire(self) -> bool:
        return self._loaded and self._turn.try_acquire()

    async def acquire(self) -> bool:
        await self._turn.acquire()
        if not self._loaded:
            try:
                await self._load()
            except BaseException:
                self._turn.release()
                raise
        return True

    def release(self) -> None:
        self._turn.release()

    async def _load(self) -> None:
        load: Callable[[], Awaitable[Any]] | None = getattr(self._provider(), "load", None)
        if load is None:  # nothing to load (another provider standing in for the model)
            self._loaded = True
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(load())
            self._loading.add_done_callback(self._load_done)
        try:  # this call may stop waiting (a hand-over): the load goes on
            await asyncio.shield(self._loading)
        except Exception:
            return  # the call meets the error itself; a later one loads again
        self._loaded = True

    def _load_done(self, loading: asyncio.Future[Any]) -> None:
        """Loaded: the next call takes the slot at once, whether or not one waited for it."""
        if loading.cancelled() or loading.exception() is not None:  # marks the error seen
            if self._loading is loading:
                self._loading = None
        else:
            self._loaded = True


def concurrency_limits(
    config: RolecallConfig, limits: Mapping[str, int], provider: Callable[[str], object]
) -> dict[str, ConcurrencyLimit]:
    """One limit per provider id in ``limits`` (its ``max_concurrency``); ``provider``
    builds a provider by id (a local model's limit loads it)."""
    table, worker = host_table(), host_worker()
    out: dict[str, ConcurrencyLimit] = {}
    turns: dict[tuple[object, ...], ProcessLimit] = {}
    for provider_id, limit in limits.items():
        entry = config.providers.get(provider_id)
        if isinstance(entry, LocalProviderConfig):  # one model per process: never host-wide
            turn = turns.setdefault(_model_key(entry), ProcessLimit(1))
            out[provider_id] = ModelLimit(turn, functools.partial(provider, provider_id))
        elif table is None or worker is None:
            out[provider_id] = ProcessLimit(limit)
        else:
            fingerprint = provider_fingerprint(entry) if entry is not None else "-"
            key = slot_key(provider_id, fingerprint)
            out[provider_id] = HostLimit(table.limits, key, worker, limit)
    return out


def _model_key(entry: LocalProviderConfig) -> tuple[object, ...]:
    """What tells the embedded models of two providers apart (each loaded model has a
    worker thread of its own): the file, the runtime, and how it was loaded."""
    runtime = entry.runtime or "mistralrs"
    variant = entry.context_size if runtime == "llama-cpp" else entry.requantize
    return (runtime, entry.model_path, variant)
