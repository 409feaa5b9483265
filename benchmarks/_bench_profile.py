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

The breakdown (2026-12, load ~2 from other work; CPU mode, 4000 calls after 500
of warm-up, instant provider, recording on). Profiled main-thread CPU per call
in us, main -> this branch (issue 21's flatter call path), each pair profiled
back to back, at 10 and 100 in flight:

    part of a call                                     10 in flight   100 in flight
    asyncio loop + builtins (dict.get, isinstance...)   434 -> 346     416 -> 307
    provider adapter + our HTTP/1.1 client              301 -> 259     284 -> 227
    routing (router, chain walk, attempt, health)       243 -> 217     235 -> 198
    HTTP server (uvicorn's protocol, limits, hotpath)   226 -> 212     225 -> 184
    door: reply, request bookkeeping, auth              185 -> 217     170 -> 187
    starlette Request / Response objects                 98 ->   0      92 ->   0
    door: parse + check the request, messages           164 -> 117     154 -> 103
    metrics (prom) + event bus                           81 ->  55      81 ->  47
    the two socket writes (kernel's loopback send)       78 ->  80      74 ->  60
    config lookups, answer redaction                     27 ->   9      24 ->   7
    JSON (4 operations a call)                           18 ->  18      18 ->  17
    recording (the recorder's queue; writes: a thread)    5 ->   6       5 ->   5
    all of it                                          1863 -> 1538   1785 -> 1347
    Python function calls per call                      532 -> 391     533 -> 392

("door: reply" now holds the door's own request and reply objects, which took
the place of Starlette's. The call counts take each dataclass's generated
``__init__`` once, however many are built: cProfile files them all under one
name.) No part dominates: the path is long rather than slow at one place, and
the cuts below are each a few calls; measured together, not one by one:

- The doors take a ``DoorRequest`` (the ASGI scope and receive; a header looked
  up in a dict built on first use) and answer a ``Reply`` (status, its header
  block as bytes, body) that the protocol writes as it is, instead of
  Starlette's Request (headers object, body stream generator) and Response
  (headers encoded one by one, then re-joined). SSE stays a StreamingResponse;
  under another ASGI server a Reply is an ASGI app.
- Fewer coroutine frames, each resumed at every wake-up: the chat and Responses
  doors and the key check return the door's coroutine instead of awaiting it;
  the attempt loop awaits a whole answer nobody races itself (no ``_attempt``
  or ``_first_of`` frame) and the chain takes it without ``read_rest``; an
  adapter that signs nothing per request skips its header coroutine; the HTTP
  client's send-and-read-head retry is a loop in ``_exchange`` (no ``_send``,
  no ``head``), and a body that came with the head is taken without a
  coroutine. Messages normalized by the door pass the router's check as is.
- Metrics: each label set's cells are found once per (provider, role,
  outcome), (role, status) and (model, status), not one dict lookup and label
  tuple per series per call; the in-flight gauge is written when scraped.
- The protocol: its header counting does uvicorn's on_header itself (one call
  per header, not two); the keep-alive wait between requests is one more
  deadline on the connection's one timer instead of a new uvicorn timer per
  response (``call_later`` and its cancel).
- Routing: no Assembly for a whole answer, the answer's cost worked out once
  for its two records, no capability walk for a provider that takes them all,
  ASCII messages skip the UTF-8 check; a plain chat turn is built without the
  general message path; the chat door checks its one-by-one fields only when
  the body has one (17 lookups a call before).
- Adapter and client: no parameter filtering for a call without params, usage
  counts read inline, response header keys kept per name as received.

Measured against main in the same rounds (bench_gateway.py --compare-src; load
average 1.5-3.5 from other work); median of 5 rounds (lowest..highest), this
branch vs main, two runs (the second with the last cuts: no read_rest, inline
head and body reads, the attempt's frame):

    --in-flight 1,10,100 --latency 0 --requests 2000 --warmup 300 --rounds 5 --no-floor
    gw CPU/req (ms, gateway process), first run; second run:
        1 in flight  0.530 (0.440..0.620) vs 0.595 (0.570..0.700); 0.465 vs 0.480
       10 in flight  0.310 (0.290..0.340) vs 0.375 (0.345..0.390); 0.425 vs 0.515
      100 in flight  0.310 (0.300..0.345) vs 0.385 (0.340..0.410); 0.435 vs 0.500
    (second run's spreads: 0.42..0.51 vs 0.43..0.55 at 1, 0.39..0.45 vs
    0.46..0.57 at 10, 0.40..0.47 vs 0.48..0.54 at 100.) p50 added at 1 in
    flight: 0.61 vs 0.69 ms, then 0.50 vs 0.48; at 10 and 100 the closed-loop
    convoys of an instant provider make it noise (spreads of several ms).

    --in-flight 1 --latency 0.05 --jitter 0 --requests 400 --warmup 100 --rounds 5
    p50 added, first run: gateway 1.00 (0.75..1.15), main 0.94 (0.89..1.18),
    bare proxy 0.69 (0.43..1.06), raw socket 0.28 (0.08..0.42) ms, gw CPU/req
    1.25 vs 1.275 ms; second run: 1.23 (0.92..1.98) vs 1.04 (0.87..1.30), bare
    proxy 0.66, raw socket 0.27 ms, gw CPU/req 1.375 vs 1.375 ms: no difference
    beyond the spread, either way.

So 13-19% less gateway CPU per call when busy (10-100 in flight), 3-11% at 1
in flight (within the spread); with a provider that thinks 50 ms, the latency
added at 1 in flight does not move: that cost is the wake-up from idle (cold
caches, the loop's and the kernel's hand-offs), not the Python path's length.

Left: uvicorn's protocol and cycle objects (a cycle, an asyncio.Event and a
task per request), the router's coroutine layers (chain walk -> attempt ->
adapter -> client -> connection wait) and the frozen dataclasses built per call
(attempt, task and reply records); cutting those means a server and a call
path of our own, not a trim.
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
    ("provider request write (syscall)", ("providers/_wire.py", "_wire_conn.py"), "send"),
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
