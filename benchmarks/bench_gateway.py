"""Gateway overhead: `rolecall serve` in front of a fake provider vs calling it directly.

    .venv/bin/python benchmarks/bench_gateway.py [--in-flight 1,100] [--requests 1000]
        [--latency 0.05] [--rounds 3] [--no-record] [--layer-requests 5000]
        [--litellm-url URL --litellm-model MODEL]

Three processes: the fake OpenAI-compatible provider (rolecall.sim.SimServer),
the gateway (`rolecall serve --offline --no-access-log`, recording into a
temporary run log and SQLite store as in production), and this load generator.
The client is a minimal keep-alive HTTP/1.1 client on asyncio streams, one
connection per in-flight slot, so the figures measure the servers rather than a
client library. The same client calls the provider directly (baseline) and
through the gateway; overhead = gateway percentile - direct percentile, taken
per round and reported as the median over rounds.

CPU columns split the cost: "gw CPU/req" is the gateway process's CPU time per
request (HTTP server + app + router + provider adapter + recorder); "router
CPU/req" is ``Router.complete`` driven in this process at the same concurrency
against the same provider (router + adapter alone). Their difference is what
the gateway's HTTP layer itself costs.

A last table isolates the gateway's own work further: its ASGI app called in
this process (no sockets) with a provider that answers at once, against
``Router.complete`` with that same provider: CPU microseconds per request.

LiteLLM column: pass --litellm-url of a LiteLLM proxy (built in its own
environment by benchmarks/litellm-env.sh) routing --litellm-model to the same
fake provider: start one with --serve-sim, point LiteLLM at the URL it prints,
then run again with --sim-url URL --litellm-url ... .
Without it the column reads "n/a".
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SIM_KEY = "bench-provider-key-0001"
GATEWAY_KEY = "bench-gateway-key-0001"

SIM_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from rolecall.sim import SimServer
    reply = "The quick brown fox jumps over the lazy dog."
    sim = SimServer("openai", api_key=sys.argv[1], models=("sim-model",), reply=reply,
                    latency=float(sys.argv[2]), max_recorded=0)
    sim.start()
    print(sim.base_url, flush=True)
    sys.stdin.read()   # until the parent closes our stdin
    sim.stop()
    """
)


