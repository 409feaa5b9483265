"""What one call holds while it runs: the provider's health admission and a concurrency slot.

A free slot is taken at once, with no timer. When the provider is busy (every
``max_concurrency`` slot taken, or its first call still under way before it has shown
that its key works), the chain's last provider is waited for as long as it takes; any
other for ``failover_within`` at most, the time a call has to produce its first item,
so a busy provider holds a task no longer than a stalled one would while the next
provider sits idle.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rolecall.health.memory import Admission, HealthTracker
from rolecall.routing._limits import ConcurrencyLimit

__all__ = ["FIRST_CALL", "FULL", "Slot", "take_slot", "within"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

# Why a busy provider was passed over (the skip's message says so).
FULL = "all its max_concurrency slots stayed taken"
FIRST_CALL = "its first call was still under way"


@dataclass(slots=True)
class Slot:
    """The provider's concurrency slot and health admission held by one call."""

    semaphore: ConcurrencyLimit
    admission: Admission
    held: bool = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.semaphore.release()
            self.admission.release()


async def take_slot(
    health: HealthTracker, limit: ConcurrencyLimit, pid: str, bound: float | None, sleep: Sleep
) -> Slot | str | None:
    """A slot for one call to ``pid``; None when health skips it; :data:`FULL` or
    :data:`FIRST_CALL` when it stayed busy for ``bound`` seconds (None: no bound)."""
    if bound is not None and health.gated(pid):
        came, admission = await within(
            functools.partial(health.admit, pid), bound, sleep, _release_admission
        )
        if not came:
            return FIRST_CALL
    else:
        admission = await health.admit(pid)
    if admission is None:
        return None
    if limit.try_acquire():
        return Slot(limit, admission)
    try:
        if bound is None:
            await limit.acquire()
        else:
            taken, _ = await within(limit.acquire, bound, sleep, lambda _: limit.release())
            if not taken:
                admission.release()
                return FULL
    except BaseException:
        admission.release()
        raise
    return Slot(limit, admission)


async def within(
    start: Callable[[], Awaitable[T]], seconds: float, sleep: Sleep, undo: Callable[[T], object]
) -> tuple[bool, T | None]:
    """``(True, result)`` when what ``start()`` waits for comes within ``seconds``, else
    ``(False, None)`` once it is stopped. ``sleep`` times the wait (the router's clock);
    ``undo`` gives back what came in the same instant as a stop from outside."""
    getting = asyncio.ensure_future(start())
    timer = asyncio.ensure_future(sleep(seconds))
    try:
        await asyncio.wait((getting, timer), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        timer.cancel()
        await _cancel(getting)
        if not getting.cancelled() and getting.exception() is None:
            undo(getting.result())
        raise
    timer.cancel()
    if not getting.done():
        await _cancel(getting)
        if getting.cancelled():
            return False, None
    return True, getting.result()  # an error of its own is raised


def _release_admission(admission: Admission | None) -> None:
    if admission is not None:
        admission.release()


async def _cancel(future: asyncio.Future[Any]) -> None:
    future.cancel()
    await asyncio.gather(future, return_exceptions=True)
