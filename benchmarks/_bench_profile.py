"""Where the gateway's CPU goes per call: `rolecall serve` under cProfile (benchmarks only).

    .venv/bin/python benchmarks/_bench_profile.py [--in-flight 10] [--requests 5000]
        [--latency 0] [--no-record] [--sort tottime] [--top 40] [--out FILE.prof]

Starts the fake provider (answering after --latency s, default at once: the
CPU-bound case) and `rolecall serve` (as bench_gateway.py does, recording on
unless --no-record) run under cProfile, sends it --requests chat calls
--in-flight at a time with bench_gateway.py's client, stops it and prints the
profile's top functions (CPU time of the gateway process's main thread, not
wall time). The profiler roughly doubles the Python cost, so the figures rank the
parts rather than time them; bench_gateway.py times them.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path

from _bench_layer import run_loop
from _bench_load import Target, measure, provider_delays_ms
from _bench_procs import GATEWAY_KEY, start_gateway, start_sim, stop


def serve_profiled(out: str, argv: list[str]) -> None:
    """The gateway process: `rolecall serve ARGV`, its profile written to OUT on exit."""
    from rolecall.cli import main as cli_main

    # --cpu: the main thread's CPU time rather than wall time (on loopback a write that wakes
    # the peer may lose the core to it, and the wall clock charges that wait to the write),
    # at the price of a system call per event, which inflates functions called often.
    cpu = os.environ.get("BENCH_PROFILE_CPU") == "1"
    profile = cProfile.Profile(time.thread_time) if cpu else cProfile.Profile()

    # Only the measured calls: SIGUSR1 starts the profile, SIGUSR2 stops and writes it.
    def start(*_: object) -> None:
        profile.enable()

    def write(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, write)
    with contextlib.suppress(SystemExit):
        cli_main(argv)


# Parts of a call: (name, where the function lives, its name or None for any), first match wins;
# tottime is summed per part. The two socket writes first: their time is mostly the kernel's.
PARTS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("provider request write (syscall)", ("providers/_wire.py",), "send"),
    ("response write (syscall) + head", ("gateway/hotpath.py",), "_send_whole"),
    ("HTTP server (uvicorn, protocol, hotpath)", ("uvicorn/", "protocol.py", "hotpath.py"), None),
    ("JSON", ("json/", "_json.py"), None),
    ("metrics (prom) + events", ("gateway/prom.py", "events.py"), None),
    ("door: parse + check request", ("_chat_request.py", "gateway/_body.py", "types.py"), None),
    ("door: reply, bookkeeping", ("gateway/",), None),
    ("routing", ("routing/", "health/"), None),
    ("provider adapter + HTTP client", ("providers/",), None),
    ("recording (queue)", ("recording/",), None),
    ("starlette Request/Response", ("starlette/",), None),
    ("config lookups, redaction", ("config/", "_secrets.py"), None),
    ("asyncio, builtins", ("asyncio/", "~", "_weakrefset", "<frozen", "contextlib"), None),
)


def by_part(stats: pstats.Stats, calls: int) -> None:
    """Print tottime per part of a call (microseconds per call), the biggest first."""
    totals: dict[str, float] = {}
    for (path, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        part = next(
            (
                part
                for part, places, function in PARTS
                if any(place in path for place in places) and function in (None, name)
            ),
            "other",
        )
        totals[part] = totals.get(part, 0.0) + row[2]
    for part, total in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {total / calls * 1e6:7.1f} us  {part}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":  # the gateway process
        serve_profiled(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=10)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sim, sim_base = start_sim(args.latency, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or str(Path(tmp) / "gateway.prof")
        try:
            proc, url = start_gateway(sim_base, Path(tmp), not args.no_record, profile_to=out)
            try:
                target = Target("gateway", url, "coder", GATEWAY_KEY)
                delays = provider_delays_ms(args.latency, 0.0, args.requests)
                run_loop(measure(target, args.in_flight, delays[: args.warmup]))
                proc.send_signal(signal.SIGUSR1)
                time.sleep(0.2)
                run_loop(measure(target, args.in_flight, delays))
                proc.send_signal(signal.SIGUSR2)
                time.sleep(1.0)
            finally:
                stop(proc)
        finally:
            stop(sim)
        stats = pstats.Stats(out)
        calls = args.requests
        print(f"{calls} calls, {args.in_flight} in flight; per call (us) = time / {calls}")
        stats.sort_stats(args.sort).print_stats(args.top)
        print("per part of a call (tottime):")
        by_part(stats, calls)


if __name__ == "__main__":
    main()
