"""The raw-socket floor for bench_gateway.py: one extra loopback hop in Python, nothing else.

    .venv/bin/python benchmarks/_bench_floor.py UPSTREAM_URL PORT

serves on 127.0.0.1:PORT a proxy made of two asyncio Protocols (on uvloop when
installed, as `rolecall serve` runs): each client connection gets its own
kept-alive connection to UPSTREAM_URL, every request's bytes are forwarded as
they arrive and every answer's bytes sent back, with only the framing needed to
know where a message ends (the header block and Content-Length). No HTTP
parser, no JSON, no header rewriting: the client sends the provider's own model
and key. What it adds over direct calls is the irreducible cost of one more
loopback hop through a Python event loop on the machine (two more socket
writes, two more wake-ups), the floor under every Python proxy. Stop it with
SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import cast
from urllib.parse import urlsplit


def _message_end(buffer: bytearray) -> int:
    """Length of the first whole HTTP message in ``buffer`` (Content-Length framing), or 0."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return 0
    head = bytes(buffer[:head_end]).lower()
    at = head.find(b"\r\ncontent-length:")
    length = 0
    if at >= 0:
        start = at + len(b"\r\ncontent-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start : stop if stop >= 0 else len(head)])
    end = head_end + 4 + length
    return end if len(buffer) >= end else 0


class _Upstream(asyncio.Protocol):
    """The proxy's connection to the provider: answers go back to ``client`` whole."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while end := _message_end(self.buffer):
            self.client.answer(bytes(self.buffer[:end]))
            del self.buffer[:end]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    """One client connection: each whole request is written to its upstream connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.pending: list[bytes] = []
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.upstream = _Upstream(self)
        loop = asyncio.get_running_loop()
        self.connecting = loop.create_task(self._connect(loop))

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.upstream is not None
        await loop.create_connection(lambda: self.upstream, self.host, self.port)  # type: ignore[arg-type, return-value]
        for request in self.pending:
            self._forward(request)
        self.pending.clear()

    def _forward(self, request: bytes) -> None:
        assert self.upstream is not None
        if self.upstream.transport is None:
            self.pending.append(request)
        else:
            self.upstream.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while end := _message_end(self.buffer):
            self._forward(bytes(self.buffer[:end]))
            del self.buffer[:end]

    def answer(self, response: bytes) -> None:
        if self.transport is not None:
            self.transport.write(response)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def serve(upstream: str, port: int) -> None:
    parts = urlsplit(upstream)
    host, upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(host, upstream_port), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    upstream, port = sys.argv[1], int(sys.argv[2])
    try:
        import uvloop
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(serve(upstream, port))


if __name__ == "__main__":
    main()
