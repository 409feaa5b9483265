"""The "lean server" row of bench_gateway.py: the gateway's chat door without uvicorn.

    .venv/bin/python benchmarks/_bench_lean.py CONFIG PORT

serves on 127.0.0.1:PORT the gateway's own ``POST /v1/chat/completions`` door
(key check, body limits, parsing, router, provider adapter, recording, reply:
the same objects `rolecall serve` builds from CONFIG) behind the least HTTP
server that can carry it: an asyncio Protocol on uvloop feeding httptools,
one task per request, the reply written with one ``transport.write``. No
header or body deadlines, no pipelining, no 100 Continue, no other route: it
is only correct for bench_gateway.py's client. Against the gateway row, in the
same rounds, it prices what uvicorn's protocol and request cycle cost the
gateway; against the bare proxy, what the door and the router do beyond
forwarding. Stop it with SIGINT (the recorder is flushed on the way out).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httptools
import uvloop
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from rolecall.config.load import load_config
from rolecall.gateway._door import DoorReply
from rolecall.gateway._exchange import DoorRequest, Reply
from rolecall.gateway.app import Gateway

DOOR = b"/v1/chat/completions"
Door = Callable[[DoorRequest], Awaitable[DoorReply]]


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, each answered by the door."""

    def __init__(self, door: Door) -> None:
        self.door = door
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url, headers, body = self.url, self.headers, b"".join(self.body)
        self.url, self.headers, self.body = b"", [], []
        if url != DOOR:
            self.close()
            return
        scope = {"type": "http", "method": "POST", "path": DOOR.decode(), "headers": headers}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        asyncio.get_running_loop().create_task(self.answer(DoorRequest(scope, receive)))

    async def answer(self, request: DoorRequest) -> None:
        reply = await self.door(request)
        if self.transport is None or not isinstance(reply, Reply):  # no streams here
            self.close()
            return
        self.transport.write(b"".join([STATUS_LINE[reply.status], reply.head, b"\r\n", reply.body]))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(config_path: str, port: int) -> None:
    gateway = Gateway(load_config(config_path), config_path=config_path, offline=True)
    await gateway.start(check=False)
    try:
        door = gateway.doors[DOOR.decode()]
        gc.freeze()  # as `rolecall serve` does once started
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(door), "127.0.0.1", port)
        async with server:
            await server.serve_forever()
    finally:
        await gateway.aclose()


def main() -> None:
    config_path, port = sys.argv[1], int(sys.argv[2])
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(config_path, port))


if __name__ == "__main__":
    main()
