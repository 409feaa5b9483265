"""The bench_router workload through LiteLLM's Router; run by the LiteLLM environment's python.

    benchmarks/.venv-litellm/bin/python benchmarks/_litellm_load.py BASE_URL KEY \\
        REQUESTS THROUGHPUT_REQUESTS IN_FLIGHT ROUNDS

Prints one JSON object: per-round sequential p50/p99 (us) and throughput (req/s).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import litellm
from litellm import Router

PROMPT = "Say something short."


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)]


async def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    requests, throughput_requests, in_flight, rounds = (int(a) for a in sys.argv[3:7])
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    router = Router(
        model_list=[
            {
                "model_name": "coder",
                "litellm_params": {
                    "model": "openai/sim-model",
                    "api_base": base_url,
                    "api_key": key,
                    "max_tokens": 64,
                },
            }
        ],
        num_retries=0,
    )
    messages = [{"role": "user", "content": PROMPT}]

    async def call() -> str:
        response = await router.acompletion(model="coder", messages=messages)
        return str(response.choices[0].message.content)

    for _ in range(200):
        await call()
    p50: list[float] = []
    p99: list[float] = []
    rps: list[float] = []
    for _ in range(rounds):
        latencies = []
        for _ in range(requests):
            start = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - start) * 1e6)
        p50.append(_percentile(latencies, 50))
        p99.append(_percentile(latencies, 99))
    for _ in range(rounds):
        remaining = throughput_requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await call()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        rps.append(throughput_requests / (time.perf_counter() - start))
    print(json.dumps({"p50": p50, "p99": p99, "rps": rps}))


if __name__ == "__main__":
    asyncio.run(main())
