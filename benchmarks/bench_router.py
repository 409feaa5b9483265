"""Router cost: provider selection time, and the whole router's added cost per call.

    .venv/bin/python benchmarks/bench_router.py [--requests 1000] [--in-flight 256]
        [--throughput-requests 1024] [--rounds 3] [--selections 200000]
        [--litellm benchmarks/.venv-litellm/bin/python]

1. Selection: ``Router.chain(role)`` (chain lookup + strategy ordering) for each
   strategy, timed call by call; median and p99 in microseconds.
2. Added cost per call: the same OpenAI-shaped request to the same fake provider
   (``rolecall.sim.SimServer("openai")`` in its own process, no added latency),
   once with a bare ``httpx.AsyncClient`` (POST, parse JSON, take the text) and
   once through ``Router.complete`` (chain, health, retry bookkeeping, params
   merge, the real OpenAI adapter, reply and attempt records, one event sink).
   Sequential p50/p99 and their difference; then throughput with N requests in
   flight, as a ratio of bare httpx. Each figure is the median over ``--rounds``
   rounds; in the sequential runs the clients take turns call by call so that
   drift (other load on the machine) hits all of them alike.
3. Tools: ``Router.complete`` on an in-memory provider that answers at once, a
   plain call against one with 20 tools and a two-turn tool history (message
   normalisation, parameter checks, capability check); p50 of each and the added
   p50, median over ``--rounds``. ``--no-http`` stops after this (no server).
4. With ``--litellm PYTHON`` (the interpreter of the environment that
   ``benchmarks/litellm-env.sh`` builds), the same workload through LiteLLM's
   ``Router.acompletion`` against the same server, run in that environment
   right after, printed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from rolecall.config.schema import RolecallConfig
from rolecall.events import Event
from rolecall.providers import build_provider
from rolecall.routing.router import Router
from rolecall.types import ChatRequest, Chunk, Completion, normalize_messages

SIM_KEY = "bench-provider-key-0001"
PROMPT = "Say something short."

SIM_SCRIPT = textwrap.dedent(
    """
    import sys
    from rolecall.sim import SimServer
    sim = SimServer("openai", api_key=sys.argv[1], models=("sim-model",),
                    reply="The quick brown fox jumps over the lazy dog.", max_recorded=0)
    sim.start()
    print(sim.base_url, flush=True)
    sys.stdin.read()   # until the parent closes our stdin
    sim.stop()
    """
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


# ---- 1. selection --------------------------------------------------------------------------


class _Idle:
    """A provider that is never called (selection only)."""

    def __init__(self, pid: str) -> None:
        self.id = pid
        self.model = "m"

    async def complete(self, request: ChatRequest) -> Completion:
        raise NotImplementedError

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        raise NotImplementedError
        yield Chunk()

    async def check_credentials(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def bench_selection(count: int) -> list[tuple[str, float, float]]:
    ids = ["p1", "p2", "p3", "p4"]
    roles: dict[str, Any] = {
        "fallback": {"provider": "p1", "fallback": ["p2", "p3"]},
        "round_robin": {"providers": ids[:3], "strategy": "round_robin"},
        "weighted": {"providers": ids[:3], "strategy": "weighted", "weights": {"p1": 3}},
        "fastest": {"providers": ids[:3], "strategy": "fastest"},
    }
    config = RolecallConfig.model_validate(
        {
            "providers": {
                pid: {
                    "type": "openai-compatible",
                    "model": "m",
                    "base_url": "http://127.0.0.1:9/v1",
                }
                for pid in ids
            },
            "roles": roles,
            "default_provider": "p4",
        }
    )
    router = Router(config, providers={pid: _Idle(pid) for pid in ids})
    for pid, latency in zip(ids, (30.0, 10.0, 20.0, 5.0), strict=True):
        router.health.record_success(pid, latency)
    rows = []
    clock = time.perf_counter_ns
    for role in [*roles, "unassigned"]:
        chain = router.chain
        samples = []
        for _ in range(count):
            start = clock()
            chain(role)
            samples.append(clock() - start)
        micro = [s / 1000 for s in samples]
        rows.append((role, statistics.median(micro), _percentile(micro, 99)))
    return rows


# ---- 3. a call with tools against a plain one -----------------------------------------------


class _Instant(_Idle):
    """A provider that answers every call at once (the router's own cost alone)."""

    async def complete(self, request: ChatRequest) -> Completion:
        return Completion(text="ok", model=self.model)


def _tool(index: int) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": f"tool_{index}",
            "description": f"Tool number {index}.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["path"],
            },
        },
    }


