"""Local servers for the transport tests: a TLS front for a sim, and a recording proxy.

Every host name resolves to this machine here: the proxy connects to 127.0.0.1 on the
port the request names, so a base URL such as ``https://vendor.example:PORT`` (a host
the proxy settings do not exempt as loopback) reaches a local server.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

__all__ = [
    "Authority",
    "RecordingProxy",
    "Serve",
    "connect_proxy",
    "event_loop_policy",
    "raw_server",
    "read_request",
    "test_authority",
    "tls_front",
]

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every test of a module importing this on both loops: ``rolecall serve`` runs the
    client on uvloop."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        policy: asyncio.AbstractEventLoopPolicy = uvloop.EventLoopPolicy()
        return policy
    return asyncio.DefaultEventLoopPolicy()


@asynccontextmanager
async def raw_server(serve: Serve) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 answering each connection with ``serve``; yields its URL."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head (its body read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


@dataclass(slots=True)
class Authority:
    """A test certificate authority, its PEM file and a server context for ``host``."""

    ca: trustme.CA
    ca_file: Path
    server_context: ssl.SSLContext


def test_authority(directory: Path, host: str) -> Authority:
    ca = trustme.CA()
    ca_file = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    return Authority(ca, ca_file, context)


test_authority.__test__ = False  # type: ignore[attr-defined]  # not a test function


class _Connections:
    """The connections a test server holds, closed and awaited when it stops.

    Letting the loop cancel a handler still piping bytes logs an error on Python 3.11.
    """

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def track(self, *writers: asyncio.StreamWriter) -> None:
        self.writers.extend(writers)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)  # type: ignore[arg-type]

    async def close(self, server: asyncio.Server) -> None:
        server.close()
        for writer in self.writers:
            writer.close()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _relay(
    connections: _Connections,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    port: int,
    first: bytes = b"",
) -> None:
    """Bytes both ways between a client connection and 127.0.0.1:``port``."""
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        writer.close()
        return
    connections.track(up_writer)
    up_writer.write(first)
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


@asynccontextmanager
async def tls_front(target_port: int, context: ssl.SSLContext) -> AsyncIterator[int]:
    """TLS on a 127.0.0.1 port (yielded), relaying the plain bytes to ``target_port``."""

    connections = _Connections()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.track(writer)
        await _relay(connections, reader, writer, target_port)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        await connections.close(server)


@dataclass(slots=True)
class RecordingProxy:
    """What the proxy saw: every request head (CONNECT or absolute-form), bytes as sent."""

    url: str = ""
    heads: list[bytes] = field(default_factory=list)


def _port(target: bytes) -> int:
    authority = target.removeprefix(b"http://").split(b"/", 1)[0]
    _, _, port = authority.rpartition(b":")
    return int(port) if port.isdigit() else 80


def _origin_form(head: bytes, target: bytes) -> bytes:
    """The forwarded head: origin-form target, one request per connection."""
    path = b"/" + target.removeprefix(b"http://").partition(b"/")[2]
    first, *lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(b"connection:")]
    lines = [first.replace(target, path, 1), *kept, b"connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@asynccontextmanager
async def connect_proxy() -> AsyncIterator[RecordingProxy]:
    """An HTTP proxy: ``CONNECT`` tunnels, and absolute-form requests forwarded as they are."""
    proxy = RecordingProxy()
    connections = _Connections()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.track(writer)
        with suppress(asyncio.IncompleteReadError, ConnectionError):
            head = await reader.readuntil(b"\r\n\r\n")
            proxy.heads.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
            if method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await _relay(connections, reader, writer, _port(target))
                return
            await _relay(connections, reader, writer, _port(target), _origin_form(head, target))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        await connections.close(server)
