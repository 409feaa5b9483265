"""A provider's ``max_concurrency`` held by every worker of one host together.

``rolecall serve --workers N`` runs N routers; an ``asyncio.Semaphore`` in each
would let N times ``max_concurrency`` calls reach the provider. The host's health
table file (:mod:`rolecall.health.host`) therefore holds a second region of
slots, one per provider (keyed like its health: provider id and fingerprint),
each with, per worker index, the calls that worker has in flight and since when
its oldest waiting call has waited (0: none waits).

- :meth:`HostLimit.acquire` locks the region, sums the counts and takes one
  when the sum is below this worker's ``max_concurrency`` (after a reload the
  workers may briefly disagree: each applies its own) and no other worker's
  call has waited longer: a worker whose own releases keep waking its own
  waiters cannot starve the others.
- When full, a call waits without blocking the event loop, in line behind the
  worker's other waiting calls for that provider. A release in this worker
  wakes the first at once; releases in other workers are seen by the first
  polling every :data:`POLL_SECONDS` (one lock and sum, a few microseconds).
- :meth:`LimitSlots.forget` zeroes a dead worker's column: the parent calls it when
  it reaps a worker (killed with -9 or crashed), before starting the worker
  that takes over its index, so a dead worker's calls never hold slots.

All times are ``time.monotonic()``, the same clock in every process of a host.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import struct
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

__all__ = ["MAX_WORKERS", "POLL_SECONDS", "HostLimit", "LimitSlots"]

MAX_WORKERS = 64  # the most ``rolecall serve --workers`` starts
LIMIT_SLOTS = 256
# A waiting worker checks for room freed by other workers this often. 5 ms costs a
# waiting worker ~0.5% of a core and adds ~2.5 ms on average to a hand-over between
# workers, small beside a provider's answer (measured in benchmarks/bench_host_limit.py).
POLL_SECONDS = 0.005

_KEY_BYTES = 16
_EMPTY_KEY = bytes(_KEY_BYTES)
_COUNTS = struct.Struct(f"<{MAX_WORKERS}i")
_SINCE = struct.Struct(f"<{MAX_WORKERS}d")
_COUNT = struct.Struct("<i")
_TIME = struct.Struct("<d")
SLOT_BYTES = _KEY_BYTES + _COUNTS.size + _SINCE.size
REGION_BYTES = LIMIT_SLOTS * SLOT_BYTES


class LimitSlots:
    """The limit region of a mapped table file: every method locks it (a ``lockf`` range
    of its own, so health lookups never wait on it) for a few microseconds."""

    def __init__(self, fd: int, view: mmap.mmap, offset: int) -> None:
        self._fd = fd
        self._map = view
        self._offset = offset

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.lockf(self._fd, fcntl.LOCK_EX, REGION_BYTES, self._offset)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, REGION_BYTES, self._offset)

    def _find(self, key: bytes, hint: int) -> int | None:
        """The slot holding ``key`` (``hint`` first), else a claimed one: empty, or one
        no worker uses (a key from before a reload); None when every slot is in use."""
        view = self._map
        start = self._offset + hint * SLOT_BYTES
        if view[start : start + _KEY_BYTES] == key:
            return hint
        free: int | None = None
        idle: int | None = None
        for index in range(LIMIT_SLOTS):
            start = self._offset + index * SLOT_BYTES
            stored = view[start : start + _KEY_BYTES]
            if stored == key:
                return index
            if stored == _EMPTY_KEY:
                free = index if free is None else free
            elif idle is None and self._unused(start):
                idle = index
        claimed = free if free is not None else idle
        if claimed is not None:
            start = self._offset + claimed * SLOT_BYTES
            view[start : start + SLOT_BYTES] = key + bytes(SLOT_BYTES - _KEY_BYTES)
        return claimed

    def _unused(self, start: int) -> bool:
        """No call in flight nor waiting in the slot at ``start``."""
        counts = _COUNTS.unpack_from(self._map, start + _KEY_BYTES)
        return not any(counts) and not any(
            _SINCE.unpack_from(self._map, start + SLOT_BYTES - _SINCE.size)
        )

    def take(
        self, key: bytes, hint: int, worker: int, limit: int, since: float, after: float
    ) -> tuple[bool | None, int]:
        """Count one more call of ``worker`` in flight if the host's count is below
        ``limit`` and no other worker has waited since before ``since``; then its oldest
        waiting call is ``after`` (0: none). Else ``worker`` waits since ``since``.
        Returns whether it was taken (None: every slot is in use) and the key's slot."""
        with self._locked():
            index = self._find(key, hint)
            if index is None:
                return None, hint
            counts_at = self._offset + index * SLOT_BYTES + _KEY_BYTES
            since_at = counts_at + _COUNTS.size
            mine = since_at + worker * _TIME.size
            view = self._map
            if sum(_COUNTS.unpack_from(view, counts_at)) < limit:
                waits = _SINCE.unpack_from(view, since_at)
                if not any(0.0 < other < since for other in waits[:worker]) and not any(
                    0.0 < other < since for other in waits[worker + 1 :]
                ):
                    at = counts_at + worker * _COUNT.size
                    _COUNT.pack_into(view, at, _COUNT.unpack_from(view, at)[0] + 1)
                    _TIME.pack_into(view, mine, after)
                    return True, index
            _TIME.pack_into(view, mine, since)
            return False, index

    def give(self, key: bytes, hint: int, worker: int) -> None:
        """One call of ``worker`` is no longer in flight."""
        with self._locked():
            index = self._find(key, hint)
            if index is None:
                return
            at = self._offset + index * SLOT_BYTES + _KEY_BYTES + worker * _COUNT.size
            _COUNT.pack_into(self._map, at, max(0, _COUNT.unpack_from(self._map, at)[0] - 1))

    def wait_since(self, key: bytes, hint: int, worker: int, since: float) -> None:
        """``worker``'s oldest waiting call now waits since ``since`` (0: none waits)."""
        with self._locked():
            index = self._find(key, hint)
            if index is not None:
                at = self._offset + index * SLOT_BYTES + _KEY_BYTES + _COUNTS.size
                _TIME.pack_into(self._map, at + worker * _TIME.size, since)

    def in_flight(self, key: bytes) -> int:
        """Calls in flight on the host for ``key`` (0 when it has no slot)."""
        with self._locked():
            for index in range(LIMIT_SLOTS):
                start = self._offset + index * SLOT_BYTES
                if self._map[start : start + _KEY_BYTES] == key:
                    return sum(_COUNTS.unpack_from(self._map, start + _KEY_BYTES))
        return 0

    def forget(self, worker: int) -> None:
        """Zero ``worker``'s calls and waits in every slot (the process is gone)."""
        with self._locked():
            for index in range(LIMIT_SLOTS):
                start = self._offset + index * SLOT_BYTES + _KEY_BYTES
                _COUNT.pack_into(self._map, start + worker * _COUNT.size, 0)
                _TIME.pack_into(self._map, start + _COUNTS.size + worker * _TIME.size, 0.0)


