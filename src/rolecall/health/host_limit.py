"""A provider's ``max_concurrency`` held by every worker of one host together.

``rolecall serve --workers N`` runs N routers; an ``asyncio.Semaphore`` in each
would let N times ``max_concurrency`` calls reach the provider. The host's health
table file (:mod:`rolecall.health.host`) therefore holds a second region of
slots, one per provider (keyed like its health: provider id and fingerprint),
each with, per worker index, the calls that worker has in flight and since when
its oldest waiting call has waited (0: none waits).

- :meth:`HostLimit.acquire` locks the region and takes one when the host's
  count (kept in the slot as the sum of the workers' counts) is below this
  worker's ``max_concurrency`` (after a reload the workers may briefly
  disagree: each applies its own) and no other worker's call has waited
  longer: a worker whose own releases keep waking its own waiters cannot
  starve the others.
- When full, a call waits without blocking the event loop, in line behind the
  worker's other waiting calls for that provider. A release in this worker
  wakes the first at once; releases in other workers are seen by the first
  polling every :data:`POLL_SECONDS` (one locked read: microseconds).
- A release is written with the worker's next take, or once its event loop has run
  what was ready (the releases of that turn as one write): each locked write is two
  ``lockf`` calls. Other workers may see the call in flight for that turn longer,
  which can only make them wait; closing the table writes what is pending first.
- The old and the new router of a worker, during a reload, share its column:
  at worst a call of one waits for its turn by polling.
- :meth:`LimitSlots.forget` zeroes a dead worker's column: the parent calls it when
  it reaps a worker (killed with -9 or crashed), before starting the worker
  that takes over its index, so a dead worker's calls never hold slots.

All times are ``time.monotonic()``, the same clock in every process of a host.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import time
import weakref
from collections import deque
from typing import Literal

__all__ = ["MAX_WORKERS", "POLL_SECONDS", "HostLimit", "LimitSlots"]

MAX_WORKERS = 64  # the most ``rolecall serve --workers`` starts
LIMIT_SLOTS = 256
# A waiting worker checks for room freed by other workers this often: ~2% of a core
# while a call waits (mostly the event loop's wake-ups) and a few ms added to a hand-over
# between workers, small beside a provider's answer (benchmarks/bench_host_limit.py).
POLL_SECONDS = 0.005

_KEY_BYTES = 16
_EMPTY_KEY = bytes(_KEY_BYTES)
# A slot, in native ints (4 bytes) then doubles: the key (4 ints), the calls in flight on
# the host and the workers with a waiting call (both kept equal to what the columns add up
# to, so the usual call reads two numbers, not 64), then per worker its calls in flight,
# then per worker since when its oldest waiting call waits.
_TOTAL, _WAITING, _COUNTS = 4, 5, 6
_SINCE_BYTE = 4 * (_COUNTS + MAX_WORKERS)  # 280: a multiple of 8
SLOT_BYTES = _SINCE_BYTE + 8 * MAX_WORKERS
SLOT_INTS, SLOT_REALS = SLOT_BYTES // 4, SLOT_BYTES // 8
_SINCE = _SINCE_BYTE // 8
REGION_BYTES = LIMIT_SLOTS * SLOT_BYTES

_lockf = fcntl.lockf
_LOCK_EX, _LOCK_UN = fcntl.LOCK_EX, fcntl.LOCK_UN


class LimitSlots:
    """The limit region of a mapped table file: every method locks it (a ``lockf`` range
    of its own, so health lookups never wait on it) for a few microseconds."""

    def __init__(self, fd: int, view: mmap.mmap, offset: int) -> None:
        self._fd = fd
        self._map = view
        self._offset = offset
        region = memoryview(view)[offset : offset + REGION_BYTES]
        self._ints = region.cast("i")
        self._reals = region.cast("d")
        region.release()
        self._limits: weakref.WeakSet[HostLimit] = weakref.WeakSet()

    def close(self) -> None:
        """Give back the calls released and not yet written (:meth:`HostLimit.release`),
        then let the mapping close (no view of it may be left)."""
        for limit in list(self._limits):
            limit.give_back()
        self._ints.release()
        self._reals.release()

    def _lock(self) -> None:
        _lockf(self._fd, _LOCK_EX, REGION_BYTES, self._offset)

    def _unlock(self) -> None:
        _lockf(self._fd, _LOCK_UN, REGION_BYTES, self._offset)

    def _key_at(self, index: int) -> bytes:
        start = self._offset + index * SLOT_BYTES
        return self._map[start : start + _KEY_BYTES]

    def _find(self, key: bytes, hint: int) -> int | None:
        """The slot holding ``key`` (``hint`` first), else a claimed one: empty, or one no
        worker uses (a key from before a reload); None when every slot is in use."""
        if self._key_at(hint) == key:
            return hint
        free: int | None = None
        idle: int | None = None
        ints = self._ints
        for index in range(LIMIT_SLOTS):
            base = index * SLOT_INTS
            stored = self._key_at(index)
            if stored == key:
                return index
            if stored == _EMPTY_KEY:
                free = index if free is None else free
            elif idle is None and not (ints[base + _TOTAL] or ints[base + _WAITING]):
                idle = index
        claimed = free if free is not None else idle
        if claimed is not None:
            start = self._offset + claimed * SLOT_BYTES
            self._map[start : start + SLOT_BYTES] = key + bytes(SLOT_BYTES - _KEY_BYTES)
        return claimed

    def _set_since(self, index: int, worker: int, since: float) -> None:
        at = index * SLOT_REALS + _SINCE + worker
        before = self._reals[at]
        if (before != 0.0) != (since != 0.0):
            self._ints[index * SLOT_INTS + _WAITING] += 1 if since else -1
        self._reals[at] = since

    def _older_elsewhere(self, index: int, worker: int, since: float) -> bool:
        """Whether another worker has a call waiting since before ``since``."""
        first = index * SLOT_REALS + _SINCE
        waits = self._reals[first : first + MAX_WORKERS]
        return any(0.0 < other < since for at, other in enumerate(waits) if at != worker)

    def take(
        self,
        key: bytes,
        hint: int,
        worker: int,
        limit: int,
        since: float,
        after: float,
        returned: int = 0,
    ) -> tuple[bool | None, int]:
        """Count one more call of ``worker`` in flight if the host's count is below
        ``limit`` and no other worker has waited since before ``since``; then its oldest
        waiting call is ``after`` (0: none). Else ``worker`` waits since ``since``.
        ``returned`` calls of ``worker`` ended first (:meth:`give`, in the same lock).
        Returns whether it was taken (None: every slot is in use) and the key's slot."""
        self._lock()
        try:
            index = self._find(key, hint)
            if index is None:
                return None, hint
            ints, base = self._ints, index * SLOT_INTS
            if returned:
                self._give_at(base, worker, returned)
            waits_here = self._reals[index * SLOT_REALS + _SINCE + worker] != 0.0
            if ints[base + _TOTAL] < limit and (
                ints[base + _WAITING] <= waits_here
                or not self._older_elsewhere(index, worker, since)
            ):
                ints[base + _TOTAL] += 1
                ints[base + _COUNTS + worker] += 1
                if waits_here or after:
                    self._set_since(index, worker, after)
                return True, index
            self._set_since(index, worker, since)
            return False, index
        finally:
            self._unlock()

    def give(self, key: bytes, hint: int, worker: int, calls: int = 1) -> None:
        """``calls`` calls of ``worker`` are no longer in flight."""
        self._lock()
        try:
            index = self._find(key, hint)
            if index is not None:
                self._give_at(index * SLOT_INTS, worker, calls)
        finally:
            self._unlock()

    def _give_at(self, base: int, worker: int, calls: int) -> None:
        ints = self._ints
        given = min(calls, ints[base + _COUNTS + worker])
        if given > 0:
            ints[base + _COUNTS + worker] -= given
            ints[base + _TOTAL] -= given

    def wait_since(self, key: bytes, hint: int, worker: int, since: float) -> None:
        """``worker``'s oldest waiting call now waits since ``since`` (0: none waits)."""
        self._lock()
        try:
            index = self._find(key, hint)
            if index is not None:
                self._set_since(index, worker, since)
        finally:
            self._unlock()

    def in_flight(self, key: bytes) -> int:
        """Calls in flight on the host for ``key`` (0 when it has no slot)."""
        self._lock()
        try:
            for index in range(LIMIT_SLOTS):
                if self._key_at(index) == key:
                    return int(self._ints[index * SLOT_INTS + _TOTAL])
            return 0
        finally:
            self._unlock()

    def forget(self, worker: int) -> None:
        """Zero ``worker``'s calls and waits in every slot (the process is gone)."""
        ints = self._ints
        self._lock()
        try:
            for index in range(LIMIT_SLOTS):
                base = index * SLOT_INTS
                ints[base + _TOTAL] -= ints[base + _COUNTS + worker]
                ints[base + _COUNTS + worker] = 0
                self._set_since(index, worker, 0.0)
        finally:
            self._unlock()


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
        self._returned = 0  # calls released, not yet given back in the table
        self._giving = False  # a give-back is scheduled on the event loop
        slots._limits.add(self)  # closing the table gives back what is released

    def _take(self, since: float, after: float) -> bool:
        returned, self._returned = self._returned, 0
        taken, self._index = self._slots.take(
            self._key, self._index, self._worker, self.limit, since, after, returned
        )
        if taken is None:  # every slot in use (hundreds of providers): limit this worker
            taken = self._mine < self.limit
        self._mine += taken
        return taken

    def try_acquire(self) -> bool:
        """Take a slot if the host has one free now and no call of this worker waits."""
        return not self._queue and self._take(time.monotonic(), 0.0)

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
        """Give the call back: in the table by the next take, or once the event loop has
        run what is ready now (the releases of that time as one locked write).

        Until then other workers see the call as still in flight, which can only make
        them wait, for at most one turn of this loop; each locked write costs two
        ``lockf`` calls, which under load this saves on most calls."""
        self._mine -= 1
        self._returned += 1
        if not self._giving:
            try:
                asyncio.get_running_loop().call_soon(self.give_back)
                self._giving = True
            except RuntimeError:  # no event loop runs (shutting down): give it back now
                self.give_back()
        if self._queue:
            self._queue[0].wake.set()

    def give_back(self) -> None:
        """Write the released calls to the table now."""
        self._giving = False
        returned, self._returned = self._returned, 0
        if returned:
            self._slots.give(self._key, self._index, self._worker, returned)
