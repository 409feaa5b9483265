"""The gateway's front doors for bench_gateway.py --doors: one request shape each (benchmarks only).

Each door is the same whole (unstreamed) one-message request in its own API's
format, sent by bench_gateway's minimal client to the same gateway over the same
fake provider. ``door_rows`` measures each door's added latency against direct
calls to the provider, round by round, the doors' order rotating between rounds
so that no door always runs right after the direct calls.

Measured 2026-12 on the 2-core machine shared with other test runs (load average
1.2-1.8), recording on, the Messages and Responses doors from their branches
before they were merged and before the doors were served from the protocol
(gateway/hotpath.py); ms added per call, median of 5 rounds (lowest-highest
p50 of the rounds):

    door              | 1 in flight, 50 ms     | 100 in flight, 0.25-0.75 s
                      | p50   p99  p50 spread  | p50   p99   p50 spread
    chat completions  | 1.39  2.77  0.78..1.57 | 1.43  35.1  1.31..1.71
    messages          | 1.39  2.57  0.99..1.45 | 1.54  41.5  1.42..1.88
    responses         | 1.46  3.15  0.86..1.73 | 1.55  42.8  1.13..1.71

(--doors --in-flight 1 --latency 0.05 --requests 400 --warmup 100 --rounds 5, and
--doors --in-flight 100 --latency 0.5 --jitter 0.5 --rounds 5.) The three doors
cost the same within the rounds' spread: translating the request and the reply
is small next to the HTTP hop, routing and recording they share.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _bench_http import Connection
from _bench_layer import run_loop
from _bench_load import Target, measure, prompt, provider_delays_ms
from _bench_procs import GATEWAY_KEY, SIM_KEY, start_gateway, stop


@dataclass(frozen=True)
class Door:
    name: str
    path: str  # under the /v1 base URL
    body: Callable[[str, str], dict[str, Any]]  # (model, prompt) -> the request's JSON
    headers: Callable[[str], dict[str, str]]  # key -> the auth headers its clients send

    def encode(self, model: str, prompt: str) -> bytes:
        return json.dumps(self.body(model, prompt)).encode()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


CHAT = Door(
    "chat completions",
    "/chat/completions",
    lambda model, prompt: {"model": model, "messages": [{"role": "user", "content": prompt}]},
    _bearer,
)
MESSAGES = Door(
    "messages",
    "/messages",
    lambda model, prompt: {
        "model": model,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": prompt}],
    },
    # As the anthropic SDK sends them.
    lambda key: {"x-api-key": key, "anthropic-version": "2023-06-01"},
)
RESPONSES = Door(
    "responses",
    "/responses",
    lambda model, prompt: {"model": model, "input": prompt, "store": False},
    _bearer,
)
DOORS = (CHAT, MESSAGES, RESPONSES)

Pair = tuple[float, float]  # p50, p99 in ms
# measure(door, in_flight, delays_ms) -> the excess of each call over its prompt's delay, ms
Measure = Callable[[Door, int, Sequence[float]], Awaitable[list[float]]]
# probe(door) -> the HTTP status and body of one request through that door
Probe = Callable[[Door], Awaitable[tuple[int, bytes]]]


@dataclass
class DoorRow:
    door: Door
    absent: bool = False
    # in flight -> per round (p50, p99) of the door's excess minus the direct calls' excess
    rounds: dict[int, list[Pair]] = field(default_factory=dict)

    def median(self, in_flight: int) -> Pair:
        pairs = self.rounds[in_flight]
        return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)

    def spread(self, in_flight: int) -> Pair:
        """Lowest and highest p50 overhead over the rounds."""
        p50s = [p[0] for p in self.rounds[in_flight]]
        return min(p50s), max(p50s)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _percentiles(values: Sequence[float]) -> Pair:
    return _pct(values, 0.5), _pct(values, 0.99)


async def door_rows(
    probe: Probe,
    measure_direct: Callable[[int, Sequence[float]], Awaitable[list[float]]],
    measure: Measure,
    in_flights: Sequence[int],
    delays_for: Callable[[int], Sequence[float]],
    warmup: int,
    rounds: int,
) -> list[DoorRow]:
    """Each door's overhead over direct calls at each level of ``in_flights``.

    A door answering 404 is absent (not on this gateway); any other failure stops
    the run with the gateway's answer.
    """
    rows = [DoorRow(door) for door in DOORS]
    for row in rows:
        status, data = await probe(row.door)
        if status == 404:
            row.absent = True
        elif status != 200:
            raise SystemExit(f"{row.door.name}: HTTP {status}: {data[:300]!r}")
    present = [row for row in rows if not row.absent]
    for in_flight in in_flights:
        delays = delays_for(in_flight)
        await measure_direct(in_flight, delays[:warmup])
        for row in present:
            await measure(row.door, in_flight, delays[:warmup])
            row.rounds[in_flight] = []
        for turn in range(rounds):
            direct = _percentiles(await measure_direct(in_flight, delays))
            shift = turn % len(present) if present else 0
            for row in present[shift:] + present[:shift]:
                door = _percentiles(await measure(row.door, in_flight, delays))
                row.rounds[in_flight].append((door[0] - direct[0], door[1] - direct[1]))
    return rows


def print_doors(rows: list[DoorRow], in_flights: Sequence[int], rounds: int) -> None:
    print()
    print(
        "added latency of each front door over direct calls, whole requests: ms, median over "
        f"{rounds} round(s) of p50 and p99, and the lowest-highest p50 of the rounds"
    )
    cells = [f"{f'{n} in flight: p50':>18} {'p99':>7} {'p50 spread':>13}" for n in in_flights]
    header = f"{'door':<17} | " + " | ".join(cells)
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.absent:
            print(f"{row.door.name:<17} | absent (404: this gateway has no {row.door.path})")
            continue
        values = []
        for n in in_flights:
            (p50, p99), (low, high) = row.median(n), row.spread(n)
            values.append(f"{p50:>18.2f} {p99:>7.2f} {f'{low:.2f}..{high:.2f}':>13}")
        print(f"{row.door.name:<17} | " + " | ".join(values))


async def run_doors(args: argparse.Namespace, direct: Target, gateway: Target) -> list[DoorRow]:
    """Each front door's overhead over direct calls (see _bench_doors.door_rows)."""
    parts = urlsplit(gateway.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def probe(door: Door) -> tuple[int, bytes]:
        conn = Connection(host, port)
        try:
            body = door.encode(gateway.model, prompt(0))
            return await conn.post(
                parts.path.rstrip("/") + door.path, body, door.headers(gateway.key)
            )
        finally:
            conn.close()

    async def measure_direct(in_flight: int, delays: Sequence[float]) -> list[float]:
        return (await measure(direct, in_flight, delays)).excess

    async def measure_door(door: Door, in_flight: int, delays: Sequence[float]) -> list[float]:
        return (await measure(gateway, in_flight, delays, door)).excess

    def delays_for(in_flight: int) -> list[float]:
        return provider_delays_ms(args.latency, args.jitter, max(args.requests, in_flight * 10))

    return await door_rows(
        probe, measure_direct, measure_door, args.in_flight, delays_for, args.warmup, args.rounds
    )


def doors_main(args: argparse.Namespace, sim_base: str, command: str) -> None:
    """--doors: the gateway's front doors side by side, nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_gateway(sim_base, Path(tmp), not args.no_record)
        try:
            rows = run_loop(
                run_doors(
                    args,
                    Target("direct", sim_base, "sim-model", SIM_KEY),
                    Target("gateway", url, "coder", GATEWAY_KEY),
                )
            )
        finally:
            stop(proc)
    print(f"$ {command}")
    print(
        f"fake provider latency {args.latency * 1000:.0f} ms, jitter {args.jitter:g}; "
        f">= {args.requests} requests per round and door; {os.cpu_count()} CPU(s); Python "
        f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}; recording "
        f"{'off' if args.no_record else 'on'}"
    )
    print_doors(rows, args.in_flight, args.rounds)
