"""Time to hand over from a primary that accepts the request and then says nothing.

    .venv/bin/python benchmarks/bench_failover.py [--failover-within 5] [--runs 10]

Two fake vendor servers (``rolecall.sim``) on 127.0.0.1, providers with
``timeout: 120s``; the primary is scripted to stay silent for 60 s on every
request (fault ``timeout``). Each run times ``Router.complete`` and a whole
``Router.stream`` from the call to the fallback's answer; the median of the runs
is printed for each. Before stalls were raced, the same set-up held the task
for the provider timeout once per attempt that fitted the retry budget (about
60 s with ``timeout: 120s``) before the fallback was tried.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from rolecall.config.schema import RolecallConfig
from rolecall.routing.router import Router
from rolecall.sim import SimServer

KEY = "bench-key"
STALL = "timeout:delay=60"


def _config(primary: SimServer, fallback: SimServer, failover_within: float) -> RolecallConfig:
    def provider(server: SimServer) -> dict[str, object]:
        return {
            "type": server.protocol,
            "model": "sim-model",
            "api_key": KEY,
            "base_url": server.base_url,
            "timeout": 120,
        }

    return RolecallConfig.model_validate(
        {
            "providers": {"primary": provider(primary), "fallback": provider(fallback)},
            "roles": {"coder": {"provider": "primary", "fallback": ["fallback"]}},
            "failover_within": failover_within,
        }
    )


async def _one(router: Router, stream: bool) -> float:
    started = time.perf_counter()
    if stream:
        reply_stream = router.stream("coder", "hi")
        async for _ in reply_stream:
            pass
        provider = reply_stream.reply.provider
    else:
        provider = (await router.complete("coder", "hi")).provider
    assert provider == "fallback", provider
    return time.perf_counter() - started


async def _bench(failover_within: float, runs: int) -> dict[str, list[float]]:
    primary = SimServer("openai", api_key=KEY, max_recorded=0).start()
    fallback = SimServer("anthropic", api_key=KEY, max_recorded=0).start()
    try:
        primary.set_faults(STALL)
        config = _config(primary, fallback, failover_within)
        times: dict[str, list[float]] = {"whole": [], "stream": []}
        for _ in range(runs):
            for mode in times:
                # A fresh router each run: no breaker or latency memory between runs.
                async with Router(config) as router:
                    times[mode].append(await _one(router, mode == "stream"))
        return times
    finally:
        primary.stop()
        fallback.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--failover-within", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times = asyncio.run(_bench(args.failover_within, args.runs))
    print(f"stalled primary, timeout 120 s, failover_within {args.failover_within:g} s")
    for mode, values in times.items():
        print(
            f"  {mode:6s} hand-over: median {statistics.median(values):.3f} s "
            f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
        )
    print("  before stalls were raced: ~60 s (the task waited out the stall, timeout x attempts)")


if __name__ == "__main__":
    main()
