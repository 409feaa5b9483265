"""Wall time of the gateway's two halves of a call, timed inside the gateway (benchmarks only).

    .venv/bin/python benchmarks/_bench_phases.py LATENCY_S REQUESTS [--no-record]

Serves a gateway in a thread of this process (uvloop, the protocol and doors of
`rolecall serve`) in front of a fake provider answering in LATENCY_S, sends it
REQUESTS chat requests one at a time, and prints the medians of:

- in: from the request's bytes reaching the protocol (``data_received``) to the
  provider request's write (``providers/_wire.py`` send);
- out: from the provider answer's bytes reaching the adapter to the client
  response's write (``gateway/hotpath.py``);

and of each step between the points of ``POINTS`` (the chat door's first step,
``Router.complete`` called and returned, the adapter's ``complete`` called and
returned). Both halves are the gateway's Python work plus its event-loop hops;
the provider's time and the two loopback hops are outside them. The timestamps
are taken by wrapping those methods here, so the figures include a few
microseconds of the wrappers. The client shares this process (and so the GIL)
with the gateway; at one request in flight it is idle while the gateway works.

2026-12-07, idle machine, recording on, 320 calls after 80 (us, medians):

    step                            provider at 50 ms   provider at once
    request -> door                       122                 21
    door -> router                         65                 16
    router -> adapter                      39                  9
    adapter -> forwarded                   19                  6
    answer -> adapter done                149                 20
    adapter done -> router done            79                 14
    router done -> written                 49                  9
    in / out                          248 / 278            52 / 43

Every step is 3-7x slower after the 50 ms wait, the first one after each wake-up
(the protocol's parse and the door's task start; the client's read and the
answer's JSON) the most: the cold wake of benchmarks/_bench_wake.py, spread over
the whole path rather than in one place. The records (two events through the
bus to the recorder and the metrics, timed around ``EventBus.emit`` in one more
run) are 16 us of "adapter done -> router done" cold, 3 us warm: sending them
after the response would not show at this benchmark's resolution.
"""

from __future__ import annotations

import asyncio
import itertools
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
from rolecall.gateway import chat, hotpath
from rolecall.gateway import protocol as gateway_protocol
from rolecall.gateway.app import Gateway
from rolecall.gateway.server import GatewayServer, bind_socket
from rolecall.providers import _wire
from rolecall.providers.openai import OpenAIProvider
from rolecall.routing.router import Router

# The points a call passes, in order; each stamp is taken as the point is reached.
POINTS = (
    "request",  # the request's bytes reach the protocol (data_received)
    "door",  # the chat door's handler starts (its task's first step)
    "router",  # Router.complete is called
    "adapter",  # the adapter's complete is called
    "forwarded",  # the provider request is written
    "answer",  # the provider answer's bytes reach the HTTP client (data_received)
    "adapter done",  # the adapter returns its Completion
    "router done",  # Router.complete returns (records emitted)
    "written",  # the response is written to the client
)
marks: dict[str, float] = {}
calls: list[list[float]] = []  # per call: us between each point and the next


def _stamp(cls: Any, name: str, mark: str) -> None:
    original = getattr(cls, name)

    def stamped(self: Any, *args: Any) -> Any:
        marks[mark] = time.perf_counter()
        return original(self, *args)

    setattr(cls, name, stamped)


def _stamp_async(cls: Any, name: str, enter: str, leave: str) -> None:
    original = getattr(cls, name)

    async def stamped(self: Any, *args: Any, **kwargs: Any) -> Any:
        marks[enter] = time.perf_counter()
        result = await original(self, *args, **kwargs)
        marks[leave] = time.perf_counter()
        return result

    setattr(cls, name, stamped)


def _instrument() -> None:
    _stamp(gateway_protocol._LimitedHttpTools, "data_received", "request")
    _stamp(_wire._Connection, "send", "forwarded")
    _stamp(_wire._Connection, "data_received", "answer")
    _stamp_async(Router, "complete", "router", "router done")
    _stamp_async(OpenAIProvider, "complete", "adapter", "adapter done")
    answer = chat._answer

    async def door(*args: Any) -> Any:
        marks["door"] = time.perf_counter()
        return await answer(*args)

    chat._answer = door  # type: ignore[assignment]
    send_whole = hotpath.DoorCycle._send_whole

    async def timed(self: Any, response: Any) -> None:
        marks["written"] = time.perf_counter()
        calls.append([(marks[b] - marks[a]) * 1e6 for a, b in itertools.pairwise(POINTS)])
        await send_whole(self, response)

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
    measured = calls[warm:]
    provider_wait = POINTS.index("forwarded")
    halves = {
        "in": [sum(call[:provider_wait]) for call in measured],
        "out": [sum(call[provider_wait + 1 :]) for call in measured],
    }
    print(
        f"provider {latency * 1000:.0f} ms, recording {'on' if record else 'off'}, "
        f"{len(measured)} calls: in {statistics.median(halves['in']):.0f} us, "
        f"out {statistics.median(halves['out']):.0f} us (medians); client latency "
        f"p50 {statistics.median(latencies[warm:]):.2f} ms"
    )
    for n, (a, b) in enumerate(itertools.pairwise(POINTS)):
        if n != provider_wait:
            print(f"  {a:>12} -> {b:<12} {statistics.median(c[n] for c in measured):7.1f} us")


if __name__ == "__main__":
    main()
