"""A lean HTTP/1.1 client for the vendor adapters: asyncio connections, httptools parsing.

Why not a general-purpose client: what a proxied call costs in its HTTP client is most
of what the gateway adds. Measured with ``benchmarks/bench_gateway.py`` (100 in flight,
provider delays of 0.25-0.75 s), a bare proxy forwarding through aiohttp added 1.03 ms
p50 per call and one forwarding through a minimal asyncio client 0.41 ms; httpx cost
more than aiohttp. Every response is parsed by httptools (llhttp, Node's parser); TLS
is the standard library's.

What it does: keep-alive pools per origin (``limit`` connections, idle ones dropped
after ``keepalive`` seconds), TLS with SNI, Content-Length, chunked and until-close
bodies, a connect timeout and a timeout per read (not per response: a long stream
is fine while it keeps sending), an idle connection the server has closed never
reused (even when the event loop has not seen the close yet), ``gzip``/``deflate`` bodies
decoded although it asks for ``identity``; a response head over 256 KB or a body read
whole over 64 MB (decoded) is refused. Request heads are checked and encoded in
:mod:`rolecall.providers._wire_message`. What it does not: redirects (a 3xx is
returned as is), cookies, proxies (see :mod:`rolecall.providers._wire_proxy`),
retries (the router decides those): a request once written is never sent again, since
the server may have received it and be working on it (a paid call made twice); when
its connection then fails, the caller gets the :class:`WireError`.

Failures raise :class:`WireError` (:class:`WireTimeout` for timeouts,
:class:`WireTLSError` for a failed handshake, :class:`WireRequestError` for a request
that cannot be sent, :class:`WireTooLarge` for a response past those limits), never a
bare ``OSError``, so callers can tell the transport's failures from their own.
"""

from __future__ import annotations

import asyncio
import ssl
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from rolecall.providers._wire_conn import Connection as _Connection
from rolecall.providers._wire_conn import read_whole
from rolecall.providers._wire_message import (
    WireError,
    WireRequestError,
    WireTimeout,
    WireTLSError,
    check_headers,
    decoded,
    has_control,
    request_target,
)

__all__ = [
    "WireClient",
    "WireError",
    "WireRequestError",
    "WireResponse",
    "WireStream",
    "WireTLSError",
    "WireTimeout",
]

# Request heads kept per (method, URL) without query parameters.
_MAX_CACHED_HEADS = 256


@dataclass(slots=True)
class WireResponse:
    status: int
    headers: dict[str, str]  # names lowercased; repeated headers joined with ", "
    body: bytes


@dataclass(slots=True)
class WireStream:
    """A response whose body is read as it arrives."""

    status: int
    headers: dict[str, str]
    _conn: _Connection
    _timeout: float | None

    def chunks(self) -> AsyncIterator[bytes]:
        raw = self._conn.chunks_until_end(self._timeout)
        coding = self.headers.get("content-encoding")
        return raw if coding is None else decoded(raw, coding)

    async def read(self) -> bytes:
        """The whole body; :class:`WireTooLarge` past ``MAX_BODY_BYTES`` (decoded: a small
        compressed body can inflate to gigabytes)."""
        if "content-encoding" not in self.headers:
            return await self._conn.body(self._timeout)
        return await read_whole(self.chunks())


