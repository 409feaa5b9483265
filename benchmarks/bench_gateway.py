"""Gateway overhead: `rolecall serve` in front of a fake provider vs calling it directly.

    .venv/bin/python benchmarks/bench_gateway.py [--in-flight 1,100] [--requests 1000]
        [--latency 0.05] [--jitter 0.0] [--rounds 3] [--no-record] [--no-floor]
        [--layer-requests 5000] [--litellm-url URL --litellm-model MODEL] [--workers N]
    .venv/bin/python benchmarks/bench_gateway.py --doors [--in-flight 1,100] [--rounds 5]

Four processes: the fake OpenAI-compatible provider (rolecall.sim.SimServer),
the gateway (`rolecall serve --offline --no-access-log`, recording into a
temporary run log and SQLite store as in production), the bare proxy (below),
and this load generator. The client is a minimal keep-alive HTTP/1.1 client on
asyncio streams (benchmarks/_bench_http.py), one connection per in-flight slot,
so the figures measure the servers rather than a client library.

Every request carries its own prompt ("Say hello. #<n>"). The fake provider
waits --latency seconds before answering; with --jitter J each prompt waits
its own delay, uniform in latency * [1 - J, 1 + J) and fixed by the prompt's
text (rolecall.sim.request_latency). A fixed delay keeps closed-loop clients in
lock-step bursts (at 100 in flight every request queues behind the other 99);
real provider latencies vary and break such convoys. Since this process knows
each prompt's delay, it takes each call's excess = measured latency - that
delay, and every overhead column is a percentile of those excesses through a
server minus the same percentile of the direct calls' excesses, taken per
round and reported as the median over rounds. With --jitter 0 that equals the
plain difference of latency percentiles.

Columns: "direct" and "gateway" p50/p99 are absolute latencies (ms);
"overhead" is the gateway's, as above. "bare proxy overhead" is the same for
the bare proxy: a raw ASGI app of about 30 lines on uvicorn (uvloop and
httptools when installed, as `rolecall serve` uses them) that reads the body,
parses it, swaps the model, forwards it to the fake provider over a small pool
of keep-alive connections with the client above, parses the answer and
serializes it back: the least any Python HTTP hop adds on this machine, the
floor under the gateway's figure (--no-floor skips it). "gw req/s" is the
gateway run's throughput. "gw CPU/req" is the gateway process's CPU time per
request (HTTP server + app + router + provider adapter + recorder); "router
CPU/req" is ``Router.complete`` driven in this process at the same concurrency
against the same provider (router + adapter alone). Their difference is what
the gateway's HTTP layer itself costs.

A last table isolates the gateway's own work further: its ASGI app called in
this process (no sockets) with a provider that answers at once, against
``Router.complete`` with that same provider: CPU microseconds per request.

LiteLLM column: its proxy's overhead over direct calls, computed as above. Pass
--litellm-url of a LiteLLM proxy (built in its own environment by
benchmarks/litellm-env.sh) routing --litellm-model to the same fake provider:
start one with --serve-sim [--latency S --jitter J], point LiteLLM at the URL it
prints, then run again with --sim-url URL and the same --latency and --jitter
(the excesses need them) plus --litellm-url ... . Without it the column reads "n/a".

--doors measures, instead of all the above, each front door of the gateway side by
side: the same one-message whole request as chat completions, as /v1/messages
(Anthropic's format, x-api-key) and as /v1/responses (OpenAI's Responses format),
sent by the same client to the same gateway over the same fake provider. Each
door's overhead is its excess percentile minus the direct calls' in the same
round (benchmarks/_bench_doors.py); a door that answers 404 reads "absent".
Measured 2026-12 on the 2-core machine shared with other test runs (load average
1.2-1.8), recording on, the Messages and Responses doors from their branches
before they were merged; ms added per call, median of 5 rounds (lowest-highest
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

--workers N adds one line: throughput of `rolecall serve --workers N` against one
worker at the highest --in-flight (same fake provider, same client).

Where the time goes (measured 2026-12, this 2-core machine shared with other
test runs, load average 1.1-1.8; cProfile of one `rolecall serve` process, fake
provider at 50 ms, recording on; wall-clock-per-call figures from cProfile
under load are indicative only, not instruction counts):

- 100 in flight (3,000 requests): gateway CPU 0.65 ms/request without the
  profiler (bench row above: router + adapter alone 0.25 ms, so the HTTP server
  layer, app, JSON and recording are ~0.4 ms). Largest own-time entries per
  request: uvicorn's response `send` (two per request, transport write) ~130 us,
  the provider adapter's request write (`providers/_wire.py` send) ~80 us,
  JSON encode ~35 us and decode ~20 us (one parse and one dump each way),
  `types.py` message conversion ~25 us, `read_json` ~15 us, uvicorn header
  parsing ~20 us, router outcome bookkeeping ~20 us, metrics `observe` ~15 us.
- 1 in flight (1,000 requests): the same two writes grow to ~340 us (client
  response) and ~440 us (provider request) per request: on loopback the
  sender's `send()` runs the receiver's wake-up in its own context, and with
  every process idle between calls that wake-up is paid in full. Everything
  else is within ~10% of the 100-in-flight figures. This is the "cost appears
  only when the gateway idles while the provider thinks" of the issue: socket
  writes to idle peers, not Python work.
- Idle time in the event loop shows up in cProfile as the outer coroutine
  (`Gateway.aclose`'s frame); it is waiting, not CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _bench_doors import CHAT, Door, DoorRow, door_rows, print_doors
from _bench_http import Connection, server_stack

from rolecall.sim import request_latency

PROMPT = "Say hello."
SIM_KEY = "bench-provider-key-0001"
GATEWAY_KEY = "bench-gateway-key-0001"

SIM_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from rolecall.sim import SimServer
    reply = "The quick brown fox jumps over the lazy dog."
    sim = SimServer("openai", api_key=sys.argv[1], models=("sim-model",), reply=reply,
                    latency=float(sys.argv[2]), jitter=float(sys.argv[3]), max_recorded=0)
    sim.start()
    print(sim.base_url, flush=True)
    sys.stdin.read()   # until the parent closes our stdin
    sim.stop()
    """
)


