"""The Redis side of shared provider health: connection, ordered writes, polling, outages.

One client per event loop (redis.asyncio connections belong to the loop that made
them), created on first use. Writes are queued by synchronous callers and sent in
order, pipelined, by one background task per loop, which also runs the tracker's
poll every ``poll_interval`` seconds. That task also makes the first connection:
until Redis has answered once, calls use this process's health alone (writes wait
in the queue), so a Redis that stalls from the start never holds a call either.

Redis is a cache of what other processes learnt, never a dependency of a call:
any failure (refused, reset, timeout, protocol error, an ACL denying our keys)
logs ONE warning, drops the queued writes and switches to in-memory only; every
``reconnect_after`` seconds the background task tries again, quietly. Calls never
wait on that attempt: until it succeeds they use this process's health alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from rolecall._secrets import redact

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

__all__ = ["RedisState", "Write", "display_url"]

log = logging.getLogger("rolecall.health")

# Extends a key's expiry, never shortens it: two processes rate limited with
# different reset times both end up waiting for the later one.
_EXTEND = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return ttl
"""


# How long closing waits for the background task to take a cancel before sending another.
_CANCEL_AGAIN_AFTER = 0.05


@dataclass(frozen=True, slots=True)
class Write:
    """One queued change: set (with expiry), extend an expiry, or delete keys."""

    kind: Literal["set", "extend", "delete"]
    keys: tuple[str, ...]
    value: str = ""
    px: int = 0

    def add_to(self, pipe: Pipeline) -> None:
        if self.kind == "set":
            pipe.set(self.keys[0], self.value, px=self.px)
        elif self.kind == "extend":
            pipe.eval(_EXTEND, 1, self.keys[0], self.px, self.value)
        else:
            pipe.delete(*self.keys)


