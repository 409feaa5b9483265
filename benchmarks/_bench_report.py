"""bench_gateway.py's figures: percentiles per round, medians over rounds, and the tables."""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Pair = tuple[float, float]  # p50, p99 in ms

# (in flight, p50 or p99, most ms the gateway may add): the targets of issue 21
TARGETS = ((1, 0, 0.3), (100, 0, 0.5), (50, 1, 2.0))
SERVERS = ("gateway", "bare proxy", "raw socket", "LiteLLM")  # always listed, n/a if not run


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentiles(values: Sequence[float]) -> Pair:
    return pct(values, 0.5), pct(values, 0.99)


def minus(a: Pair, b: Pair) -> Pair:
    return a[0] - b[0], a[1] - b[1]


def median_pair(pairs: Sequence[Pair]) -> Pair:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


@dataclass
class Row:
    in_flight: int
    direct: Pair  # absolute latency, median over rounds
    gateway: Pair  # absolute latency, median over rounds
    # server name (SERVERS) -> its excess minus the direct calls' excess, one pair per round
    added: dict[str, list[Pair]] = field(default_factory=dict)
    rps: float = 0.0
    cpu_ms: float | None = None  # gateway process CPU per request
    router_cpu_ms: float = 0.0  # Router.complete in-process CPU per request (no gateway)
    # with --compare-src: the compared gateway's process CPU per request, one per round
    before_cpu_ms: list[float] = field(default_factory=list)
    gateway_cpu_rounds: list[float] = field(default_factory=list)

    def median(self, server: str) -> Pair | None:
        rounds = self.added.get(server)
        return median_pair(rounds) if rounds else None


def _spread(rounds: Sequence[Pair], index: int) -> str:
    values = [r[index] for r in rounds]
    return f"{statistics.median(values):6.2f} ({min(values):5.2f}..{max(values):5.2f})"


def _cpu_spread(rounds: list[float]) -> str:
    return f"{statistics.median(rounds):.3f} ({min(rounds):.3f}..{max(rounds):.3f})"


def print_table(rows: list[Row], rounds: int, settings: str, command: str) -> None:
    print(f"$ {command}")
    print(
        f"{settings}; {rounds} round(s) per row; {os.cpu_count()} CPU(s); Python "
        f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}; times in ms"
    )
    header = (
        f"{'in flight':>9} | {'direct p50':>10} {'p99':>7} | {'gateway p50':>11} {'p99':>7} | "
        f"{'gw req/s':>8} {'gw CPU/req':>10} {'router CPU/req':>14}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        cpu = f"{row.cpu_ms:.2f}" if row.cpu_ms is not None else "n/a"
        print(
            f"{row.in_flight:>9} | {row.direct[0]:>10.2f} {row.direct[1]:>7.2f} | "
            f"{row.gateway[0]:>11.2f} {row.gateway[1]:>7.2f} | "
            f"{row.rps:>8.0f} {cpu:>10} {row.router_cpu_ms:>14.2f}"
        )
    print()
    print("ms added over direct calls, per server: median over rounds (lowest..highest round)")
    header = (
        f"{'in flight':>9} | {'server':<14} | {'p50 added':>21} | {'p99 added':>21} | "
        f"{'p50 / raw socket p50':>20}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        raw = row.median("raw socket")
        for server in (*SERVERS, *(name for name in row.added if name not in SERVERS)):
            rounds_of = row.added.get(server)
            if not rounds_of:
                print(f"{row.in_flight:>9} | {server:<14} | {'n/a':>21} | {'n/a':>21} |")
                continue
            p50 = statistics.median(r[0] for r in rounds_of)
            ratio = f"{p50 / raw[0]:.1f}x" if raw and raw[0] > 0.005 else "n/a"
            print(
                f"{row.in_flight:>9} | {server:<14} | {_spread(rounds_of, 0):>21} | "
                f"{_spread(rounds_of, 1):>21} | {ratio:>20}"
            )
    for row in rows:
        if row.before_cpu_ms and row.gateway_cpu_rounds:
            print(
                f"{row.in_flight:>9} | CPU/req (ms, process): gateway "
                f"{_cpu_spread(row.gateway_cpu_rounds)}, gateway before "
                f"{_cpu_spread(row.before_cpu_ms)}"
            )
    for in_flight, index, limit in TARGETS:
        row = next((r for r in rows if r.in_flight == in_flight), None)
        gateway = row.median("gateway") if row else None
        if row is None or gateway is None:
            continue
        name = ("p50", "p99")[index]
        raw = row.median("raw socket")
        floor = f"; raw-socket floor {raw[index]:.2f} ms" if raw else ""
        verdict = "met" if gateway[index] <= limit else "NOT met"
        print(
            f"target gateway {name} added <= {limit:g} ms at {in_flight} in flight: {verdict} "
            f"({gateway[index]:.2f} ms{floor})"
        )


def print_layer(layers: list[tuple[int, float, float]]) -> None:
    print()
    print("gateway layer alone: the ASGI app called in-process, provider answering at once")
    print(f"{'in flight':>9} | {'app+router':>10} | {'router alone':>12} | {'gateway adds':>12}")
    print("-" * 54)
    for in_flight, app_us, router_us in layers:
        print(
            f"{in_flight:>9} | {app_us:>8.0f}us | {router_us:>10.0f}us | "
            f"{app_us - router_us:>10.0f}us"
        )


def print_ratio(in_flight: int, rounds: int, workers: int, one: float, many: float) -> None:
    print()
    print(
        f"throughput at {in_flight} in flight (median of {rounds} round(s)): "
        f"1 worker {one:.0f} req/s, {workers} workers {many:.0f} req/s, "
        f"ratio {many / one:.2f}x ({os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f}; the fake provider and this client share those CPUs)"
    )


def read_lag(path: Path) -> dict[str, Any] | None:
    """A gateway's _bench_lag.py report, or None if it wrote none (it did not stop cleanly)."""
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report


def print_lag(reports: dict[str, dict[str, Any] | None]) -> None:
    if not reports:
        return
    print()
    print(
        "event loop while busy (benchmarks/_bench_lag.py: a 1 ms sleep's lateness; a stall "
        "is > 3 ms late), whole run"
    )
    for name, r in reports.items():
        if r is None:
            print(f"{name:<14}: no report")
            continue
        print(
            f"{name:<14}: late p50 {r['late_p50_ms']:.2f} p99 {r['late_p99_ms']:.2f} ms; "
            f"{r['stalls']} stalls = {r['stalls_per_1000']:.1f} per 1000 requests (median "
            f"{r['stall_median_ms']:.1f}, max {r['stall_max_ms']:.1f} ms), "
            f"{r['loop_busy']} with the loop busy ({r['busy_with_flush']} during a recorder "
            f"flush), {r['waited']} with it waiting ({r['waited_queued']} mostly for a core, "
            f"{r['waited_with_flush']} during a flush), "
            f"{r['with_gc']} during a GC; "
            f"{r['flushes']} flushes (median {r['flush_median_ms']:.1f}, max "
            f"{r['flush_max_ms']:.1f} ms wall), flush CPU {r['flush_cpu_ms_per_1000']:.1f} ms "
            f"per 1000 requests; switch interval {r['switch_interval_ms']:g} ms"
        )
