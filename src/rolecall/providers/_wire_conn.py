"""One keep-alive connection of the HTTP/1.1 client (:mod:`rolecall.providers._wire`).

An asyncio protocol that parses one response at a time with httptools, buffers its
body (pausing reads past a high-water mark until the reader catches up), and wakes
the one coroutine waiting on it as the response's head, body and end arrive.
"""

from __future__ import annotations

import asyncio
import select
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools

from rolecall.providers._wire_message import WireError, WireTimeout, WireTooLarge

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "Connection", "body_too_large", "read_whole"]

# A response's status line and headers (a vendor's are a few KB), and a body read whole
# (the largest answers, images inline, are some MB): past these it is read no further.
MAX_HEAD_BYTES = 256 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024

# Buffered body bytes above which reading pauses until the consumer catches up.
_HIGH_WATER = 256 * 1024
# Response header names as received -> their lower-case keys (the first this many names).
_header_keys: dict[bytes, str] = {}
_MAX_HEADER_KEYS = 512


class Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self._socket_poll: select.poll | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.head_bytes = 0  # received before the response's head was complete
        self.header_bytes = 0  # the head's header lines, counted as parsed
        self.interim = False  # parsing a 1xx response, which precedes the real one
        self.error: WireError | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses, hence the cast).
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a poll of this socket alone, for hung_up(): one call, no object
            self._socket_poll = select.poll()
            self._socket_poll.register(sock.fileno(), select.POLLIN)

    def data_received(self, data: bytes) -> None:
        if not self.status:
            self.head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(WireError(f"malformed HTTP response: {exc}"))
            self.close()
            return
        if not self.status and self.head_bytes > MAX_HEAD_BYTES:
            self._fail(WireTooLarge(f"the response's head is over {MAX_HEAD_BYTES >> 10} KB"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            delimited_by_close = not self.headers.get("content-length") and not self._chunked()
            if self.status and exc is None and delimited_by_close:
                # A body delimited by the connection closing ends here, complete (a reset
                # is not a close: exc says so).
                self.complete = True
                self._wake()
                return
            reason = f": {exc}" if exc else ""
            # Before any byte of response, the request may still have been read and acted on.
            when = "mid-response" if self.head_bytes or self.status else "without responding"
            self._fail(WireError(f"the server closed the connection {when}{reason}"))

    # -- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # A server sends the same few names on every response: their keys are kept.
        key = _header_keys.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_header_keys) < _MAX_HEADER_KEYS:
                _header_keys[name] = key
        text = value.decode("latin-1")
        self.header_bytes += len(name) + len(value) + 4
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # 100 Continue, 103 Early Hints: informational, the response follows (RFC 9110
            # section 15.2); its head is dropped and the next one read.
            self.interim = True
            self.headers = {}
            self.header_bytes = 0
            return
        if self.header_bytes > MAX_HEAD_BYTES:
            # Ended within the read that passed the limit, which data_received's count of
            # the bytes before the head was complete cannot see: refused all the same.
            self._fail(WireTooLarge(f"the response's head is over {MAX_HEAD_BYTES >> 10} KB"))
            self.close()
            return
        self.status = status
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # -- used by the pool -------------------------------------------------------------------

    def _chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: WireError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def send(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise WireError("the connection closed before the request was sent")
        self._begin()
        self._parser = httptools.HttpResponseParser(self)
        self.transport.write(data)

    async def wait(self, read_timeout: float | None) -> None:
        """Until the parser reports progress (or the connection fails, or ``read_timeout``)."""
        if self.error is not None:
            raise self.error
        waiter = self._waiter = self.loop.create_future()
        timer = (
            self.loop.call_later(read_timeout, self._time_out, waiter, read_timeout)
            if read_timeout is not None
            else None
        )
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            raise self.error

    def _time_out(self, waiter: asyncio.Future[None], timeout: float) -> None:
        if not waiter.done():
            waiter.set_exception(WireTimeout(f"no response data for {timeout:g} s"))
        self.close()

    def next_chunk(self) -> bytes | None:
        """A buffered body chunk, or None when none is buffered yet."""
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered <= _HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    async def chunks_until_end(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            chunk = self.next_chunk()
            if chunk is not None:
                yield chunk
            elif self.complete:
                return
            else:
                await self.wait(read_timeout)

    def buffered_body(self) -> bytes:
        """The body of a complete response (all of it buffered)."""
        chunks = self.chunks
        body = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return body

    async def body(self, read_timeout: float | None) -> bytes:
        """The rest of the body (consumed as it arrives, so reading never stays paused);
        :class:`WireTooLarge` past :data:`MAX_BODY_BYTES`."""
        # chunks_until_end's loop without an async generator: this runs on every call.
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = self.next_chunk()
            if chunk is not None:
                parts.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise body_too_large()
            elif self.complete:
                return b"".join(parts)
            else:
                await self.wait(read_timeout)

    def hung_up(self) -> bool:
        """Whether this idle connection can no longer take a request: closed, closing, or
        its socket has something to read. With no request on it, that is the server's
        close (or bytes it had no business sending) which the event loop has not handled
        yet, as when a server closes right after its answer without saying so."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return True
        return self._socket_poll is not None and bool(self._socket_poll.poll(0))

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        # A transport of an event loop that has ended cannot be closed through it; its
        # socket is closed when the transport is collected.
        if self.transport is not None and not self.loop.is_closed():
            self.transport.close()


def body_too_large() -> WireTooLarge:
    return WireTooLarge(f"the response body is over {MAX_BODY_BYTES >> 20} MB")


async def read_whole(chunks: AsyncIterator[bytes]) -> bytes:
    """All of ``chunks`` joined; :class:`WireTooLarge` past :data:`MAX_BODY_BYTES`."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise body_too_large()
        parts.append(chunk)
    return b"".join(parts)
