"""Event-loop stalls inside `rolecall serve`, and what overlapped them (benchmarks only).

    .venv/bin/python benchmarks/_bench_lag.py REPORT.json serve ARGS...

Runs ``rolecall serve ARGS`` (one worker) with a probe on the gateway's event
loop: a task that sleeps 1 ms again and again and records how late each wake-up
is. It also times, by wrapping them here as _bench_phases.py does, the
recorder's flushes (``Recorder._flush_pending``, in its thread: wall and thread
CPU time) and every garbage collection (``gc.callbacks``), and stamps each
response the doors write (``DoorCycle._send_whole``). When the server stops it
writes REPORT.json (see :func:`summary`): only wake-ups while the gateway is
busy (a response written in the last 100 ms) count, so the figures do not
depend on how long it idled while the benchmark measured other servers. A stall
is a wake-up more than 3 ms late. The loop thread's CPU time over the sleep
tells the stalls where the loop was running its own callbacks (CPU >= half the
wall time) from those where it waited: for the GIL, or for a core the machine
gave to another process; the thread's run-queue wait (/proc/thread-self/schedstat)
tells those two apart. A stall "overlaps a flush" (or a collection) when that
interval intersected its late part; a waiting stall that overlaps a flush is
the flush thread's doing.

bench_gateway.py --lag starts its gateways through this script and prints the
report's figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from bisect import bisect_left
from typing import Any

from rolecall.gateway import hotpath
from rolecall.gateway.server import GatewayServer
from rolecall.recording.recorder import Recorder

STALL_MS = 3.0
BUSY_S = 0.1  # a wake-up counts when a response was written at most this long before

lateness: list[float] = []  # ms, each busy wake-up
# (when it should have woken, when it did, the loop thread's CPU time over that sleep,
# and its time waiting in the kernel's run queue: runnable, no core given)
stalls: list[tuple[float, float, float, float]] = []
flushes: list[tuple[float, float, float]] = []  # (start, end, thread CPU s)
collections: list[tuple[float, float]] = []
responses = [0, 0.0]  # count, time of the last one


def _instrument() -> None:
    flush = Recorder._flush_pending

    def timed_flush(self: Recorder, *args: Any, **kwargs: Any) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            flush(self, *args, **kwargs)
        finally:
            flushes.append((started, time.perf_counter(), time.thread_time() - cpu))

    Recorder._flush_pending = timed_flush  # type: ignore[method-assign]
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            collections.append((gc_started[0], time.perf_counter()))

    gc.callbacks.append(on_gc)
    send_whole = hotpath.DoorCycle._send_whole

    async def stamped(self: Any, response: Any) -> None:
        await send_whole(self, response)
        responses[0] += 1
        responses[1] = time.perf_counter()

    hotpath.DoorCycle._send_whole = stamped  # type: ignore[method-assign]
    serve = GatewayServer.serve

    async def probed(self: GatewayServer) -> None:
        probe = asyncio.get_running_loop().create_task(_probe())
        try:
            await serve(self)
        finally:
            probe.cancel()
            _write_report()

    GatewayServer.serve = probed  # type: ignore[method-assign]


def _write_report() -> None:
    with open(sys.argv[1], "w") as out:  # at exit: nothing else waits on this loop
        json.dump(summary(), out)


def _run_queue_wait(fd: int) -> float:
    """Seconds this thread has waited for a core so far (Linux schedstat; 0 elsewhere)."""
    if fd < 0:
        return 0.0
    return int(os.pread(fd, 100, 0).split()[1]) / 1e9


async def _probe() -> None:
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        fd = -1
    while True:
        due, cpu, queued = time.perf_counter() + 0.001, time.thread_time(), _run_queue_wait(fd)
        await asyncio.sleep(0.001)
        woke = time.perf_counter()
        if woke - responses[1] > BUSY_S:
            continue
        late = (woke - due) * 1000
        lateness.append(late)
        if late > STALL_MS:
            stalls.append((due, woke, time.thread_time() - cpu, _run_queue_wait(fd) - queued))


def _overlapping(intervals: list[tuple[float, float]], due: float, woke: float) -> bool:
    # intervals are in end order (each is appended when it ends)
    i = bisect_left([end for _, end in intervals], due)
    return i < len(intervals) and intervals[i][0] < woke


def summary() -> dict[str, Any]:
    """Stalls per 1000 responses, their sizes, and how many a flush or a collection overlapped."""
    ordered = sorted(lateness)
    spans = [(start, end) for start, end, _ in flushes]
    worst = sorted((woke - due) * 1000 for due, woke, *_ in stalls)
    # The loop ran its own callbacks for most of the stall, or it waited: for a core the
    # machine gave another process (the run queue), or else for the GIL.
    busy = [(due, woke) for due, woke, cpu, _ in stalls if cpu > 0.5 * (woke - due + 0.001)]
    waited = [s for s in stalls if s[2] <= 0.5 * (s[1] - s[0] + 0.001)]
    queued = [s for s in waited if s[3] > 0.5 * (s[1] - s[0] + 0.001)]
    flush_ms = sorted((end - start) * 1000 for start, end, _ in flushes)
    return {
        "responses": responses[0],
        "wakeups": len(ordered),
        "late_p50_ms": ordered[len(ordered) // 2] if ordered else 0.0,
        "late_p99_ms": ordered[int(len(ordered) * 0.99)] if ordered else 0.0,
        "stalls": len(stalls),
        "stalls_per_1000": 1000 * len(stalls) / max(1, responses[0]),
        "stall_max_ms": worst[-1] if worst else 0.0,
        "stall_median_ms": worst[len(worst) // 2] if worst else 0.0,
        "loop_busy": len(busy),
        "waited": len(waited),
        "waited_queued": len(queued),
        "waited_with_flush": sum(_overlapping(spans, *s[:2]) for s in waited),
        "busy_with_flush": sum(_overlapping(spans, *s) for s in busy),
        "with_gc": sum(_overlapping(collections, *s[:2]) for s in stalls),
        "flushes": len(flushes),
        "flush_median_ms": flush_ms[len(flush_ms) // 2] if flush_ms else 0.0,
        "flush_max_ms": flush_ms[-1] if flush_ms else 0.0,
        "flush_cpu_ms_per_1000": 1000 * sum(c for *_, c in flushes) * 1000 / max(1, responses[0]),
        "switch_interval_ms": sys.getswitchinterval() * 1000,
        "threads": threading.active_count(),
    }


def main() -> None:
    _instrument()
    from rolecall.cli import main as cli_main

    cli_main(sys.argv[2:])


if __name__ == "__main__":
    main()
