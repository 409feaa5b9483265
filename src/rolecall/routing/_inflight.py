"""The tasks inside a router's calls, so that closing the router ends them cleanly.

A task is "inside" while it awaits a provider, a slot, a retry wait or a race for
its call; a stream's reader is not inside between chunks (its own code runs then).
:meth:`InFlight.close` cancels every task inside and waits until each has left:
the cancel unwinds through the attempt loop like a client that went away (the
call recorded as ``cancelled``, its slot freed, no retry and no hand-over), and
the task leaves with :class:`RouterClosed` instead of a ``CancelledError`` it
never asked for. Only then are the providers closed under it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from rolecall.errors import RouterClosed

__all__ = ["InFlight"]


class InFlight:
    """Tasks inside the router's calls (with how many calls each runs) and its closing."""

    def __init__(self) -> None:
        self.closed = False
        self._tasks: dict[asyncio.Task[Any], int] = {}
        self._ended: set[asyncio.Task[Any]] = set()  # cancelled by close(), not yet left
        self._left: asyncio.Event | None = None  # set once the last of them has left

    def inside(self) -> _Inside:
        """``with`` this around an await on the router's behalf (raises RouterClosed if
        closed); a cancel from :meth:`close` leaves it as RouterClosed."""
        if self.closed:
            raise RouterClosed("the router is closed: create a new one")
        return _Inside(self)

    def _enter(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks[task] = self._tasks.get(task, 0) + 1
        return task

    def _leave(self, task: asyncio.Task[Any] | None, cancelled: bool) -> bool:
        """Note ``task`` left; True when its cancel came from :meth:`close` alone."""
        if task is None:
            return False
        count = self._tasks.pop(task) - 1
        if count:
            self._tasks[task] = count
            return False
        ended = task in self._ended
        if ended:
            self._ended.discard(task)
            if not self._ended and self._left is not None:
                self._left.set()
        # A cancel of its own (its client went away too) stays a cancel.
        return ended and cancelled and task.uncancel() == 0

    async def close(self) -> None:
        """Refuse new calls, cancel the tasks inside one and wait until they have left."""
        self.closed = True
        current = asyncio.current_task()
        ended = [
            task
            for task in self._tasks
            if task is not current and not task.done() and task not in self._ended
        ]
        self._ended.update(ended)
        if not self._ended:
            return
        if self._left is None:
            self._left = asyncio.Event()
        for task in ended:  # once each: a second close() waits for the same tasks
            task.cancel()
        await self._left.wait()


class _Inside:
    """One task inside one call (see :meth:`InFlight.inside`)."""

    __slots__ = ("_inflight", "_task")

    def __init__(self, inflight: InFlight) -> None:
        self._inflight = inflight
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> None:
        self._task = self._inflight._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
        if self._inflight._leave(self._task, cancelled):
            raise RouterClosed() from None