class _Pool:
    """Keep-alive connections to one origin, at most ``limit`` in use at once."""

    def __init__(self, client: WireClient, scheme: str, host: str, port: int) -> None:
        self.client = client
        self.host, self.port = host, port
        self.tls = scheme == "https"
        default_port = 443 if self.tls else 80
        authority = f"[{host}]" if ":" in host else host
        self.host_header = authority if port == default_port else f"{authority}:{port}"
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(client.limit)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self) -> _Connection:
        """An idle connection the server still holds open, else a new one."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            self._adopt(loop)
        await self.slots.acquire()
        try:
            now = loop.time()
            while self.idle:
                conn = self.idle.pop()
                if now - conn.idle_since < self.client.keepalive and not conn.hung_up():
                    return conn
                conn.close()
            return await self._connect()
        except BaseException:
            self.slots.release()
            raise

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve ``loop`` from now on. A client used again from a new event loop (one
        ``asyncio.run`` after another) cannot reuse what the ended loop owned: its idle
        connections and the slots' waiters belong to it."""
        if self.loop is not None:
            self.close()
            self.slots = asyncio.Semaphore(self.client.limit)
        self.loop = loop

    def release(self, conn: _Connection, reuse: bool) -> None:
        if reuse and conn.reusable and not self.client.closed:
            conn.idle_since = conn.loop.time()
            self.idle.append(conn)
        else:
            conn.close()
        self.slots.release()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.client.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=self.client.ssl_context if self.tls else None,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            limit = self.client.connect_timeout
            raise WireTimeout(f"connecting to {self.host_header} took over {limit:g} s") from None
        except ssl.SSLError as exc:
            raise WireTLSError(f"TLS with {self.host_header} failed: {exc}") from exc
        except OSError as exc:
            raise WireError(f"cannot connect to {self.host_header}: {exc}") from exc
        return conn

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class BodyStream(Protocol):
    """A response whose head has arrived; its body is read as it comes or at once."""

    status: int
    headers: dict[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...


class HTTPClient(ABC):
    """What the adapters need from a client: :class:`WireClient`, or the proxied one."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    @abstractmethod
    def stream(
        self,
        method: str,
        url: str,
        body: bytes | None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[BodyStream]:
        """One request; the response's head at once, its body as it arrives.

        ``headers`` are sent on this request only, after the client's own (a
        signature or a token that changes from call to call).
        """

    @abstractmethod
    async def aclose(self) -> None: ...

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> WireResponse:
        """One request, its whole response read."""
        async with self.stream(method, url, body, params, headers) as response:
            content = await response.read()
        return WireResponse(response.status, response.headers, content)


class WireClient(HTTPClient):
    """Requests to any origin with fixed default headers; one :class:`_Pool` per origin."""

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        limit: int,
        connect_timeout: float,
        read_timeout: float | None,
        ssl_context: ssl.SSLContext | None,
        keepalive: float = 30.0,
        user_agent: str = "rolecall",
    ) -> None:
        """``ssl_context`` None: plain HTTP only (an https URL is refused)."""
        lines = check_headers({"user-agent": user_agent, "accept-encoding": "identity", **headers})
        self._head_lines = "".join(f"{name}: {value}\r\n" for name, value in lines.items())
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context = ssl_context
        self.keepalive = keepalive
        self._closed = False
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._heads: dict[tuple[str, str], tuple[_Pool, str]] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    def _pool_and_head(
        self,
        method: str,
        url: str,
        body: bytes | None,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[_Pool, bytes]:
        if self._closed:
            raise WireError("the client is closed")
        if params:
            pool, head = self._head(method, url, urlencode(params))
        else:
            # An adapter calls the same few URLs again and again: their heads are kept.
            cached = self._heads.get((method, url))
            if cached is None:
                if len(self._heads) >= _MAX_CACHED_HEADS:
                    self._heads.clear()
                cached = self._heads[method, url] = self._head(method, url, "")
            pool, head = cached
        if headers:
            extra = check_headers(headers)
            head += "".join(f"{name}: {value}\r\n" for name, value in extra.items())
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        return pool, (head + "\r\n").encode("latin-1") + (body or b"")

    def _head(self, method: str, url: str, params: str) -> tuple[_Pool, str]:
        """The pool for ``url``'s origin and the request head up to its body's headers."""
        if has_control(url):
            raise WireRequestError(f"the URL holds a control character: {url!r}")
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
        if scheme not in ("http", "https") or not host:
            raise WireError(f"not an http(s) URL: {url}")
        if scheme == "https" and self.ssl_context is None:
            raise WireError(f"this client speaks plain HTTP only: {url}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, scheme, host, port)
        query = "&".join(q for q in (parts.query, params) if q)
        target = request_target(parts, query)
        return pool, f"{method} {target} HTTP/1.1\r\nhost: {pool.host_header}\r\n{self._head_lines}"

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> WireResponse:
        """One request, its whole response read: :meth:`stream`'s work without the context
        manager and the stream object, which every whole answer would pay for."""
        pool, data = self._pool_and_head(method, url, body, params, headers)
        conn = await self._exchange(pool, data)
        reuse = False
        try:
            if "content-encoding" in conn.headers:
                response = WireStream(conn.status, conn.headers, conn, self.read_timeout)
                content = await response.read()
            elif conn.complete:  # all of it came with the head: no coroutine to read it
                content = conn.buffered_body()
            else:
                content = await conn.body(self.read_timeout)
            reuse = conn.complete and not conn.chunks
        finally:
            pool.release(conn, reuse)
        return WireResponse(conn.status, conn.headers, content)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        body: bytes | None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[WireStream]:
        """One request; the response's head at once, its body as it arrives.

        The connection goes back to the pool only when the body was read to its end.
        """
        pool, data = self._pool_and_head(method, url, body, params, headers)
        conn = await self._exchange(pool, data)
        reuse = False
        try:
            yield WireStream(conn.status, conn.headers, conn, self.read_timeout)
            reuse = conn.complete and not conn.chunks
        finally:
            pool.release(conn, reuse)

    async def _exchange(self, pool: _Pool, data: bytes) -> _Connection:
        """Send the request and read the response's head; the connection it holds.

        Sent once: a failure after the request was written (a reset, a close before any
        byte of response) is raised, never answered by sending it again, since the server
        may have read it. An idle connection the server had closed is not taken for it
        (:meth:`_Pool.acquire`); one closing as the request goes out fails it, and the
        router's retry policy decides, as for a POST in Go's and httpcore's clients.
        """
        conn = await pool.acquire()
        try:
            conn.send(data)
            while not conn.status:  # until the response's head is in
                await conn.wait(self.read_timeout)
        except BaseException:
            pool.release(conn, False)  # closed, its slot freed
            raise
        return conn

    async def aclose(self) -> None:
        self._closed = True
        pools, self._pools = self._pools, {}
        self._heads.clear()
        for pool in pools.values():
            pool.close()
