"""The tasks inside a router's calls, so that closing the router ends them cleanly.

A task is "inside" while it awaits a provider, a slot, a retry wait or a race for
its call; a stream's reader is not inside between chunks (its own code runs then).
:meth:`InFlight.close` cancels every task inside and waits until each has left:
the cancel unwinds through the attempt loop like a client that went away (the
call recorded as ``cancelled``, its slot freed, no retry and no hand-over), and
the task leaves with :class:`RouterClosed` instead of a ``CancelledError`` it
never asked for. Only then are the providers closed under it.

The router's waits (slots, first-call gates, pooled connections) belong to one event
loop at a time: a call from another loop while this one's calls are inside (threads
sharing a router, each running its own loop) is refused, naming the fix, instead of
waiting for a wake-up that the other thread's loop would never deliver.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from rolecall.errors import RolecallError, RouterClosed

__all__ = ["InFlight", "Reads", "in_use_on_another_loop"]


def in_use_on_another_loop() -> RolecallError:
    return RolecallError(
        "this Router is in use by calls on another event loop (another thread): a Router "
        "serves one event loop at a time; create one Router per thread that runs its own "
        "loop, or call rolecall.router.complete_sync from each"
    )


class InFlight:
    """Tasks inside the router's calls (with how many calls each runs) and its closing.

    ``with`` it around an await on the router's behalf: entering raises RouterClosed
    once closed, and a cancel from :meth:`close` leaves it as RouterClosed. It is its
    own context manager, with nothing built per call: the task inside is the current
    one on the way in and on the way out alike (a ``with`` block never changes task).
    """

    def __init__(self) -> None:
        self.closed = False
        self._tasks: dict[asyncio.Task[Any], int] = {}
        self._ended: set[asyncio.Task[Any]] = set()  # cancelled by close(), not yet left
        self._left: asyncio.Event | None = None  # set once the last of them has left
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the tasks inside
        self._joining = threading.Lock()  # two threads' first calls at once: one loop wins

    # The task inside is looked up on the way in and on the way out: nothing is kept per
    # call (a ``with`` block never changes task).
    _current_task = staticmethod(asyncio.current_task)

    def __enter__(self) -> None:
        if self.closed:
            raise RouterClosed("the router is closed: create a new one")
        task = self._current_task()
        if task is not None:
            self._join(task)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._current_task()
        if task is not None:
            self._leave(task, exc_type)

    def _join(self, task: asyncio.Task[Any]) -> None:
        tasks = self._tasks
        loop = task.get_loop()
        if loop is not self._loop:  # a first call, or another loop's: decided one at a time
            with self._joining:
                if loop is not self._loop:
                    # A loop that stopped with tasks inside (left by hand) runs none of them.
                    if tasks and self._loop is not None and self._loop.is_running():
                        raise in_use_on_another_loop()
                    self._loop = loop
        tasks[task] = tasks.get(task, 0) + 1

    def _leave(self, task: asyncio.Task[Any], exc_type: type[BaseException] | None) -> None:
        tasks = self._tasks
        count = tasks.pop(task) - 1
        if count:
            tasks[task] = count
        elif task in self._ended:
            self._left_ended(task, exc_type)

    def _left_ended(self, task: asyncio.Task[Any], exc_type: type[BaseException] | None) -> None:
        """``task``, which :meth:`close` cancelled, has left its last call."""
        self._ended.discard(task)
        if not self._ended and self._left is not None:
            self._left.set()
        # A cancel of its own (its client went away too) stays a cancel.
        if (
            exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
            and task.uncancel() == 0
        ):
            raise RouterClosed() from None

    def reads(self, loop: asyncio.AbstractEventLoop) -> Reads:
        """``with`` the result around each read of one stream opened on ``loop``."""
        return Reads(self, loop)

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


class Reads:
    """A stream's reads, each inside the router as :class:`InFlight`'s ``with`` is.

    Built once per stream: its reads come one at a time (an async generator never runs
    twice at once), so the task looked up on the way in is kept for the way out, and it
    is looked up on the stream's own loop, without asking for the running one (a
    ``getpid()`` on Python 3.11). A stream may be read by another task each time.
    """

    __slots__ = ("_inflight", "_loop", "_task")

    def __init__(self, inflight: InFlight, loop: asyncio.AbstractEventLoop) -> None:
        self._inflight = inflight
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> None:
        inflight = self._inflight
        if inflight.closed:
            raise RouterClosed("the router is closed: create a new one")
        task = self._task = asyncio.current_task(self._loop)
        if task is not None:
            inflight._join(task)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._inflight._leave(task, exc_type)
