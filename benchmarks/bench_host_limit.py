"""A provider's max_concurrency held host-wide by ``rolecall serve --workers N``: its cost.

In a worker, the router's per-provider ``asyncio.Semaphore`` becomes a
:class:`~rolecall.health.host_limit.HostLimit`: acquire locks the limit region of
the host's table file (``lockf``), sums the workers' counts and takes one; release
locks and gives it back. This prints, median [min-max] of the rounds:

- us per call (acquire + release, nothing waiting) for the semaphore and the host
  limit, on the event loop, and the difference: what a worker pays per call;
- for each poll interval, the hand-over delay between workers (a release in one
  worker until the other's waiting call has its slot; two processes) and the CPU
  a worker spends polling while a call waits (per second of waiting).

    python benchmarks/bench_host_limit.py --calls 200000 --rounds 5

Figures, 2026-12-07, the 2-core development machine (shared with other jobs, load
average 3.6), that command:

    us per call (acquire + release), median [min-max] of 5 rounds:
      asyncio.Semaphore                1.14 [0.82-1.66]
      HostLimit (lockf + sum)         13.14 [12.65-19.16]
      added per call in a worker      12.21 [11.51-18.07]
    hand-over between two workers, by poll interval:
      poll ms   release -> slot ms     polling CPU ms/s waited   bare wake-ups ms/s
          1.0       2.79 [1.09-3.69]      75.27 [73.23-77.60]      55.77 [53.82-59.09]
          2.0       0.51 [0.23-5.93]      38.66 [36.65-43.37]      30.95 [29.28-36.26]
          5.0       4.41 [3.22-5.05]      19.22 [16.92-33.20]      15.37 [13.18-17.29]
         10.0       2.98 [1.94-7.54]      17.54 [12.30-18.26]      13.50 [12.83-17.19]

2026-12-07, later: a release is written to the table with the worker's next take, or
once the event loop has run what was ready (one write for the releases of that time),
instead of at once. The same command, before and after in turn (load average ~1.2):
HostLimit 8.65 [7.47-10.06] -> 6.46 [6.11-6.96] us per call, added per call in a worker
7.49 -> 5.48. This loop never yields, so each release goes in with the next take: one
lock and unlock pair per call instead of two, the least a call can cost. A gateway
under load gets between this and the cost before, by how many releases and takes
share a turn of its loop; at one call in flight a release is still written on its own.

Two thirds of the ~12 us a worker adds per call are the four ``lockf`` system calls
(a lock and unlock pair costs 3.4-5.6 us on this machine, whose system calls are slow:
``os.getppid`` takes 0.6 us); the sums are two reads. Polling costs what the event
loop's wake-ups cost (its own lookups add ~4 ms of CPU a second at 5 ms), and only
while a call waits for a full provider. 5 ms (``POLL_SECONDS``) keeps that near 2% of
a core and a hand-over between workers within a few ms, small beside any answer.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Any

from rolecall.health.host import HealthTable, slot_key
from rolecall.health.host_limit import HostLimit

KEY = slot_key("bench", "fingerprint")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} [{min(values):.2f}-{max(values):.2f}]"


async def _per_call(limit: Any, calls: int) -> float:
    """Microseconds per acquire + release with nothing waiting."""
    started = time.perf_counter()
    for _ in range(calls):
        await limit.acquire()
        limit.release()
    return (time.perf_counter() - started) / calls * 1e6


def per_call_costs(path: str, calls: int) -> tuple[float, float]:
    table = HealthTable(path)
    try:
        semaphore = asyncio.run(_per_call(asyncio.Semaphore(8), calls))
        host = asyncio.run(_per_call(HostLimit(table.limits, KEY, 0, 8), calls))
    finally:
        table.close()
    return semaphore, host


def _holder(path: str, poll: float, hold: float, go: Any, released: Any) -> None:
    """Worker 1: holds the only slot, then releases it and says when."""

    async def run() -> None:
        table = HealthTable(path)
        limit = HostLimit(table.limits, KEY, 1, 1, poll=poll)
        await limit.acquire()
        go.set()
        await asyncio.sleep(hold)
        released.value = time.monotonic()
        limit.release()
        table.close()

    asyncio.run(run())


def hand_over(path: str, poll: float, hold: float) -> tuple[float, float]:
    """(ms from the other worker's release to this worker's slot, CPU ms per s waited)."""
    go, released = multiprocessing.Event(), multiprocessing.Value("d", 0.0)
    other = multiprocessing.Process(target=_holder, args=(path, poll, hold, go, released))
    other.start()
    go.wait(10)

    async def wait() -> tuple[float, float, float]:
        table = HealthTable(path)
        limit = HostLimit(table.limits, KEY, 0, 1, poll=poll)
        cpu, wall = time.process_time(), time.monotonic()
        await limit.acquire()
        got = time.monotonic()
        cpu, wall = time.process_time() - cpu, got - wall
        limit.release()
        table.close()
        return got, cpu, wall

    got, cpu, waited = asyncio.run(wait())
    other.join(10)
    return (got - released.value) * 1000, cpu * 1000 / waited


def idle_wakeups(poll: float, seconds: float) -> float:
    """CPU ms per s of an event loop that only wakes every ``poll`` s (the floor of polling)."""

    async def run() -> float:
        cpu, wall = time.process_time(), time.monotonic()
        for _ in range(round(seconds / poll)):
            await asyncio.sleep(poll)
        return (time.process_time() - cpu) * 1000 / (time.monotonic() - wall)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hold", type=float, default=0.5, help="seconds a call waits")
    parser.add_argument("--polls", default="1,2,5,10", help="poll intervals to try, in ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "health")
        HealthTable.create(path).close()
        costs = [per_call_costs(path, args.calls) for _ in range(args.rounds)]
        semaphore = [c[0] for c in costs]
        host = [c[1] for c in costs]
        print(f"us per call (acquire + release), median [min-max] of {args.rounds} rounds:")
        print(f"  asyncio.Semaphore            {_spread(semaphore)}")
        print(f"  HostLimit (lockf + sum)      {_spread(host)}")
        print(f"  added per call in a worker   {_spread([h - s for s, h in costs])}")
        print("hand-over between two workers, by poll interval:")
        print("  poll ms   release -> slot ms     polling CPU ms/s waited   bare wake-ups ms/s")
        for poll_ms in (float(p) for p in args.polls.split(",")):
            rounds = [hand_over(path, poll_ms / 1000, args.hold) for _ in range(args.rounds)]
            bare = [idle_wakeups(poll_ms / 1000, args.hold) for _ in range(args.rounds)]
            print(
                f"  {poll_ms:7.1f}   {_spread([r[0] for r in rounds])}"
                f"   {_spread([r[1] for r in rounds])}   {_spread(bare)}"
            )


if __name__ == "__main__":
    main()
