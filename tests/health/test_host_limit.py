"""A provider's max_concurrency held by the workers of one host together.

Two tables opened on one file stand for two worker processes (each maps the file,
as each worker does); their limits run on one event loop here, so a wait that
needs the other worker's release to be polled takes milliseconds of real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.health.host import HealthTable, slot_key
from rolecall.health.host_limit import HostLimit

KEY = slot_key("p", "abc")
SLOW_POLL = 30.0  # longer than any test: a wait that ends came from a local wake-up


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[tuple[HealthTable, HealthTable]]:
    path = str(tmp_path / "health")
    first, second = HealthTable.create(path), HealthTable(path)
    yield first, second
    first.close()
    second.close()


def _limits(
    tables: tuple[HealthTable, HealthTable], limit: int = 2, *, poll: float = 0.005
) -> tuple[HostLimit, HostLimit]:
    return (
        HostLimit(tables[0].limits, KEY, 0, limit, poll=poll),
        HostLimit(tables[1].limits, KEY, 1, limit, poll=poll),
    )


async def _pending(acquire: asyncio.Task[object]) -> bool:
    await asyncio.sleep(0.05)  # ten polls
    return not acquire.done()


async def _drop(acquire: asyncio.Task[object]) -> None:
    acquire.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await acquire


async def test_the_limit_counts_every_workers_calls_and_a_release_elsewhere_is_seen(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    one, other = _limits(tables)
    await one.acquire()
    await one.acquire()
    waiting = asyncio.create_task(other.acquire())
    assert await _pending(waiting), "a third call went out with a limit of 2"
    released = time.monotonic()
    one.release()
    await asyncio.wait_for(waiting, 1.0)
    assert time.monotonic() - released < 0.1  # a few polls at most
    assert tables[0].limits.in_flight(KEY) == 2


async def test_a_release_in_the_same_worker_wakes_its_waiter_at_once(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    one, _ = _limits(tables, 1, poll=SLOW_POLL)
    await one.acquire()
    waiting = asyncio.create_task(one.acquire())
    assert await _pending(waiting)
    one.release()
    await asyncio.wait_for(waiting, 1.0)


async def test_waiters_go_in_order_so_a_busy_worker_cannot_starve_another(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    one, other = _limits(tables, 1)
    await one.acquire()
    earlier = asyncio.create_task(other.acquire())
    assert await _pending(earlier)
    later = asyncio.create_task(one.acquire())  # same worker as the holder, came later
    assert await _pending(later)
    one.release()  # wakes `later` at once, but `earlier` waited longer
    await asyncio.wait_for(earlier, 1.0)
    assert not later.done()
    other.release()
    await asyncio.wait_for(later, 1.0)
    # No one waits any more: a new call goes straight out.
    one.release()
    await asyncio.wait_for(other.acquire(), 0.01)


async def test_a_cancelled_waiter_leaves_no_claim_behind(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    one, other = _limits(tables, 1, poll=SLOW_POLL)
    await one.acquire()
    gone = asyncio.create_task(other.acquire())
    await asyncio.sleep(0.01)
    gone.cancel()  # its client went away
    with pytest.raises(asyncio.CancelledError):
        await gone
    one.release()
    # Were the cancelled call still marked as waiting, this one would yield to it.
    await asyncio.wait_for(one.acquire(), 0.01)


async def test_a_dead_workers_calls_are_given_back_when_it_is_forgotten(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    dead, alive = _limits(tables)
    await dead.acquire()
    await dead.acquire()
    dead_waiter = asyncio.create_task(dead.acquire())  # its oldest wait is marked too
    waiting = asyncio.create_task(alive.acquire())
    assert await _pending(waiting)
    await _drop(dead_waiter)  # the process is killed: nothing of it runs any more...
    tables[0].limits.wait_since(KEY, 0, 0, 1.0)  # ...and its marks stay as they were
    tables[1].limits.forget(0)  # what the parent does when it reaps the worker
    await asyncio.wait_for(waiting, 1.0)
    assert tables[1].limits.in_flight(KEY) == 1


async def test_after_a_reload_each_worker_applies_its_own_limit(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    reloaded = HostLimit(tables[0].limits, KEY, 0, 3)
    not_yet = HostLimit(tables[1].limits, KEY, 1, 2)
    await reloaded.acquire()
    await not_yet.acquire()
    stuck = asyncio.create_task(not_yet.acquire())
    assert await _pending(stuck)
    await _drop(stuck)
    await asyncio.wait_for(reloaded.acquire(), 0.01)  # its limit is 3


async def test_a_provider_with_another_key_has_its_own_count(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    one, _ = _limits(tables, 1)
    rekeyed = HostLimit(tables[1].limits, slot_key("p", "new"), 1, 1)
    await one.acquire()
    await asyncio.wait_for(rekeyed.acquire(), 0.01)


async def test_a_slot_no_one_uses_is_taken_by_a_new_key_once_every_slot_was_used(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    limits = [HostLimit(tables[0].limits, slot_key(f"p{n}", "x"), 0, 1) for n in range(256)]
    for limit in limits:  # every slot gets a key; all but the last are given back
        await limit.acquire()
    for limit in limits[:-1]:
        limit.release()
    await asyncio.sleep(0)  # the releases reach the table once the loop turns
    newcomer = HostLimit(tables[1].limits, KEY, 1, 1)
    await newcomer.acquire()
    stuck = asyncio.create_task(HostLimit(tables[0].limits, KEY, 0, 1).acquire())
    assert await _pending(stuck), "the new key's count was not kept"
    await _drop(stuck)
    assert tables[0].limits.in_flight(slot_key("p255", "x")) == 1


async def test_releases_reach_the_table_as_the_loop_turns_or_with_the_next_take(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    one, _ = _limits(tables, 3)
    for _ in range(3):
        await one.acquire()
    one.release()
    one.release()
    assert tables[1].limits.in_flight(KEY) == 3  # not yet: one write for both, soon
    await asyncio.sleep(0)
    assert tables[1].limits.in_flight(KEY) == 1
    one.release()
    await one.acquire()  # the release goes in with this take, in the same write
    assert tables[1].limits.in_flight(KEY) == 1
    await asyncio.sleep(0)
    assert tables[1].limits.in_flight(KEY) == 1


def test_a_release_without_a_running_loop_is_given_back_at_once(
    tables: tuple[HealthTable, HealthTable],
) -> None:
    one, _ = _limits(tables, 2)
    asyncio.run(one.acquire())
    one.release()
    assert tables[1].limits.in_flight(KEY) == 0


async def test_closing_the_table_gives_back_what_was_released_before(
    tables: tuple[HealthTable, HealthTable], tmp_path: Path
) -> None:
    third = HealthTable(str(tmp_path / "health"))  # a third process, about to stop
    limit = HostLimit(third.limits, KEY, 2, 2)
    await limit.acquire()
    limit.release()
    third.close()  # before the loop turns
    assert tables[0].limits.in_flight(KEY) == 0
    await asyncio.sleep(0)  # the give-back scheduled on the loop finds nothing left
    assert tables[0].limits.in_flight(KEY) == 0
