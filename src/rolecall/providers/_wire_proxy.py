"""Requests through an HTTP(S) proxy named by the environment, on aiohttp.

The lean client (:mod:`rolecall.providers._wire`) speaks to vendors directly; a provider
whose URL the environment routes through a proxy (``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY``, minus ``NO_PROXY``) uses this client instead: aiohttp handles
``CONNECT`` tunnels and proxy credentials. Same interface, same errors
(:class:`~rolecall.providers._wire.WireError`, :class:`~rolecall.providers._wire.WireTimeout`).

The vendor headers (the key among them) go on each request, never as the session's
default headers: aiohttp copies those into the ``CONNECT`` request to the proxy, in
clear text, and moves an ``Authorization`` default into ``Proxy-Authorization``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from rolecall.providers._wire import (
    HTTPClient,
    WireError,
    WireRequestError,
    WireTimeout,
    WireTLSError,
)
from rolecall.providers._wire_conn import read_whole
from rolecall.providers._wire_message import check_headers, has_control

__all__ = ["ProxiedClient"]


def _wire_error(exc: BaseException) -> WireError:
    if isinstance(exc, TimeoutError):
        return WireTimeout(f"{type(exc).__name__}: {exc}" if str(exc) else "timed out")
    if isinstance(exc, aiohttp.ClientSSLError):
        return WireTLSError(f"{type(exc).__name__}: {exc}")
    return WireError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


@dataclass(slots=True)
class ProxiedStream:
    status: int
    headers: dict[str, str]
    _response: aiohttp.ClientResponse

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _wire_error(exc) from exc

    async def read(self) -> bytes:
        """The whole body, within the direct client's limit."""
        return await read_whole(self.chunks())


class ProxiedClient(HTTPClient):
    """:class:`~rolecall.providers._wire.WireClient`'s interface over an aiohttp session."""

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        proxy: str,
        limit: int,
        connect_timeout: float,
        read_timeout: float | None,
        ssl_context: ssl.SSLContext,
        keepalive: float = 30.0,
        user_agent: str = "rolecall",
    ) -> None:
        self.proxy = proxy
        # Sent on each request to the vendor only; see the module docstring.
        self._headers = check_headers(
            {"user-agent": user_agent, "accept-encoding": "identity", **headers}
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=limit, keepalive_timeout=keepalive, ssl=ssl_context
            ),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
            ),
            proxy=proxy,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
        )

    @property
    def closed(self) -> bool:
        return self._session.closed

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        body: bytes | None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[ProxiedStream]:
        if has_control(url):
            raise WireRequestError(f"the URL holds a control character: {url!r}")
        sent = self._headers
        if headers:
            sent = {**sent, **check_headers(headers)}
        if body is not None:
            sent = {**sent, "content-type": "application/json"}
        try:
            response = await self._session.request(
                method, url, data=body, params=params, headers=sent, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _wire_error(exc) from exc
        try:
            headers = {k.lower(): v for k, v in response.headers.items()}
            yield ProxiedStream(response.status, headers, response)
        finally:
            if response.content.at_eof():
                response.release()  # read to the end: the connection is reusable
            else:
                response.close()

    async def aclose(self) -> None:
        await self._session.close()
