"""/metrics rendering: the gateway's hand-written exposition against ``prometheus_client``.

Both registries get the same series for 20 provider x role pairs (4 providers x 5 roles):
provider calls by outcome, failures by kind, hand-overs, tokens by direction and the
call-latency histogram, fed by the same 20,000 synthetic attempts. Then it times one
render of the whole exposition (median of --repeat) and the cost of recording one
attempt, each way. Needs ``pip install prometheus_client`` (not a dependency).

Then what ``rolecall serve --workers N`` adds (gateway/prom_share.py), none of it on the
request path: one worker publishing its values (taking them and their JSON on the event
loop; writing a temporary file and renaming it, in a thread on the 1 s timer, on the loop
at a scrape) and a scrape rendering the sum of 2 and 8 workers' files.

    python benchmarks/bench_prom.py

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from rolecall.events import AttemptEvent
from rolecall.gateway.prom import LATENCY_BUCKETS, GatewayMetrics
from rolecall.recording.store.synthetic import synthetic_attempts

PROVIDERS = ("gpt", "claude", "gemini", "local")
ROLES = ("clarifier", "planner", "coder", "reviewer", "tester")


class ClientMetrics:
    """The gateway's provider x role series in prometheus_client."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        where = ["provider", "role"]
        self.calls = Counter("rolecall_provider_calls", "calls", [*where, "outcome"], registry=r)
        self.failures = Counter("rolecall_provider_failures", "fail", [*where, "kind"], registry=r)
        self.handovers = Counter("rolecall_handovers", "hand-overs", where, registry=r)
        self.tokens = Counter("rolecall_tokens", "tokens", [*where, "direction"], registry=r)
        self.seconds = Histogram(
            "rolecall_provider_call_duration_seconds",
            "latency",
            where,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def emit(self, event: AttemptEvent) -> None:
        where = (event.provider, event.role)
        self.calls.labels(*where, event.outcome).inc()
        self.seconds.labels(*where).observe(event.latency_ms / 1000)
        if event.error_kind is not None:
            self.failures.labels(*where, str(event.error_kind)).inc()
        if event.outcome == "handover":
            self.handovers.labels(*where).inc()
        if event.input_tokens:
            self.tokens.labels(*where, "input").inc(event.input_tokens)
        if event.output_tokens:
            self.tokens.labels(*where, "output").inc(event.output_tokens)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def row(name: str, render_us: float, size: int, record_us: float) -> None:
    print(f"{name:22} {render_us:13.0f} us {size:8d} {record_us:17.2f} us")


def median_us(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        print("needs prometheus_client: pip install prometheus_client", file=sys.stderr)
        return 2
    events = list(synthetic_attempts(args.events, providers=PROVIDERS, roles=ROLES))
    ours, theirs = GatewayMetrics(), ClientMetrics()
    started = time.perf_counter()
    for event in events:
        ours.emit(event)
    ours_emit = (time.perf_counter() - started) / len(events) * 1e6
    started = time.perf_counter()
    for event in events:
        theirs.emit(event)
    theirs_emit = (time.perf_counter() - started) / len(events) * 1e6
    ours_us = median_us(ours.render, args.repeat)
    theirs_us = median_us(theirs.render, args.repeat)
    print(f"20 provider x role series, {args.events:,} attempts recorded")
    from importlib.metadata import version

    print(f"prometheus_client {version('prometheus_client')}")
    print(f"{'':22} {'render /metrics':>16} {'bytes':>8} {'record one attempt':>20}")
    row("hand-written (prom.py)", ours_us, len(ours.render()), ours_emit)
    row("prometheus_client", theirs_us, len(theirs.render()), theirs_emit)
    shared_costs(ours, args.repeat)
    return 0


def shared_costs(metrics: GatewayMetrics, repeat: int) -> None:
    """Publishing one worker's values, and a scrape summing 2 or 8 workers (--workers N)."""
    import asyncio
    import tempfile

    from rolecall.gateway.prom_share import SharedMetrics

    async def measure() -> None:
        with tempfile.TemporaryDirectory() as directory:
            workers = [SharedMetrics(directory, metrics) for _ in range(8)]
            for worker in workers:
                worker.start()
                worker.publish()

            first = workers[0]

            def snapshot() -> None:
                first._published = b""  # as when the values changed since the last time
                first._snapshot()

            def write() -> None:
                first._write(first._sequence + 1, first._published)
                first._sequence = first._written

            loop_us, write_us = median_us(snapshot, repeat), median_us(write, repeat)
            size = first.path.stat().st_size
            print(
                f"--workers: publish one worker's values ({size} bytes): {loop_us:.0f} us on the "
                f"loop (values, JSON), {write_us:.0f} us writing the file (timer: in a thread)"
            )
            for worker in workers[2:]:
                await worker.stop()
                worker.path.unlink()
            two_us = median_us(workers[0].render, repeat)
            for worker in workers[2:]:
                worker.start()
                worker._published = b""  # its file was removed: write it again
                worker.publish()
            assert sum(name.endswith(".json") for name in os.listdir(directory)) == 8
            eight_us = median_us(workers[0].render, repeat)
            print(f"--workers: render the sum of 2 workers {two_us:.0f} us, of 8 {eight_us:.0f} us")
            for worker in workers:
                await worker.stop()

    asyncio.run(measure())


if __name__ == "__main__":
    sys.exit(main())