# ---- load ---------------------------------------------------------------------------------


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
    target: Target, in_flight: int, delays_ms: Sequence[float], door: Door = CHAT
) -> Sample:
    """Calls with ``prompt(n)`` for each n of ``delays_ms``, made ``in_flight`` at a time."""
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


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(name: str, proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the {name} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise SystemExit(f"the {name} is not listening on 127.0.0.1:{port} after {timeout} s")


def start_sim(latency: float, jitter: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIM_SCRIPT, SIM_KEY, str(latency), str(jitter)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    if not base_url:
        raise SystemExit("the fake provider did not start")
    return proc, base_url


def start_gateway(
    sim_base: str, workdir: Path, record: bool = True, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "rolecall.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            providers:
              sim:
                type: openai-compatible
                model: sim-model
                base_url: {sim_base}
                api_key: {SIM_KEY}
                max_concurrency: 1000
            roles:
              coder: {{provider: sim}}
            retry: {{max_attempts: 1}}
            metrics:
              url: sqlite:///{workdir}/rolecall.db
              runs_dir: {workdir}/runs
              enabled: {"true" if record else "false"}
            gateway:
              keys: [{GATEWAY_KEY}]
            """
        )
    )
    port = free_port()
    exe = Path(sys.executable).with_name("rolecall")
    cmd = [str(exe), "serve", "-c", str(config), "--port", str(port), "--offline"]
    cmd += ["--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_http("gateway", proc, port)
    return proc, f"http://127.0.0.1:{port}/v1"


def start_bare_proxy(sim_base: str) -> tuple[subprocess.Popen[bytes], str]:
    """The bare proxy of benchmarks/_bench_http.py in front of the fake provider."""
    port = free_port()
    script = Path(__file__).with_name("_bench_http.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), sim_base, "sim-model", SIM_KEY, str(port)]
    )
    wait_http("bare proxy", proc, port)
    return proc, f"http://127.0.0.1:{port}/v1"


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    else:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def router_cpu_per_request(sim_base: str, in_flight: int, requests: int) -> float:
    """CPU ms per call of ``Router.complete`` in this process (router + adapter, no gateway)."""
    from rolecall.config.load import load_config_text
    from rolecall.routing.router import Router

    config = load_config_text(
        textwrap.dedent(
            f"""
            providers:
              sim: {{type: openai-compatible, model: sim-model, base_url: "{sim_base}",
                     api_key: {SIM_KEY}, max_concurrency: 1000}}
            roles:
              coder: {{provider: sim}}
            retry: {{max_attempts: 1}}
            """
        )
    )
    async with Router(config) as router:
        remaining = 0

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await router.complete("coder", "Say hello.")

        remaining = min(requests, 200)
        await asyncio.gather(*(worker() for _ in range(in_flight)))  # warm up
        remaining = requests
        before = time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return (time.process_time() - before) * 1000 / requests


class InstantProvider:
    """Answers at once with no I/O: isolates what the gateway and router themselves cost."""

    def __init__(self, provider_id: str, model: str) -> None:
        self.id = provider_id
        self.model = model

    async def complete(self, request: Any) -> Any:
        from rolecall.types import Completion, Usage

        return Completion("Hello there.", self.model, Usage(5, 3), "stop")

    async def stream(self, request: Any) -> Any:  # pragma: no cover - not measured
        from rolecall.types import Chunk, Usage

        yield Chunk("Hello there.", usage=Usage(5, 3), finish_reason="stop")

    async def check_credentials(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def layer_cost(
    in_flight: int, requests: int, record: bool, workdir: Path
) -> tuple[float, float]:
    """CPU µs per request: the gateway's ASGI app (app + router) and the router alone.

    Both call the same InstantProvider, so the difference is the gateway's own work
    (routing the HTTP request, parsing, validation, response JSON, metrics, recording).
    The HTTP server's parsing (uvicorn) is not included: the app is called directly.
    """
    from rolecall.config.load import load_config_text
    from rolecall.gateway.app import Gateway
    from rolecall.routing.router import Router

    config = load_config_text(
        textwrap.dedent(
            f"""
            providers:
              sim: {{type: openai-compatible, model: sim-model, base_url: "http://127.0.0.1:9/v1",
                     api_key: {SIM_KEY}, max_concurrency: 1000}}
            roles:
              coder: {{provider: sim}}
            metrics: {{url: "sqlite:///{workdir}/layer.db", runs_dir: "{workdir}/layer-runs",
                       enabled: {"true" if record else "false"}}}
            gateway: {{keys: ["{GATEWAY_KEY}"]}}
            """
        )
    )
    providers = {"sim": InstantProvider("sim", "sim-model")}
    body = json.dumps(
        {"model": "coder", "messages": [{"role": "user", "content": "Say hello."}]}
    ).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {GATEWAY_KEY}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4141),
    }
    gateway = Gateway(config, offline=True, providers=providers)
    await gateway.start()

    async def via_gateway() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        statuses: list[int] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await gateway.app(dict(scope), receive, send)
        if statuses != [200]:
            raise SystemExit(f"gateway layer: HTTP {statuses}")

    async with Router(config, providers=providers) as router:

        async def via_router() -> None:
            await router.complete("coder", "Say hello.")

        async def cpu_us(call: Any) -> float:
            remaining = requests

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await call()

            before = time.process_time()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return (time.process_time() - before) * 1e6 / requests

        try:
            await cpu_us(via_gateway)  # warm up
            await cpu_us(via_router)
            return await cpu_us(via_gateway), await cpu_us(via_router)
        finally:
            await gateway.aclose()


def run_loop(coro: Any) -> Any:
    """Run on uvloop when installed, as `rolecall serve` does, so CPU figures compare."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# ---- report -------------------------------------------------------------------------------


Pair = tuple[float, float]  # p50, p99 in ms


def percentiles(values: Sequence[float]) -> Pair:
    return pct(values, 0.5), pct(values, 0.99)


def minus(a: Pair, b: Pair) -> Pair:
    return a[0] - b[0], a[1] - b[1]


def median_pair(pairs: list[Pair]) -> Pair:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


@dataclass
class Row:
    in_flight: int
    direct: Pair  # absolute latency
    gateway: Pair  # absolute latency
    overhead: Pair  # gateway excess - direct excess
    bare: Pair | None  # bare proxy excess - direct excess (None: --no-floor)
    rps: float
    cpu_ms: float | None  # gateway process CPU per request
    router_cpu_ms: float  # Router.complete in-process CPU per request (no gateway)
    litellm: Pair | None  # LiteLLM proxy excess - direct excess


async def run(
    args: argparse.Namespace, direct: Target, gateway: Target, gateway_pid: int, bare: Target | None
) -> list[Row]:
    litellm = (
        Target("litellm", args.litellm_url, args.litellm_model, args.litellm_key)
        if args.litellm_url
        else None
    )
    proxies = {t.name: t for t in (bare, litellm) if t is not None}
    rows = []
    for in_flight in args.in_flight:
        requests = max(args.requests, in_flight * 10)
        delays = provider_delays_ms(args.latency, args.jitter, requests)
        warm = await measure(direct, in_flight, delays[: args.warmup])
        if pct(warm.excess, 0.01) < -2:  # answers before their delay: not the sim we think
            raise SystemExit(
                "the fake provider answers sooner than --latency/--jitter predict: pass the "
                "values it was started with"
            )
        for target in (gateway, *proxies.values()):
            await measure(target, in_flight, delays[: args.warmup])
        direct_p: list[Pair] = []
        gateway_p: list[Pair] = []
        overheads: dict[str, list[Pair]] = {name: [] for name in ("gateway", *proxies)}
        rps: list[float] = []
        cpu: list[float] = []
        for _ in range(args.rounds):
            d = await measure(direct, in_flight, delays)
            started = time.perf_counter()
            cpu_before = process_cpu_seconds(gateway_pid)
            g = await measure(gateway, in_flight, delays)
            cpu_after = process_cpu_seconds(gateway_pid)
            rps.append(requests / (time.perf_counter() - started))
            if cpu_before is not None and cpu_after is not None:
                cpu.append((cpu_after - cpu_before) * 1000 / requests)
            direct_p.append(percentiles(d.latency))
            gateway_p.append(percentiles(g.latency))
            direct_excess = percentiles(d.excess)
            overheads["gateway"].append(minus(percentiles(g.excess), direct_excess))
            for name, target in proxies.items():
                sample = await measure(target, in_flight, delays)
                overheads[name].append(minus(percentiles(sample.excess), direct_excess))

        rows.append(
            Row(
                in_flight,
                median_pair(direct_p),
                median_pair(gateway_p),
                median_pair(overheads["gateway"]),
                median_pair(overheads["bare"]) if bare else None,
                statistics.median(rps),
                statistics.median(cpu) if cpu else None,
                await router_cpu_per_request(args.sim_base, in_flight, requests),
                median_pair(overheads["litellm"]) if litellm else None,
            )
        )
    return rows


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


def print_table(rows: list[Row], args: argparse.Namespace, command: str) -> None:
    latency_ms = args.latency * 1000
    if args.jitter:
        low, high = latency_ms * (1 - args.jitter), latency_ms * (1 + args.jitter)
        delay = f"{latency_ms:.0f} ms, jitter {args.jitter:g} ({low:.0f}-{high:.0f} ms by prompt)"
    else:
        delay = f"{latency_ms:.0f} ms, jitter 0 (fixed)"
    print(f"$ {command}")
    print(
        f"fake provider latency {delay}; {args.rounds} round(s) of >= {args.requests} requests "
        f"per row; {os.cpu_count()} CPU(s); Python {sys.version.split()[0]}; load average "
        f"{os.getloadavg()[0]:.1f}; recording {'off' if args.no_record else 'on'}; bare proxy "
        f"{'off' if args.no_floor else 'on uvicorn ' + '+'.join(server_stack())}; "
        "times in ms (median over rounds); overheads on excess over each prompt's delay"
    )
    header = (
        f"{'in flight':>9} | {'direct p50':>10} {'p99':>8} | {'gateway p50':>11} {'p99':>8} | "
        f"{'overhead p50':>12} {'p99':>8} | {'bare proxy overhead p50':>23} {'p99':>8} | "
        f"{'gw req/s':>8} {'gw CPU/req':>10} {'router CPU/req':>14} | "
        f"{'LiteLLM proxy overhead p50 / p99':>32}"
    )
    print(header)
    print("-" * len(header))

    def pair(p: Pair | None, width: int) -> str:
        return f"{p[0]:>{width}.2f} {p[1]:>8.2f}" if p else f"{'n/a':>{width}} {'':>8}"

    for row in rows:
        lite = f"{row.litellm[0]:.2f} / {row.litellm[1]:.2f}" if row.litellm else "n/a"
        cpu = f"{row.cpu_ms:.2f}" if row.cpu_ms is not None else "n/a"
        print(
            f"{row.in_flight:>9} | {pair(row.direct, 10)} | {pair(row.gateway, 11)} | "
            f"{pair(row.overhead, 12)} | {pair(row.bare, 23)} | "
            f"{row.rps:>8.0f} {cpu:>10} {row.router_cpu_ms:>14.2f} | {lite:>32}"
        )
    target = next((r for r in rows if r.in_flight == 100), None)
    if target is not None:
        verdict = "met" if target.overhead[0] <= 1.0 else "NOT met"
        print(
            f"target p50 overhead <= 1 ms at 100 in flight: {verdict} ({target.overhead[0]:.2f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--in-flight",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 100],
        help="comma-separated concurrency levels (default 1,100)",
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per round and row")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--latency", type=float, default=None, help="fake provider latency, s (default 0.05)"
    )
    parser.add_argument(
        "--jitter",
        type=float,
        default=None,
        help="spread of the fake provider's latency: each prompt waits its own delay in "
        "latency * [1 - J, 1 + J) (default 0: fixed)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the bare proxy baseline")
    parser.add_argument(
        "--litellm-url",
        default=None,
        help="[LiteLLM comparison] base URL (with /v1) of a LiteLLM proxy routing to the same "
        "fake provider; the column reads n/a without it",
    )
    parser.add_argument("--litellm-model", default="coder", help="[LiteLLM comparison] model")
    parser.add_argument("--litellm-key", default="sk-litellm", help="[LiteLLM comparison] key")
    parser.add_argument(
        "--serve-sim",
        action="store_true",
        help="[LiteLLM comparison] only start the fake provider, print its URL and wait, so a "
        "LiteLLM proxy can be pointed at it; then run again with --sim-url",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="gateway without run log / metrics store"
    )
    parser.add_argument(
        "--layer-requests", type=int, default=5000, help="requests for the in-process layer cost"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="also print the throughput of `rolecall serve --workers N` against 1 worker "
        "(at the highest --in-flight; recording as set)",
    )
    parser.add_argument(
        "--doors",
        action="store_true",
        help="instead of the tables above: the added latency of each front door (chat "
        "completions, /v1/messages, /v1/responses) side by side; a door the gateway "
        "does not have reads 'absent'",
    )
    parser.add_argument(
        "--sim-url",
        default=None,
        help="use a running fake provider (with /v1); pass the --latency and --jitter it was "
        "started with",
    )
    args = parser.parse_args()
    if args.sim_url and (args.latency is None or args.jitter is None):
        parser.error("with --sim-url, pass the --latency and --jitter the fake provider runs with")
    args.latency = 0.05 if args.latency is None else args.latency
    args.jitter = 0.0 if args.jitter is None else args.jitter
    if not 0 <= args.jitter <= 1 or args.latency < 0:
        parser.error("--jitter must be between 0 and 1 and --latency at least 0")
    command = "python benchmarks/bench_gateway.py " + shlex.join(sys.argv[1:])

    sim, sim_base = (None, args.sim_url) if args.sim_url else start_sim(args.latency, args.jitter)
    try:
        if args.serve_sim:
            print(
                f"fake provider: {sim_base} (key {SIM_KEY}, model sim-model); benchmark it with "
                f"--sim-url {sim_base} --latency {args.latency:g} --jitter {args.jitter:g}",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return
        if args.doors:
            doors_main(args, sim_base, command)
            return
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as procs:
            gateway_proc, gateway_url = start_gateway(sim_base, Path(tmp), not args.no_record)
            procs.callback(stop, gateway_proc)
            bare = None
            if not args.no_floor:
                bare_proc, bare_url = start_bare_proxy(sim_base)
                procs.callback(stop, bare_proc)
                bare = Target("bare", bare_url, "sim-model", "unused")
            args.sim_base = sim_base
            rows = run_loop(
                run(
                    args,
                    Target("direct", sim_base, "sim-model", SIM_KEY),
                    Target("gateway", gateway_url, "coder", GATEWAY_KEY),
                    gateway_proc.pid,
                    bare,
                )
            )
        with tempfile.TemporaryDirectory() as tmp:
            layers = [
                (n, *run_loop(layer_cost(n, args.layer_requests, not args.no_record, Path(tmp))))
                for n in args.in_flight
            ]
        ratio = None
        if args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                ratio = workers_ratio(args, sim_base, Path(tmp))
    finally:
        if sim is not None:
            stop(sim)
    print_table(rows, args, command)
    print_layer(layers)
    if ratio is not None:
        print_ratio(args, *ratio)


def workers_ratio(args: argparse.Namespace, sim_base: str, workdir: Path) -> tuple[float, float]:
    """Median throughput (req/s) of one gateway worker and of ``--workers N``."""
    in_flight = max(args.in_flight)
    requests = max(args.requests, in_flight * 10)
    delays = provider_delays_ms(args.latency, args.jitter, requests)
    rates = []
    for workers in (1, args.workers):
        run_dir = workdir / f"workers-{workers}"
        run_dir.mkdir()
        proc, url = start_gateway(sim_base, run_dir, not args.no_record, workers)
        try:
            target = Target("gateway", url, "coder", GATEWAY_KEY)
            run_loop(measure(target, in_flight, delays[: args.warmup]))
            rounds = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                run_loop(measure(target, in_flight, delays))
                rounds.append(requests / (time.perf_counter() - started))
            rates.append(statistics.median(rounds))
        finally:
            stop(proc)
    return rates[0], rates[1]


def print_ratio(args: argparse.Namespace, one: float, many: float) -> None:
    print()
    print(
        f"throughput at {max(args.in_flight)} in flight (median of {args.rounds} round(s)): "
        f"1 worker {one:.0f} req/s, {args.workers} workers {many:.0f} req/s, "
        f"ratio {many / one:.2f}x ({os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f}; the fake provider and this client share those CPUs)"
    )


if __name__ == "__main__":
    main()