def display_url(url: str) -> str:
    """The URL without user or password, to name the server in a log line."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "redis"
    return redact(f"{parts.scheme}://{host}{port}{parts.path}")


class _Link:
    """What belongs to one event loop: its client, its background task and its wake-up."""

    __slots__ = ("client", "loop", "task", "waiter", "woken")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Redis) -> None:
        self.loop = loop
        self.client = client
        self.task: asyncio.Task[None] | None = None
        self.woken = False
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self.woken = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        """Until ``wake()`` or ``seconds`` pass. (Not ``wait_for``: on Python 3.11 it can
        swallow a cancellation that arrives as its timeout fires.)"""
        if not self.woken:
            waiter = self.waiter = self.loop.create_future()
            timer = self.loop.call_later(seconds, _finish, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
        self.woken = False


def _finish(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class RedisState:
    """Pipelined Redis operations that degrade to nothing while Redis is unreachable."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float],
        poll: Callable[[], Awaitable[None]] | None = None,
        poll_interval: float = 0.5,
        timeout: float = 0.5,
        reconnect_after: float = 30.0,
    ) -> None:
        self._url = url
        self._clock = clock
        self._poll = poll
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._reconnect_after = reconnect_after
        self._pending: list[Write] = []
        self._link: _Link | None = None
        self._closing = False
        self._closed = False
        # Set while Redis is considered down: when the next try is due.
        self._down_until: float | None = None
        # Counts outages, so an operation started before one began cannot end it.
        self._outages = 0
        self._answered = False  # Redis has answered once: calls may use it

    @property
    def ready(self) -> bool:
        """Redis is up (as far as we know) and has answered: worth using now."""
        return not self._closed and self._down_until is None and self._answered

    def usable(self) -> bool:
        """``ready``; before Redis first answered, or while it is down and a reconnect
        attempt is due, also starts that attempt in the background task (the caller goes on
        without Redis meanwhile)."""
        if self.ready:
            return True
        if self._connecting() or self._reconnect_due():
            with contextlib.suppress(RuntimeError):  # no event loop: the next call starts it
                self._link_for(asyncio.get_running_loop()).wake()
        return False

    def _connecting(self) -> bool:
        return not self._closed and not self._answered and self._down_until is None

    def _reconnect_due(self) -> bool:
        down_until = self._down_until
        return not self._closed and down_until is not None and self._clock() >= down_until

    @property
    def down(self) -> bool:
        return self._down_until is not None

    # ---- writes ------------------------------------------------------------------------

    def enqueue(self, write: Write) -> None:
        """Queue a write; sent shortly by the background task (dropped while Redis is down;
        kept until it first answers)."""
        if not (self.ready or self._connecting()):
            return
        self._pending.append(write)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # sent by the next operation made inside an event loop
        self._link_for(loop).wake()

    async def flush(self) -> None:
        """Send every queued write, in order, in one pipeline (connecting first if Redis has
        yet to answer: a flush is asked for, never on a call's path)."""
        await self.connect()
        await self._send_queued()

    async def _send_queued(self) -> None:
        while self._pending and self.ready:
            await self.run(None)

    async def connect(self) -> bool:
        """Wait for Redis to answer once, if it has not yet (what calls never do); True
        when it is usable."""
        if self._connecting():
            await self._execute(self._link_for(asyncio.get_running_loop()), _ping)
        return self.ready

    # ---- reads and direct operations ----------------------------------------------------

    async def run(self, build: Callable[[Pipeline], None] | None) -> list[Any] | None:
        """Run the commands ``build`` adds to a pipeline, and their results.

        Queued writes go first in the same pipeline, so a read always sees what this
        process wrote before it. None when Redis is not usable now.
        """
        if not self.usable():
            return None
        return await self._execute(self._link_for(asyncio.get_running_loop()), build)

    async def _execute(
        self, link: _Link, build: Callable[[Pipeline], None] | None
    ) -> list[Any] | None:
        outage = self._outages
        writes, self._pending = self._pending, []
        try:
            async with asyncio.timeout(self._timeout * 2):
                pipe = link.client.pipeline(transaction=False)
                for write in writes:
                    write.add_to(pipe)
                if build is not None:
                    build(pipe)
                # A command's own error (a wrong key type...) is its result, not an outage.
                result: list[Any] = await pipe.execute(raise_on_error=False)
            _raise_refusal(result)
        except Exception as exc:  # any Redis trouble: carry on in memory, never fail a call
            self._failed(exc, outage)
            return None
        if self._down_until is not None and outage == self._outages:
            self._down_until = None
            log.info("shared provider health: %s reachable again", display_url(self._url))
        self._answered = True
        return result[len(writes) :]

    def _failed(self, exc: Exception, outage: int) -> None:
        now = self._clock()
        if self._down_until is None:
            self._outages += 1
            self._down_until = now + self._reconnect_after
            self._pending.clear()
            log.warning(
                "shared provider health: Redis at %s is unreachable (%s); "
                "keeping provider health in this process, retrying in %.0f s",
                display_url(self._url),
                _describe(exc),
                self._reconnect_after,
            )
        elif outage == self._outages:
            # A reconnect attempt failed: wait again, quietly.
            self._down_until = now + self._reconnect_after
            log.debug("shared provider health: reconnect failed: %s", _describe(exc))

    # ---- per-loop link ------------------------------------------------------------------

    def _link_for(self, loop: asyncio.AbstractEventLoop) -> _Link:
        link = self._link
        if link is None or link.loop is not loop:
            link = self._link = _Link(loop, self._new_client())
        if (link.task is None or link.task.done()) and not self._closing:
            link.task = loop.create_task(self._serve(link), name="rolecall-health-redis")
        return link

    def _new_client(self) -> Redis:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client: Redis = redis.asyncio.from_url(
            self._url,
            decode_responses=True,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            # Failing fast is the point: a call never waits on Redis retries.
            retry=Retry(NoBackoff(), 0),
        )
        return client

    async def _serve(self, link: _Link) -> None:
        """Send queued writes as they come; poll every ``poll_interval`` seconds; while
        Redis is down, try to reconnect every ``reconnect_after`` seconds."""
        next_poll = self._clock()
        try:
            while not self._closing:
                if self._connecting():  # the first connection (with what is queued)
                    await self._execute(link, _ping)
                    continue
                down_until = self._down_until
                wake_at = next_poll if down_until is None else down_until
                await link.sleep(max(wake_at - self._clock(), 0.0))
                if self._reconnect_due() and not self._closing:
                    await self._execute(link, _ping)
                await self._send_queued()
                if self._poll is not None and self._clock() >= next_poll and not self._closing:
                    next_poll = self._clock() + self._poll_interval
                    if self.ready:
                        try:
                            await self._poll()
                        except Exception as exc:  # a poll must never end the task
                            log.debug("shared provider health: poll failed: %s", _describe(exc))
        finally:
            # Closing (or the loop shutting down): what is queued still goes out.
            with contextlib.suppress(Exception):
                await self._send_queued()
            with contextlib.suppress(Exception):
                await link.client.aclose()

    async def aclose(self) -> None:
        """Send queued writes, stop the background task and close the connection."""
        if self._closing:
            return
        self._closing = True
        link = self._link
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if link is not None and running is link.loop:
            task = link.task
            if task is not None and not task.done():
                if self._down_until is not None or not self._answered:
                    # Nothing is queued while Redis is down, and closing waits on no Redis
                    # that has yet to answer: an attempt in flight is not worth waiting for.
                    await _cancel_and_wait(task)
                else:
                    link.wake()  # it sees _closing, sends what is queued and closes
                    await asyncio.wait([task])
                if not task.cancelled():
                    task.exception()  # retrieved: a closing task has nothing to report
            else:
                await self._send_queued()
                with contextlib.suppress(Exception):
                    await link.client.aclose()
        # Otherwise the loop owning the connection is gone (it closed it) or elsewhere.
        self._link = None
        self._closed = True


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end, cancelling it again while it runs on.

    redis-py sends each command under ``asyncio.wait_for``, which on Python 3.11 drops a
    cancel arriving in the loop turns between the send's end and its own wake-up: the
    attempt then goes on to wait for the reply of a hung Redis for its whole timeout.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_CANCEL_AGAIN_AFTER)


def _ping(pipe: Pipeline) -> None:
    pipe.ping()


def _raise_refusal(results: list[Any]) -> None:
    """Raise a result that says this user may not use our keys (an ACL): unlike a wrong
    key type, every command will get it, so Redis is as good as down."""
    from redis.exceptions import NoPermissionError

    for result in results:
        if isinstance(result, NoPermissionError):
            raise result


def _describe(exc: Exception) -> str:
    text = str(exc) or "no details"
    return redact(f"{type(exc).__name__}: {text}")
