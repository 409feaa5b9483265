"""Wall time of the gateway's two halves of a call, timed inside the gateway (benchmarks only).

    .venv/bin/python benchmarks/_bench_phases.py LATENCY_S REQUESTS [--no-record]

Serves a gateway in a thread of this process (uvloop, the protocol and doors of
`rolecall serve`) in front of a fake provider answering in LATENCY_S, sends it
REQUESTS chat requests one at a time, and prints the medians of:

- in: from the request's bytes reaching the protocol (``data_received``) to the
  provider request's write (``providers/_wire.py`` send);
- out: from the provider answer's bytes reaching the adapter to the client
  response's write (``gateway/hotpath.py``).

Both halves are the gateway's Python work plus its event-loop hops; the provider's
time and the two loopback hops are outside them. The timestamps are taken by
wrapping those four methods here, so the figures include a few microseconds of
the wrappers. The client shares this process (and so the GIL) with the gateway;
at one request in flight it is idle while the gateway works.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from typing import Any

from _bench_http import Connection
from _bench_procs import GATEWAY_KEY, SIM_KEY, start_sim, stop

from rolecall.config.load import load_config_text
from rolecall.gateway import hotpath
from rolecall.gateway import protocol as gateway_protocol
from rolecall.gateway.app import Gateway
from rolecall.gateway.server import GatewayServer, bind_socket
from rolecall.providers import _wire

marks: dict[str, float] = {}
halves: dict[str, list[float]] = {"in": [], "out": []}


def _stamp(cls: Any, name: str, mark: str) -> None:
    original = getattr(cls, name)

    def stamped(self: Any, *args: Any) -> Any:
        marks[mark] = time.perf_counter()
        return original(self, *args)

    setattr(cls, name, stamped)


def _instrument() -> None:
    _stamp(gateway_protocol._LimitedHttpTools, "data_received", "request")
    _stamp(_wire._Connection, "send", "forwarded")
    _stamp(_wire._Connection, "data_received", "answer")
    send_whole = hotpath.DoorCycle._send_whole

    async def timed(self: Any, response: Any) -> None:
        written = time.perf_counter()
        await send_whole(self, response)
        halves["in"].append((marks["forwarded"] - marks["request"]) * 1e6)
        halves["out"].append((written - marks["answer"]) * 1e6)

    hotpath.DoorCycle._send_whole = timed  # type: ignore[method-assign]


def main() -> None:
    latency, requests = float(sys.argv[1]), int(sys.argv[2])
    record = "--no-record" not in sys.argv
    _instrument()
    sim, base = start_sim(latency, 0.0)
    tmp = tempfile.mkdtemp()
    config = load_config_text(
        textwrap.dedent(
            f"""
            providers:
              sim: {{type: openai-compatible, model: sim-model, base_url: "{base}",
                     api_key: {SIM_KEY}, max_concurrency: 1000}}
            roles:
              coder: {{provider: sim}}
            retry: {{max_attempts: 1}}
            metrics: {{url: "sqlite:///{tmp}/rolecall.db", runs_dir: "{tmp}/runs",
                       enabled: {"true" if record else "false"}}}
            gateway: {{keys: ["{GATEWAY_KEY}"]}}
            """
        )
    )
    server = GatewayServer(
        Gateway(config, offline=True),
        bind_socket("127.0.0.1", 0),
        access_log=False,
        log_level="warning",
    )
    import uvloop

    thread = threading.Thread(target=lambda: uvloop.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    async def client() -> list[float]:
        conn = Connection("127.0.0.1", server.port)
        body = b'{"model":"coder","messages":[{"role":"user","content":"Say hello."}]}'
        latencies = []
        for _ in range(requests):
            started = time.perf_counter()
            status, _ = await conn.post(
                "/v1/chat/completions", body, {"Authorization": f"Bearer {GATEWAY_KEY}"}
            )
            latencies.append((time.perf_counter() - started) * 1000)
            assert status == 200
        conn.close()
        return latencies

    try:
        latencies = asyncio.run(client())
    finally:
        server.stop()
        thread.join(10)
        stop(sim)
    warm = requests // 5  # the first calls open connections and fill caches
    print(
        f"provider {latency * 1000:.0f} ms, recording {'on' if record else 'off'}, "
        f"{requests - warm} calls: in {statistics.median(halves['in'][warm:]):.0f} us, "
        f"out {statistics.median(halves['out'][warm:]):.0f} us (medians); client latency "
        f"p50 {statistics.median(latencies[warm:]):.2f} ms"
    )


if __name__ == "__main__":
    main()
