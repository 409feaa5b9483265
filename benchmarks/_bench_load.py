"""bench_gateway.py's load: the targets, the prompts and their delays, the closed-loop client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from _bench_http import Connection

from rolecall.sim import request_latency

if TYPE_CHECKING:
    from _bench_doors import Door

PROMPT = "Say hello."


@dataclass
class Target:
    name: str
    url: str  # http://host:port/v1
    model: str
    key: str


@dataclass
class Sample:
    latency: list[float]  # ms, each call
    excess: list[float]  # ms, each call's latency minus the provider's own delay for its prompt


def prompt(n: int) -> str:
    return f"{PROMPT} #{n}"


def provider_delays_ms(latency: float, jitter: float, requests: int) -> list[float]:
    """The fake provider's own delay for ``prompt(n)``, n < ``requests``."""
    return [request_latency(latency, jitter, prompt(n)) * 1000 for n in range(requests)]


async def measure(
    target: Target, in_flight: int, delays_ms: Sequence[float], door: Door | None = None
) -> Sample:
    """Calls with ``prompt(n)`` for each n of ``delays_ms``, made ``in_flight`` at a time,
    through ``door`` (default: chat completions)."""
    if door is None:
        from _bench_doors import CHAT  # not at the top: _bench_doors imports this module

        door = CHAT
    parts = urlsplit(target.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path.rstrip("/") + door.path
    bodies = [door.encode(target.model, prompt(n)) for n in range(len(delays_ms))]
    headers = door.headers(target.key)
    sample = Sample([], [])
    sent = 0

    async def worker() -> None:
        nonlocal sent
        conn = Connection(host, port)
        try:
            while sent < len(bodies):
                n, sent = sent, sent + 1
                start = time.perf_counter()
                status, data = await conn.post(path, bodies[n], headers)
                latency = (time.perf_counter() - start) * 1000
                if status != 200:
                    raise SystemExit(f"{target.name}: HTTP {status}: {data[:300]!r}")
                sample.latency.append(latency)
                sample.excess.append(latency - delays_ms[n])
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return sample
