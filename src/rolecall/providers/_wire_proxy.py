"""Requests through an HTTP(S) proxy named by the environment, on aiohttp.

The lean client (:mod:`rolecall.providers._wire`) speaks to vendors directly; a provider
whose URL the environment routes through a proxy (``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY``, minus ``NO_PROXY``) uses this client instead: aiohttp handles
``CONNECT`` tunnels and proxy credentials. Same interface, same errors
(:class:`~rolecall.providers._wire.WireError`, :class:`~rolecall.providers._wire.WireTimeout`).

The vendor headers (the key among them) go on each request, never as the session's
default headers: aiohttp copies those into the ``CONNECT`` request to the proxy, in
clear text, and moves an ``Authorization`` default into ``Proxy-Authorization``.

The proxy's own refusals (a ``CONNECT`` answered with 403 or 502, a 407 asking for
credentials) are :class:`~rolecall.providers._wire_message.WireProxyRefused` naming the
proxy, its password masked, and the variable that set it: not the provider's fault. A
response's head is held to the direct client's limit (256 KB, one header line as long),
not aiohttp's 8 KB a line, and its body decoded by the direct client's decoder (gzip and
deflate; another content coding is refused), so an answer gets the same outcome either way.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from rolecall._secrets import mask_url
from rolecall.providers._wire import (
    HTTPClient,
    WireError,
    WireRequestError,
    WireTimeout,
    WireTLSError,
)
from rolecall.providers._wire_conn import MAX_HEAD_BYTES, read_whole
from rolecall.providers._wire_message import (
    WireProxyRefused,
    WireTooLarge,
    check_headers,
    decoded,
    has_control,
)

__all__ = ["ProxiedClient"]


# Header lines aiohttp takes in one head (its default is 128; vendors send a few dozen).
# Each may be as long as the whole head may be: this bounds the memory one head holds.
_MAX_HEADERS = 256
_HEAD_TOO_LARGE = f"the response's head is over {MAX_HEAD_BYTES >> 10} KB"


def _oversized_head(exc: BaseException) -> WireTooLarge | None:
    """aiohttp's refusal of a response's head for its size (a line, or too many), if so."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, LineTooLong):
            return WireTooLarge(_HEAD_TOO_LARGE)
        if isinstance(cause, BadHttpMessage) and "Too many headers" in str(cause):
            return WireTooLarge(f"the response's head has over {_MAX_HEADERS} header lines")
        cause = cause.__cause__
    return None


def _wire_error(exc: BaseException) -> WireError:
    oversized = _oversized_head(exc)
    if oversized is not None:
        return oversized
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

    def chunks(self) -> AsyncIterator[bytes]:
        raw = self._raw_chunks()
        coding = self.headers.get("content-encoding")
        return raw if coding is None else decoded(raw, coding)

    async def _raw_chunks(self) -> AsyncIterator[bytes]:
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
        proxy_variable: str,
        limit: int,
        connect_timeout: float,
        read_timeout: float | None,
        ssl_context: ssl.SSLContext,
        keepalive: float = 30.0,
        user_agent: str = "rolecall",
    ) -> None:
        self.proxy = proxy
        self.proxy_variable = proxy_variable
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
            auto_decompress=False,  # decoded as the direct client decodes, limits and all
            max_line_size=MAX_HEAD_BYTES,
            max_field_size=MAX_HEAD_BYTES,
            max_headers=_MAX_HEADERS,
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
        except aiohttp.ClientHttpProxyError as exc:  # the CONNECT was refused
            raise self._refusal(exc.status, exc.message, url) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _wire_error(exc) from exc
        if response.status == 407 or _head_size(response) > MAX_HEAD_BYTES:
            response.close()
            if response.status == 407:  # no server sends it: the forward proxy asks
                raise self._refusal(407, response.reason or "", url)
            raise WireTooLarge(_HEAD_TOO_LARGE)
        try:
            headers = {k.lower(): v for k, v in response.headers.items()}
            yield ProxiedStream(response.status, headers, response)
        finally:
            if response.content.at_eof():
                response.release()  # read to the end: the connection is reusable
            else:
                response.close()

    def _refusal(self, status: int, reason: str, url: str) -> WireProxyRefused:
        """The proxy's refusal, naming it (password masked) and the variable to fix."""
        said = f"{status} {reason}".strip()
        where = f"the proxy {mask_url(self.proxy)} ({self.proxy_variable})"
        if status == 407:
            if urlsplit(self.proxy).username is None:
                fix = f"put user:password@ before the proxy's host in {self.proxy_variable}"
            else:
                fix = f"check the user and password in {self.proxy_variable}"
            return WireProxyRefused(f"{where} asks for credentials ({said}): {fix}", status)
        target = urlsplit(url).netloc.rpartition("@")[2]
        message = f"{where} refused to reach {target} ({said})"
        if status < 500:
            message += ": allow it at the proxy, or exempt it in NO_PROXY"
        return WireProxyRefused(message, status)

    async def aclose(self) -> None:
        await self._session.close()


def _head_size(response: aiohttp.ClientResponse) -> int:
    """The response head's size as received, near enough (names, values, separators)."""
    return sum(len(name) + len(value) + 4 for name, value in response.raw_headers)
