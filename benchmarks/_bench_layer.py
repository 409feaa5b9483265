"""The gateway's own work for bench_gateway.py, measured in-process (no sockets).

``router_cpu_per_request`` drives ``Router.complete`` against the fake provider
(router + adapter alone); ``layer_cost`` calls the gateway's ASGI app and the
router with a provider that answers at once, so their difference is the
gateway's own work; ``run_loop`` runs on uvloop, as `rolecall serve` does.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from _bench_procs import GATEWAY_KEY, SIM_KEY


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
                    # The provider never waits, so without this the loop would not turn
                    # until every request had run: what a request schedules (the ASGI
                    # path's disconnect watcher) would pile up and the collector with it.
                    await asyncio.sleep(0)

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