TOOLS = [_tool(i) for i in range(20)]
TOOL_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Read two files."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "tool_0", "arguments": '{"path": "a.py"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "print('a')"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "tool_1", "arguments": '{"path": "b.py"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_2", "content": "print('b')"},
]


async def bench_tools(requests: int, rounds: int) -> tuple[float, float]:
    """Median over rounds of the p50 of a plain call and of a call with tools, in us."""
    config = RolecallConfig.model_validate(
        {
            "providers": {"p": {"type": "openai", "model": "m"}},
            "roles": {"coder": {"provider": "p"}},
        }
    )
    router = Router(config, providers={"p": _Instant("p")}, sinks=[_Count()])
    plain_messages = [{"role": "user", "content": PROMPT}]
    tool_params = {"tools": TOOLS, "tool_choice": "auto", "temperature": 0.2}

    async def plain() -> str:
        return (await router.complete("coder", plain_messages)).text

    async def with_tools() -> str:
        return (await router.complete("coder", TOOL_HISTORY, params=tool_params)).text

    plain_p50: list[float] = []
    tools_p50: list[float] = []
    for _ in range(rounds):
        latencies = await _sequential([("plain", plain), ("tools", with_tools)], requests)
        plain_p50.append(statistics.median(latencies["plain"]))
        tools_p50.append(statistics.median(latencies["tools"]))
    return statistics.median(plain_p50), statistics.median(tools_p50)


# ---- 2. added cost per call ----------------------------------------------------------------


class _Count:
    def __init__(self) -> None:
        self.events = 0

    def emit(self, event: Event) -> None:
        self.events += 1


async def _sequential(
    calls: Sequence[tuple[str, Callable[[], Awaitable[str]]]], requests: int
) -> dict[str, list[float]]:
    """Latencies per client, the clients taking turns call by call (drift hits all alike)."""
    latencies: dict[str, list[float]] = {name: [] for name, _ in calls}
    clock = time.perf_counter
    for _ in range(requests):
        for name, call in calls:
            start = clock()
            await call()
            latencies[name].append((clock() - start) * 1e6)
    return latencies


async def _throughput(call: Callable[[], Awaitable[str]], requests: int, in_flight: int) -> float:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return requests / (time.perf_counter() - start)


async def bench_overhead(
    base_url: str, requests: int, throughput_requests: int, in_flight: int, rounds: int
) -> dict[str, list[float]]:
    body = {
        "model": "sim-model",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_completion_tokens": 64,
    }
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    client = httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {SIM_KEY}"},
        limits=limits,
        timeout=60,
    )

    async def bare() -> str:
        response = await client.post("/chat/completions", json=body)
        response.raise_for_status()
        text: str = response.json()["choices"][0]["message"]["content"]
        return text

    config = RolecallConfig.model_validate(
        {
            "providers": {
                "gpt": {
                    "type": "openai",
                    "model": "sim-model",
                    "api_key": SIM_KEY,
                    "base_url": base_url,
                    "max_concurrency": in_flight,
                    "params": {"max_tokens": 64},
                }
            },
            "roles": {"coder": {"provider": "gpt"}},
        }
    )
    router = Router(config, sinks=[_Count()])
    await router.check_credentials()
    adapter = build_provider("gpt", config.providers["gpt"])
    request = ChatRequest(messages=normalize_messages(PROMPT), params={"max_tokens": 64})

    async def alone() -> str:
        return (await adapter.complete(request)).text

    async def routed() -> str:
        return (await router.complete("coder", PROMPT)).text

    calls = (("bare", bare), ("adapter", alone), ("router", routed))

    figures: dict[str, list[float]] = {
        f"{name}_{figure}": [] for name, _ in calls for figure in ("p50", "p99", "rps")
    }
    try:
        # Sequential rounds first: a pool left with hundreds of idle connections by the
        # throughput runs makes every later request slower (httpcore checks each one).
        await _sequential(calls, 200)  # warm up connections and code paths
        for round_number in range(1, rounds + 1):
            print(f"sequential round {round_number}/{rounds}", file=sys.stderr, flush=True)
            for name, latencies in (await _sequential(calls, requests)).items():
                figures[f"{name}_p50"].append(_percentile(latencies, 50))
                figures[f"{name}_p99"].append(_percentile(latencies, 99))
        for _, call in calls:
            await _throughput(call, in_flight, in_flight)
        for round_number in range(1, rounds + 1):
            print(f"throughput round {round_number}/{rounds}", file=sys.stderr, flush=True)
            for name, call in calls:
                rps = await _throughput(call, throughput_requests, in_flight)
                figures[f"{name}_rps"].append(rps)
    finally:
        await client.aclose()
        await adapter.aclose()
        await router.aclose()
    return figures


