"""Where the gateway's CPU goes per call: `rolecall serve` under cProfile (benchmarks only).

    [BENCH_PROFILE_CPU=1] .venv/bin/python benchmarks/_bench_profile.py [--in-flight 10]
        [--requests 5000] [--latency 0] [--no-record] [--sort tottime] [--top 40]
        [--out FILE.prof]

Starts the fake provider (answering after --latency s, default at once: the
CPU-bound case) and `rolecall serve` (as bench_gateway.py does, recording on
unless --no-record) under cProfile, warms it up, profiles --requests chat calls
sent --in-flight at a time by bench_gateway.py's client (SIGUSR1/SIGUSR2 start
and stop the profile), and prints the top functions and the time per part of a
call (PARTS: where each function lives). With PYTHONPATH=<other src> it profiles
that checkout. Wall time by default; BENCH_PROFILE_CPU=1 counts the main
thread's CPU time instead, which a write that wakes the peer and then loses the
core to it does not inflate (a wall-clock profile charged 180-330 us to each
socket write; their CPU is 35-60 us), but which costs a system call per
profiler event. Either way the profiler multiplies the Python cost 3-5x: the
figures rank the parts; bench_gateway.py's "gw CPU/req" times the whole.

The breakdown (2026-12, load 1-4 from other work; CPU mode, 4000 calls after
500 of warm-up, instant provider, recording on). Profiled main-thread CPU per
call in us, before -> after the cuts below, at 10 and 100 in flight:

    part of a call                                     10 in flight   100 in flight
    asyncio loop + builtins (dict.get, isinstance...)   596 -> 479     653 -> 458
    provider adapter + our HTTP/1.1 client              360 -> 332     398 -> 308
    routing (router, chain walk, attempt, health)       266 -> 269     326 -> 245
    HTTP server (uvicorn's protocol, limits, hotpath)   235 -> 254     258 -> 279
    door: reply, request bookkeeping, auth              209 -> 197     230 -> 178
    door: parse + check the request, messages           223 -> 181     244 -> 169
    JSON (4 operations a call)                          153 ->  20     171 ->  19
    starlette Request / Response objects                107 -> 106     123 -> 100
    metrics (prom) + event bus                           91 ->  90      97 ->  83
    the two socket writes (kernel's loopback send)       97 ->  75     101 ->  73
    config lookups, answer redaction                     30 ->  31      33 ->  26
    recording (the recorder's queue; writes: a thread)    6 ->   6       6 ->   5
    Python function calls per call                      636 -> 531     637 -> 532

No part dominates: the path is long rather than slow at one place. Builtins are
counted apart from the code calling them, so every part is larger than shown.
(The HTTP server part grew by the disconnect callback, moved there from the
door's watcher task.) What was cut; measured together below, not one by one:
only the JSON cut stands out alone in the profile (153 -> 20), the others are
a few microseconds each, below bench_gateway.py's resolution on their own:

- JSON: orjson (the gateway extra's) for the request parse, the provider body,
  the provider answer's parse and the reply (rolecall/_json.py), with json's
  exact results: documents orjson reads differently (NaN, huge integers, lone
  surrogates) and values it writes differently go through json.
- The chat door's params: the body's few fields are looked up in the set of
  forwardable names, instead of every forwardable name (~60) in the body, with
  three set differences, per request.
- The disconnect watch: a door served from the protocol registers a callback the
  protocol calls on connection loss, instead of a task per request awaiting the
  next ASGI receive (a task, a future, two loop steps and a cancel).
- The HTTP client's whole answer: read without the streaming context manager,
  the stream object and two async generators.
- The door response's head: the server's default headers (date, server) are
  checked and joined once per second, not per response.

Measured against main in the same rounds (bench_gateway.py --compare-src; load
average 1-4 from other work, so the spread is wide); median of 5 rounds
(lowest..highest), after vs before:

    --in-flight 1,10,100 --latency 0 --requests 2000 --warmup 300 --rounds 5 --no-floor
    gw CPU/req (ms, gateway process):
        1 in flight  0.615 (0.520..0.685) vs 0.670 (0.530..0.765)
       10 in flight  0.405 (0.355..0.475) vs 0.505 (0.460..0.555)
      100 in flight  0.400 (0.370..0.490) vs 0.460 (0.435..0.500)
    p50 added: 0.58 (0.51..0.75) vs 0.65 (0.50..0.84) ms at 1; 3.33 (2.55..5.39)
    vs 5.12 (4.79..5.83) at 10; at 100 both 39-41 ms (client and servers queue on
    2 cores). An earlier run, before the last two cuts: 0.505 vs 0.565 ms/req at
    1, 0.520 vs 0.555 at 10.

    --in-flight 1 --latency 0.05 --requests 400 --warmup 100 --rounds 5 (floors on)
    p50 added: gateway 1.29 (0.95..1.67), before 1.35 (1.01..1.48), bare proxy
    0.65 (0.45..0.80), raw socket 0.17 (-0.05..0.43) ms: within the spread.

_bench_phases.py (the gateway's two halves timed inside it), this checkout and
main alternated, PYTHONPATH=<src>, medians of each run in us: instant provider,
5 runs each (3000 calls): in 164-235 (median 224) vs 192-276 (261), out 131-186
(180) vs 156-224 (220); provider at 50 ms, 3 runs each (600 calls): in 410-461
vs 459-530, out 405-455 vs 465-527. About 15% less Python per call, warm or
cold; at 1 in flight with a slow provider that is ~0.1 ms of the 1.3 ms added,
which this machine's round-to-round spread (0.5-0.7 ms) hides. The gap to the
bare proxy (0.65 ms) and the 0.3 ms target stays: see below.

Left: the HTTP server layer (uvicorn's protocol and cycle objects, starlette's
Request and Response) and the router's coroutine layers (chain walk -> attempt
-> adapter -> client, each a frame resumed at every wake-up) are the largest
parts left; cutting them means a server and a call path of our own, not a trim.
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

    # BENCH_PROFILE_CPU=1: the main thread's CPU time rather than wall time (on loopback a
    # write that wakes the peer may lose the core to it, and the wall clock charges that wait
    # to the write), at the price of a system call per event: it inflates frequent calls.
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