# ---- a minimal HTTP/1.1 keep-alive client ---------------------------------------------------


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        self.writer.write("\r\n".join(head).encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            parts.append(await self.reader.readexactly(size + 2))
            if size == 0:
                return status, b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Target:
    name: str
    url: str  # http://host:port/v1
    model: str
    key: str


async def measure(target: Target, in_flight: int, requests: int) -> list[float]:
    """Latency in ms of each of ``requests`` calls made ``in_flight`` at a time."""
    parts = urlsplit(target.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path.rstrip("/") + "/chat/completions"
    body = json.dumps(
        {"model": target.model, "messages": [{"role": "user", "content": "Say hello."}]}
    ).encode()
    headers = {"Authorization": f"Bearer {target.key}"}
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        conn = Connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                status, data = await conn.post(path, body, headers)
                latencies.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    raise SystemExit(f"{target.name}: HTTP {status}: {data[:300]!r}")
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return latencies


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


def wait_http(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {host}:{port} after {timeout} s")


def start_sim(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIM_SCRIPT, SIM_KEY, str(latency)],
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
    sim_base: str, workdir: Path, record: bool = True
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
    cmd += ["--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    wait_http("127.0.0.1", port)
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
    from rolecall.router import Router

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
    from rolecall.router import Router

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

        async def send(message: dict[str, Any]) -> None:
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


@dataclass
class Row:
    in_flight: int
    direct: tuple[float, float]
    gateway: tuple[float, float]
    overhead: tuple[float, float]
    rps: float
    cpu_ms: float | None  # gateway process CPU per request
    router_cpu_ms: float  # Router.complete in-process CPU per request (no gateway)
    litellm: tuple[float, float] | None


async def run(
    args: argparse.Namespace, direct: Target, gateway: Target, gateway_pid: int
) -> list[Row]:
    litellm = (
        Target("litellm", args.litellm_url, args.litellm_model, args.litellm_key)
        if args.litellm_url
        else None
    )
    rows = []
    for in_flight in args.in_flight:
        requests = max(args.requests, in_flight * 10)
        for target in (direct, gateway, *([litellm] if litellm else [])):
            await measure(target, in_flight, min(requests, args.warmup))  # warm up
        overheads: list[tuple[float, float]] = []
        direct_p: list[tuple[float, float]] = []
        gateway_p: list[tuple[float, float]] = []
        litellm_p: list[tuple[float, float]] = []
        rps: list[float] = []
        cpu: list[float] = []
        for _ in range(args.rounds):
            d = await measure(direct, in_flight, requests)
            started = time.perf_counter()
            cpu_before = process_cpu_seconds(gateway_pid)
            g = await measure(gateway, in_flight, requests)
            cpu_after = process_cpu_seconds(gateway_pid)
            rps.append(requests / (time.perf_counter() - started))
            if cpu_before is not None and cpu_after is not None:
                cpu.append((cpu_after - cpu_before) * 1000 / requests)
            dp = (pct(d, 0.5), pct(d, 0.99))
            gp = (pct(g, 0.5), pct(g, 0.99))
            direct_p.append(dp)
            gateway_p.append(gp)
            overheads.append((gp[0] - dp[0], gp[1] - dp[1]))
            if litellm is not None:
                lp = await measure(litellm, in_flight, requests)
                litellm_p.append((pct(lp, 0.5), pct(lp, 0.99)))

        def med(pairs: list[tuple[float, float]]) -> tuple[float, float]:
            return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))

        rows.append(
            Row(
                in_flight,
                med(direct_p),
                med(gateway_p),
                med(overheads),
                statistics.median(rps),
                statistics.median(cpu) if cpu else None,
                await router_cpu_per_request(args.sim_base, in_flight, requests),
                med(litellm_p) if litellm_p else None,
            )
        )
    return rows


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
    print(f"$ {command}")
    print(
        f"fake provider latency {args.latency * 1000:.0f} ms; {args.rounds} round(s) of "
        f">= {args.requests} requests per row; {os.cpu_count()} CPU(s); Python "
        f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}; "
        f"recording {'off' if args.no_record else 'on'}; times in ms (median over rounds)"
    )
    header = (
        f"{'in flight':>9} | {'direct p50':>10} {'p99':>8} | {'gateway p50':>11} {'p99':>8} | "
        f"{'overhead p50':>12} {'p99':>8} | {'gw req/s':>8} {'gw CPU/req':>10} "
        f"{'router CPU/req':>14} | "
        f"{'LiteLLM proxy p50 / p99':>23}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        lite = f"{row.litellm[0]:.2f} / {row.litellm[1]:.2f}" if row.litellm else "n/a"
        cpu = f"{row.cpu_ms:.2f}" if row.cpu_ms is not None else "n/a"
        print(
            f"{row.in_flight:>9} | {row.direct[0]:>10.2f} {row.direct[1]:>8.2f} | "
            f"{row.gateway[0]:>11.2f} {row.gateway[1]:>8.2f} | {row.overhead[0]:>12.2f} "
            f"{row.overhead[1]:>8.2f} | {row.rps:>8.0f} {cpu:>10} {row.router_cpu_ms:>14.2f} | "
            f"{lite:>23}"
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
    parser.add_argument("--latency", type=float, default=0.05, help="fake provider latency, s")
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
    parser.add_argument("--sim-url", default=None, help="use a running fake provider (with /v1)")
    args = parser.parse_args()
    command = "python benchmarks/bench_gateway.py " + shlex.join(sys.argv[1:])

    sim, sim_base = (None, args.sim_url) if args.sim_url else start_sim(args.latency)
    try:
        if args.serve_sim:
            print(f"fake provider: {sim_base} (key {SIM_KEY}, model sim-model)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return
        with tempfile.TemporaryDirectory() as tmp:
            gateway_proc, gateway_url = start_gateway(sim_base, Path(tmp), not args.no_record)
            try:
                args.sim_base = sim_base
                rows = run_loop(
                    run(
                        args,
                        Target("direct", sim_base, "sim-model", SIM_KEY),
                        Target("gateway", gateway_url, "coder", GATEWAY_KEY),
                        gateway_proc.pid,
                    )
                )
            finally:
                stop(gateway_proc)
        with tempfile.TemporaryDirectory() as tmp:
            layers = [
                (n, *run_loop(layer_cost(n, args.layer_requests, not args.no_record, Path(tmp))))
                for n in args.in_flight
            ]
    finally:
        if sim is not None:
            stop(sim)
    print_table(rows, args, command)
    print_layer(layers)


if __name__ == "__main__":
    main()