class _Waiter:
    __slots__ = ("since", "wake")

    def __init__(self, since: float) -> None:
        self.since = since
        self.wake = asyncio.Event()


class HostLimit:
    """At most ``limit`` calls in flight to one provider from every worker of the host.

    Has the ``acquire``/``release`` of the ``asyncio.Semaphore`` it replaces in a
    worker; one per provider per router.
    """

    def __init__(
        self,
        slots: LimitSlots,
        key: bytes,
        worker: int,
        limit: int,
        *,
        poll: float = POLL_SECONDS,
    ) -> None:
        if not 0 <= worker < MAX_WORKERS:
            raise ValueError(f"worker index {worker} is not below {MAX_WORKERS}")
        self._slots = slots
        self._key = key
        self._worker = worker
        self.limit = limit
        self._poll = poll
        self._index = 0  # where the key was last found: checked first
        self._queue: deque[_Waiter] = deque()
        self._mine = 0  # calls this limit let through and not yet released

    def _take(self, since: float, after: float) -> bool:
        taken, self._index = self._slots.take(
            self._key, self._index, self._worker, self.limit, since, after
        )
        if taken is None:  # every slot in use (hundreds of providers): limit this worker
            taken = self._mine < self.limit
        self._mine += taken
        return taken

    async def acquire(self) -> Literal[True]:
        since = time.monotonic()
        if not self._queue and self._take(since, 0.0):
            return True
        waiter = _Waiter(since)
        self._queue.append(waiter)
        try:
            while True:
                head = self._queue[0] is waiter
                if head and self._take(since, self._next_since()):
                    return True
                try:  # the first in line also polls: other workers' releases wake no one here
                    async with asyncio.timeout(self._poll if head else None):
                        await waiter.wake.wait()
                except TimeoutError:
                    pass
                waiter.wake.clear()
        except BaseException:
            was_head = self._queue[0] is waiter
            self._queue.remove(waiter)
            if was_head:  # no longer waiting: the next in line (if any) is the oldest
                self._slots.wait_since(self._key, self._index, self._worker, self._head_since())
            raise
        finally:
            if waiter in self._queue:  # taken: always the first in line
                self._queue.popleft()
            if self._queue:
                self._queue[0].wake.set()  # the next in line tries at once

    def _next_since(self) -> float:
        return self._queue[1].since if len(self._queue) > 1 else 0.0

    def _head_since(self) -> float:
        return self._queue[0].since if self._queue else 0.0

    def release(self) -> None:
        self._mine -= 1
        self._slots.give(self._key, self._index, self._worker)
        if self._queue:
            self._queue[0].wake.set()
