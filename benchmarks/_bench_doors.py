"""The gateway's front doors for bench_gateway.py --doors: one request shape each (benchmarks only).

Each door is the same whole (unstreamed) one-message request in its own API's
format, sent by bench_gateway's minimal client to the same gateway over the same
fake provider. ``door_rows`` measures each door's added latency against direct
calls to the provider, round by round, the doors' order rotating between rounds
so that no door always runs right after the direct calls.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


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
