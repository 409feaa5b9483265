"""A small HTTP/1.1 server on asyncio streams and h11.

Written by hand rather than on an ASGI server so that every fault a vendor's
edge can produce is under our control: a reset with no response, a silent hang,
a stream cut mid-body, chunked server-sent events. h11 parses the requests;
responses are framed here directly (Content-Length or chunked), which keeps the
per-request cost low and lets a fault stop anywhere in the byte stream.
Connections are keep-alive; pipelined requests are kept for the next cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

__all__ = ["Exchange", "Handler", "HttpRequest", "HttpServer", "Rendered"]

log = logging.getLogger("rolecall.sim")

# (status, headers, body) of a complete response.
Rendered = tuple[int, list[tuple[str, str]], bytes]

_READ_SIZE = 65536
# Buffered stream bytes past which they are written (and a client that reads slowly waited
# for), so a long stream goes out as it is made, as a vendor's does.
_STREAM_FLUSH_BYTES = 65536
KEEPALIVE_EVERY = 0.1  # seconds between keep-alives on a stream kept quiet
_STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus
}
_STATUS_LINES[529] = b"HTTP/1.1 529 Site Overloaded\r\n"


class HttpRequest:
    """One request, fully read."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "target")

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool = True,
    ) -> None:
        self.method = method
        self.target = target
        parts = urlsplit(target)
        self.path = unquote(parts.path)
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class ClientGone(Exception):
    """The client closed the connection while we were writing."""


def _head(status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytearray:
    out = bytearray(_STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n".encode())
    for name, value in headers:
        out += f"{name}: {value}\r\n".encode("latin-1")
    if not keep_alive:
        out += b"connection: close\r\n"
    out += b"\r\n"
    return out


class Exchange:
    """The response side of one request: complete, streamed, cut, reset or silent."""

    __slots__ = (
        "_head_only",
        "_keep_alive",
        "_pending",
        "_reader",
        "_writer",
        "closed",
        "finished",
        "pipelined",
        "started",
        "status",
    )

    def __init__(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._keep_alive = request.keep_alive
        self._head_only = request.method == "HEAD"
        self.started = False
        self.finished = False
        self.closed = False
        self.status: int | None = None  # of the response sent, for logs
        self.pipelined = bytearray()  # bytes of the next request read while we waited
        self._pending = bytearray()  # chunks not yet written

    async def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send a complete response with a Content-Length."""
        data = _head(status, [*headers, ("content-length", str(len(body)))], self._keep_alive)
        if not self._head_only:
            data += body
        self.started, self.status = True, status
        await self._write(bytes(data))
        self.finished = True

    async def respond_partial(
        self, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Announce ``body`` with its full Content-Length, send half of it, then cut."""
        data = _head(status, [*headers, ("content-length", str(len(body)))], self._keep_alive)
        self.started, self.status = True, status
        self._pending += data + body[: len(body) // 2]
        await self.cut()

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Begin a chunked response, buffered until ``flush``, ``end`` or ``cut``."""
        self._pending += _head(
            status, [*headers, ("transfer-encoding", "chunked")], self._keep_alive
        )
        self.started, self.status = True, status

    def send(self, data: bytes) -> None:
        """Add one chunk to a started response (buffered)."""
        if data:
            self._pending += b"%x\r\n%b\r\n" % (len(data), data)

    async def stream(self, data: bytes) -> None:
        """Add one chunk, and write the buffered ones once they pass 64 KB: a long answer
        built whole before its first byte went out kept the client waiting for the head
        (about a second for 100,000 words, more on a loaded machine)."""
        self.send(data)
        if len(self._pending) >= _STREAM_FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        """Put the buffered chunks on the wire."""
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            await self._write(data)

    async def end(self) -> None:
        """Finish a started chunked response cleanly."""
        self._pending += b"0\r\n\r\n"
        await self.flush()
        self.finished = True

    async def cut(self) -> None:
        """Close the connection mid-response after flushing what was sent (FIN)."""
        with contextlib.suppress(ClientGone):
            await self.flush()
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
        self.closed = True
        self._writer.transport.abort()

    def reset(self) -> None:
        """Drop the connection with a TCP RST and no response at all."""
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.closed = True
        self._writer.transport.abort()

    async def keep_quiet(self, seconds: float, keepalive: bytes | None) -> bool:
        """Send no content for ``seconds`` (``keepalive`` every :data:`KEEPALIVE_EVERY` s when
        given); True as soon as the client closes the connection."""
        if keepalive is None:
            return await self.wait_client_gone(seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            if await self.wait_client_gone(min(left, KEEPALIVE_EVERY)):
                return True
            try:
                self.send(keepalive)
                await self.flush()
            except ClientGone:
                return True
        return False

    async def wait_client_gone(self, seconds: float) -> bool:
        """Stay silent for ``seconds``; True as soon as the client closes the connection."""
        await self.flush()
        try:
            async with asyncio.timeout(seconds):
                while True:
                    data = await self._reader.read(_READ_SIZE)
                    if not data:
                        self.closed = True
                        return True
                    self.pipelined += data
        except TimeoutError:
            return False
        except ConnectionError:
            self.closed = True
            return True

    async def _write(self, data: bytes) -> None:
        if self.closed or self._writer.transport.is_closing():
            self.closed = True
            raise ClientGone
        self._writer.write(data)
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            self.closed = True
            raise ClientGone from exc


Handler = Callable[[HttpRequest, Exchange], Awaitable[None]]


class HttpServer:
    """Accepts connections and runs ``handler`` for each request, keep-alive."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def open(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port, backlog=2048)
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        leftover = b""
        try:
            while True:
                # A fresh parser per request: h11 only reads; we frame responses ourselves.
                conn = h11.Connection(h11.SERVER)
                if leftover:
                    conn.receive_data(leftover)
                try:
                    request = await _read_request(conn, reader, writer)
                except h11.RemoteProtocolError as exc:
                    body = f"bad request: {exc}".encode()
                    head = _head(400, [("content-length", str(len(body)))], keep_alive=False)
                    writer.write(bytes(head) + body)
                    await writer.drain()
                    break
                if request is None:
                    break
                exchange = Exchange(request, reader, writer)
                try:
                    await self._handler(request, exchange)
                except ClientGone:
                    break
                except Exception:
                    log.exception("sim handler failed on %s %s", request.method, request.path)
                    if exchange.started or exchange.closed:
                        break
                    await exchange.respond(500, [("content-type", "text/plain")], b"sim error")
                if exchange.closed or not exchange.finished or not request.keep_alive:
                    break
                leftover = conn.trailing_data[0] + bytes(exchange.pipelined)
        except (ConnectionError, ClientGone):
            pass
        except asyncio.CancelledError:
            # Only close() cancels us; finishing quietly keeps Python 3.11's stream
            # callback from logging the cancellation as an error.
            writer.transport.abort()
        finally:
            if task is not None:
                self._connections.discard(task)
            if not writer.transport.is_closing():
                writer.close()


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> HttpRequest | None:
    """The next complete request on the connection, or None when the client is done."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await reader.read(_READ_SIZE)
            except ConnectionError:
                return None
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
            if conn.they_are_waiting_for_100_continue:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            headers: dict[str, str] = {}
            for name, value in request.headers:
                key = name.decode("latin-1")  # h11 lowercases names
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
            keep_alive = (
                "keep-alive" in tokens if request.http_version == b"1.0" else "close" not in tokens
            )
            return HttpRequest(
                request.method.decode("ascii"),
                request.target.decode("latin-1"),
                headers,
                bytes(body),
                keep_alive,
            )
        else:  # ConnectionClosed (peer closed)
            return None