def _table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _litellm_figures(args: argparse.Namespace, base_url: str) -> dict[str, list[float]]:
    """Run the workload through LiteLLM in its own environment (never imported here)."""
    script = str(Path(__file__).with_name("_litellm_load.py"))
    print("LiteLLM rounds", file=sys.stderr, flush=True)
    out = subprocess.run(
        [
            args.litellm,
            script,
            base_url,
            SIM_KEY,
            str(args.requests),
            str(args.throughput_requests),
            str(args.in_flight),
            str(args.rounds),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return {f"litellm_{key}": values for key, values in data.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential calls per round")
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument(
        "--throughput-requests", type=int, default=1024, help="calls per throughput round"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--selections", type=int, default=200_000)
    parser.add_argument(
        "--litellm", metavar="PYTHON", help="python of the LiteLLM benchmark environment"
    )
    parser.add_argument(
        "--no-http", action="store_true", help="stop after the in-memory figures (no server)"
    )
    args = parser.parse_args()

    selection = bench_selection(args.selections)
    print(
        _table(
            "Selection (Router.chain: chain lookup + strategy ordering)",
            ("role / strategy", "median us", "p99 us"),
            [(name, f"{med:.2f}", f"{p99:.2f}") for name, med, p99 in selection],
        )
    )
    print()

    plain_us, tools_us = asyncio.run(bench_tools(args.requests, args.rounds))
    print(
        _table(
            f"Router.complete on an instant in-memory provider (p50, median of {args.rounds} "
            f"rounds x {args.requests} calls)",
            ("call", "p50 us", "added us"),
            [
                ("plain (one user message)", f"{plain_us:.1f}", "-"),
                ("20 tools + 2-turn tool history", f"{tools_us:.1f}", f"{tools_us - plain_us:.1f}"),
            ],
        )
    )
    print()
    if args.no_http:
        return

    sim = subprocess.Popen(
        [sys.executable, "-c", SIM_SCRIPT, SIM_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        base_url = sim.stdout.readline().strip()
        figures = asyncio.run(
            bench_overhead(
                base_url, args.requests, args.throughput_requests, args.in_flight, args.rounds
            )
        )
        if args.litellm:
            figures.update(_litellm_figures(args, base_url))
    finally:
        if sim.stdin is not None:
            sim.stdin.close()
        sim.wait(10)

    med = {key: statistics.median(values) for key, values in figures.items()}
    cost_rows: list[tuple[str, ...]] = []
    for q in ("p50", "p99"):
        bare, alone, routed = (med[f"{name}_{q}"] for name in ("bare", "adapter", "router"))
        cost_rows.append(
            (
                q,
                f"{bare:.0f}",
                f"{alone:.0f}",
                f"{routed:.0f}",
                f"{routed - bare:+.0f}",
                f"{routed - alone:+.0f}",
            )
        )
    print(
        _table(
            f"Added cost per call, sequential (median of {args.rounds} rounds x "
            f"{args.requests} calls; fake OpenAI server in another process)",
            ("", "bare httpx us", "adapter us", "router us", "router-bare", "router-adapter"),
            cost_rows,
        )
    )
    print()
    labels: tuple[tuple[str, str], ...] = (
        ("bare", "bare httpx"),
        ("adapter", "adapter alone"),
        ("router", "rolecall router"),
    )
    if "litellm_rps" in med:
        labels += (("litellm", "LiteLLM Router"),)
        print(
            _table(
                "LiteLLM Router, same workload and server (sequential, us)",
                ("", "bare httpx", "rolecall router", "LiteLLM Router", "LiteLLM-bare"),
                [
                    (
                        q,
                        f"{med[f'bare_{q}']:.0f}",
                        f"{med[f'router_{q}']:.0f}",
                        f"{med[f'litellm_{q}']:.0f}",
                        f"{med[f'litellm_{q}'] - med[f'bare_{q}']:+.0f}",
                    )
                    for q in ("p50", "p99")
                ],
            )
        )
        print()
    print(
        _table(
            f"Throughput, {args.in_flight} in flight (median of {args.rounds} rounds)",
            ("client", "requests/s", "ratio to bare"),
            [
                (label, f"{med[f'{name}_rps']:.0f}", f"{med[f'{name}_rps'] / med['bare_rps']:.2f}")
                for name, label in labels
            ],
        )
    )


if __name__ == "__main__":
    main()
