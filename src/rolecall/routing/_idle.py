"""The gaps of a flowing stream, bounded by the provider's ``timeout`` whatever keeps it open.

The transport's read timeout sees bytes, not content: a vendor that stops writing the
answer but keeps sending keep-alives (Anthropic's ``ping`` events, SSE comments) would
hold the caller, and the provider's concurrency slot, for as long as it keeps them up.
:class:`IdleGuard` reads the provider's chunks and fails with a ``timeout``
:class:`~rolecall.errors.ProviderError` when the next one takes longer than ``limit``.

One timer per guarded stream cancels the reading task when a wait passes the limit; a
read costs a clock reading and a dict lookup. On the event loop's own clock (the
router's default ``asyncio.sleep``) the timer is a loop callback, re-armed when it
finds the pending read younger than the limit; an injected sleep (a fake clock) needs a
task sleeping on it instead, which costs about ten times more per stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from rolecall.errors import ErrorKind, ProviderError
from rolecall.types import Chunk

__all__ = ["IdleGuard"]


class IdleGuard:
    """``source``'s chunks; a wait over ``limit`` seconds for the next one is a timeout."""

    def __init__(
        self,
        source: AsyncIterator[Chunk],
        pid: str,
        limit: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        self._source = source
        self._pid = pid
        self._limit = limit
        self._clock = clock
        self._sleep = sleep
        self._since: float | None = None  # when the pending read started
        self._reader: asyncio.Task[Any] | None = None
        # A stream is read on the loop it was opened on: its reader is looked up there,
        # without asking for the running loop (a getpid() on Python 3.11) on every read.
        self._loop = asyncio.get_running_loop()
        self._on_loop_clock = sleep is asyncio.sleep
        self._timer: asyncio.TimerHandle | asyncio.Future[None] | None = None
        self._fired = False

    def __aiter__(self) -> IdleGuard:
        return self

    async def __anext__(self) -> Chunk:
        self._reader = asyncio.current_task(self._loop)
        if self._timer is None:
            if self._on_loop_clock:
                self._timer = self._loop.call_later(self._limit, self._check)
            else:
                self._timer = asyncio.ensure_future(self._watch())
        self._since = self._clock()
        try:
            return await self._source.__anext__()
        except BaseException as exc:
            self._stop()  # the stream is over: ended, failed, or its reader is going
            reader = self._reader
            fired = self._fired and isinstance(exc, asyncio.CancelledError)
            if fired and reader is not None and reader.uncancel() == 0:
                raise ProviderError(
                    f"no content for {self._limit:g} s (the provider's timeout) while the "
                    "stream stayed open",
                    kind=ErrorKind.TIMEOUT,
                    provider=self._pid,
                ) from None
            raise
        finally:
            self._since = None

    def _left(self) -> float:
        """Seconds until the pending read passes the limit (the whole limit when none is
        pending); none left means it has."""
        since = self._since
        return self._limit if since is None else since + self._limit - self._clock()

    def _check(self) -> None:
        """The loop timer's callback: fire, or wake again when the pending read would."""
        left = self._left()
        if left > 0:
            self._timer = self._loop.call_later(left, self._check)
        else:
            self._fire()

    async def _watch(self) -> None:
        """The timer on an injected sleep."""
        while (left := self._left()) > 0:
            await self._sleep(left)
        self._fire()

    def _fire(self) -> None:
        if self._reader is not None:
            self._fired = True
            self._reader.cancel()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def aclose(self) -> None:
        """Stop watching and close the provider's stream."""
        self._stop()
        aclose: Callable[[], Awaitable[Any]] | None = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()
