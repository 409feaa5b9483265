"""HTTP plumbing shared by the vendor adapters.

- :func:`make_client`: one pooled client per provider, sized from its config: the lean
  :class:`~rolecall.providers._wire.WireClient`, or, when the environment routes the
  provider's URL through a proxy, :class:`~rolecall.providers._wire_proxy.ProxiedClient`.
- :func:`iter_lines` / :func:`iter_sse`: server-sent events from a response body.
- :class:`HTTPProvider`: the lazy client, request helpers and error plumbing every
  adapter shares. Vendor modules supply the body mapping and the classifier
  (built from the pure helpers in :mod:`rolecall.providers._errors`).

Adapters never retry, sleep or pick another provider; they only translate. One resend is
theirs: a request whose credential the server refused (``auth``) goes once more when
:meth:`HTTPProvider.renew_credentials` finds a different one (an expired cloud token, a
rotated credentials file), as an SDK's auth flow re-sends after a 401; the refusal of a
credential that cannot change stands.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode, urlsplit

import rolecall
from rolecall._json import dumps_finite, loads
from rolecall._secrets import mask_url
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ConfigError, ConfigIssue, ErrorKind, ProviderError
from rolecall.providers._errors import (
    Classifier,
    clip,
    did_you_mean,
    is_error_report,
    parse_json_text,
    transport_error,
)
from rolecall.providers._proxy_env import env_proxy
from rolecall.providers._wire import (
    BodyStream,
    HTTPClient,
    WireClient,
    WireError,
    WireResponse,
    WireTLSError,
)
from rolecall.providers._wire_message import InvalidHeader, WireTooLarge, check_headers

__all__ = [
    "HTTPClient",
    "HTTPProvider",
    "SSEEvent",
    "env_proxy",
    "iter_lines",
    "iter_sse",
    "json_body",
    "make_client",
    "shared_ssl_context",
]

# Connecting should never take as long as generating; fail fast on a dead host.
MAX_CONNECT_TIMEOUT = 10.0
KEEPALIVE_SECONDS = 30.0
# One line of an event stream; a vendor's longest (an image in one event) is a few MB.
MAX_LINE_BYTES = 32 * 1024 * 1024
USER_AGENT = f"rolecall/{rolecall.__version__}"
_T = TypeVar("_T")


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every provider: loading CA certificates costs ~50 ms.

    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` win (corporate roots), as in OpenSSL; else
    certifi's bundle, which is the same everywhere, unlike the system stores of some
    Python builds. Read once per process.
    """
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        import certifi

        cafile = certifi.where()
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    context.set_alpn_protocols(["http/1.1"])
    return context


def make_client(config: ProviderConfig, headers: Mapping[str, str], base_url: str) -> HTTPClient:
    """``max_concurrency`` keep-alive HTTP/1.1 connections; a read timeout per socket read.

    Raises :class:`WireTLSError` when the CA certificates cannot be loaded, and
    :class:`WireRequestError` for a proxy the client cannot use.
    """
    try:
        ssl_context = shared_ssl_context()
    except (OSError, ssl.SSLError) as exc:  # a missing or unreadable SSL_CERT_FILE
        raise WireTLSError(
            f"cannot load CA certificates (SSL_CERT_FILE/SSL_CERT_DIR): {exc}"
        ) from exc
    options: dict[str, Any] = {
        "limit": config.max_concurrency,
        "connect_timeout": min(MAX_CONNECT_TIMEOUT, config.timeout),
        "read_timeout": config.timeout,
        "ssl_context": ssl_context,
        "keepalive": KEEPALIVE_SECONDS,
        "user_agent": USER_AGENT,
    }
    merged = {**headers, **config.headers}
    proxy = env_proxy(base_url)
    if proxy is not None:
        from rolecall.providers._wire_proxy import ProxiedClient  # aiohttp: imported only here

        return ProxiedClient(merged, proxy=proxy.url, proxy_variable=proxy.variable, **options)
    return WireClient(merged, **options)


def json_body(body: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused (no vendor accepts them).

    A value JSON cannot carry (an object, a set, a NaN inside a parameter) is the
    request's fault: a bad request, not retried, so the provider is never blamed.
    """
    try:
        return dumps_finite(body)
    except UnicodeEncodeError:
        raise  # the router names the lone surrogate
    except (TypeError, ValueError) as exc:
        raise ProviderError(
            f"the request holds a value JSON cannot carry ({exc}): pass only strings, "
            "numbers, booleans, None, lists and dicts in params and tools",
            kind=ErrorKind.BAD_REQUEST,
            retryable=False,
        ) from None


# --------------------------------------------------------------------------- SSE


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


async def iter_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Text lines (``\\n`` or ``\\r\\n`` ended) from body chunks cut anywhere.

    Splitting the bytes is safe for UTF-8 (a newline byte is never inside a character);
    the incremental decoder rejoins characters cut between chunks. A line's pieces are
    joined once it ends (not at every chunk, which is quadratic in its length), and a
    line over :data:`MAX_LINE_BYTES` is :class:`WireTooLarge`.
    """
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode
    pending: list[bytes] = []  # the pieces of a line not ended yet
    size = 0
    async for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            size += len(chunk)
            if size > MAX_LINE_BYTES:
                raise WireTooLarge(f"a line of the stream is over {MAX_LINE_BYTES >> 20} MB")
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending.clear()
        *lines, rest = chunk.split(b"\n")
        for line in lines:
            yield decode(line.removesuffix(b"\r"))
        if rest:
            pending.append(rest)
        size = len(rest)
    if pending:
        yield decode(b"".join(pending).removesuffix(b"\r"), True)


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Events from SSE lines (``event:``/``data:`` fields, blank line dispatches).

    An event still pending at end of input is dispatched too: some servers omit the
    final blank line after their last event. An event whose data passes
    :data:`MAX_LINE_BYTES` is :class:`WireTooLarge`.
    """
    event = ""
    data: list[str] = []
    size = 0
    async for line in lines:
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data, size = "", [], 0
            continue
        if line[0] == ":":
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
            size += len(value)
            if size > MAX_LINE_BYTES:  # data lines that never end their event
                raise WireTooLarge(f"an event of the stream is over {MAX_LINE_BYTES >> 20} MB")
        elif name == "event":
            event = value
    if data:
        yield SSEEvent(event or "message", "\n".join(data))


# ------------------------------------------------------------------ base adapter


def _require(config: ProviderConfig, provider_id: str, value: str | None, field: str) -> str:
    if value:
        return value
    raise ConfigError(
        [
            ConfigIssue(
                f"providers.{provider_id}.{field}",
                f"is required for type {config.type}",
                f"set providers.{provider_id}.{field}",
            )
        ]
    )


class HTTPProvider:
    """What every HTTP adapter shares: config, lazy pooled client, request helpers."""

    classify: ClassVar[Classifier]
    # True when :meth:`request_headers` computes headers per call (a signature, a token
    # that expires); False keeps the common path free of the extra await.
    per_request_headers: ClassVar[bool] = False

    def __init__(
        self, provider_id: str, config: ProviderConfig, default_base_url: str | None
    ) -> None:
        self.id = provider_id
        self.model = _require(config, provider_id, config.model, "model")
        base = config.base_url or default_base_url
        self.base_url = _require(config, provider_id, base, "base_url").rstrip("/")
        self.config = config
        self._client: HTTPClient | None = None

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(id={self.id!r}, model={self.model!r}, base_url={mask_url(self.base_url)!r})"

    def auth_headers(self) -> dict[str, str]:
        """Vendor headers, key included; the only place the key is read."""
        raise NotImplementedError

    async def request_headers(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        """Headers for this one request (``url`` with its query), computed just before
        it is sent: a request signature or a freshly refreshed token. Only called when
        :attr:`per_request_headers` is set; raise a ProviderError (``auth``) when no
        credential can be had."""
        return {}

    async def renew_credentials(self, sent: Mapping[str, str]) -> bool:
        """The server refused the credential in ``sent`` (the headers
        :meth:`request_headers` gave, names lowercased): get another one now, and say
        whether it differs, so the request goes once more with it. Calls refused together
        share one renewal. Nothing to renew by default."""
        return False

    async def _credential_step(self, step: Awaitable[_T]) -> _T:
        """``step`` (a token, a signature, a renewal), bounded by the provider's timeout:
        a token server or sign-in that never answers must not hold the call past it
        (google-auth waits 120 s, a credential process forever)."""
        limit = asyncio.timeout(self.config.timeout)
        try:
            async with limit:
                return await step
        except TimeoutError:
            if not limit.expired():
                raise
            raise self.error(
                f"no credentials within the timeout ({self.config.timeout:g} s): the token "
                "server or sign-in did not answer",
                ErrorKind.TIMEOUT,
            ) from None

    async def _call_headers(
        self, method: str, url: str, body: bytes | None
    ) -> Mapping[str, str] | None:
        if not self.per_request_headers:
            return None
        headers = await self._credential_step(self.request_headers(method, url, body))
        try:
            return check_headers(headers)
        except InvalidHeader as exc:
            raise self.error(f"a request header cannot be sent: {exc}", ErrorKind.AUTH) from None

    async def _renewed(self, error: ProviderError, sent: Mapping[str, str] | None) -> bool:
        """Whether a request refused with ``error`` is to be sent again with a new credential."""
        if sent is None or error.kind is not ErrorKind.AUTH:
            return False
        return await self._credential_step(self.renew_credentials(sent))

    @property
    def client(self) -> HTTPClient:
        """The pooled client, opened on first use (inside the event loop it belongs to)."""
        client = self._client
        if client is None:
            try:
                client = make_client(self.config, self.auth_headers(), self.base_url)
            except WireError as exc:
                raise transport_error(exc, self.id) from None
            except InvalidHeader as exc:
                raise self._header_error(exc) from None
            self._client = client
        return client

    def _header_error(self, exc: InvalidHeader) -> ProviderError:
        """A key or configured header that cannot be sent: named, its value never shown."""
        if exc.name.lower() in {name.lower() for name in self.auth_headers()}:
            return self.error(f"the API key cannot be sent: {exc}", ErrorKind.AUTH)
        return self.error(f"providers.{self.id}.headers: {exc}", ErrorKind.BAD_REQUEST)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def error(self, message: str, kind: ErrorKind, status: int | None = None) -> ProviderError:
        return ProviderError(message, kind=kind, provider=self.id, status=status)

    def http_error(
        self, status: int | None, body: object, headers: Mapping[str, str]
    ) -> ProviderError:
        return type(self).classify(status, body, headers, provider=self.id)

    def parse_json(self, raw: bytes) -> Any:
        try:
            return loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            head = clip(raw.decode("utf-8", "replace"), 120)
            raise self.error(f"response is not JSON: {head}", ErrorKind.BAD_RESPONSE) from None

    async def request_json(
        self, method: str, url: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """One request; a parsed JSON answer, or the classified ProviderError."""
        data = None if body is None else json_body(body)
        if params:
            url = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"
        # Most providers sign nothing per request: no coroutine for them.
        headers = await self._call_headers(method, url, data) if self.per_request_headers else None
        response = await self._send(method, url, data, headers)
        if not 200 <= response.status < 300:
            error = self.http_error(response.status, response.body, response.headers)
            if not await self._renewed(error, headers):
                raise error
            headers = await self._call_headers(method, url, data)
            response = await self._send(method, url, data, headers)
            if not 200 <= response.status < 300:
                raise self.http_error(response.status, response.body, response.headers)
        return self.parse_json(response.body)

    async def _send(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str] | None
    ) -> WireResponse:
        try:
            return await self.client.request(method, url, data, None, headers)
        except WireError as exc:
            raise transport_error(exc, self.id) from exc

    @asynccontextmanager
    async def post_stream(self, url: str, data: bytes) -> AsyncIterator[BodyStream]:
        """POST ``data`` and yield the response once its status says success, else raise
        the classified error; a refused credential is renewed and the request sent once
        more (see :meth:`renew_credentials`). Transport errors are classified."""
        sent = await self._call_headers("POST", url, data)
        try:
            async with self.client.stream("POST", url, data, None, sent) as response:
                if 200 <= response.status < 300:
                    yield response
                    return
                error = self.http_error(response.status, await response.read(), response.headers)
            if not await self._renewed(error, sent):
                raise error
            headers = await self._call_headers("POST", url, data)
            async with self.client.stream("POST", url, data, None, headers) as response:
                if not 200 <= response.status < 300:
                    raw = await response.read()
                    raise self.http_error(response.status, raw, response.headers)
                yield response
        except WireError as exc:
            # Only the transport's own failures: a timeout raised around the caller's
            # loop body is not the vendor's.
            raise transport_error(exc, self.id) from exc

    @asynccontextmanager
    async def open_stream(self, url: str, body: Any) -> AsyncIterator[AsyncIterator[SSEEvent]]:
        """POST ``body`` and yield its SSE events; HTTP and transport errors are classified."""
        async with self.post_stream(url, json_body(body)) as response:
            content_type = response.headers.get("content-type", "")
            if "json" in content_type and "event-stream" not in content_type:
                raw = await response.read()
                if is_error_report(raw):
                    raise self.http_error(None, raw, response.headers)
                raise self.error("expected an event stream, got JSON", ErrorKind.BAD_RESPONSE)
            if content_type.startswith("text/html"):  # a web page: the wrong server
                page = clip((await response.read()).decode("utf-8", "replace"), 120)
                raise self.error(
                    f"expected an event stream, got an HTML page: {page}; check base_url",
                    ErrorKind.BAD_RESPONSE,
                )
            yield iter_sse(iter_lines(response.chunks()))

    def event_json(self, event: SSEEvent) -> Any:
        try:
            return json.loads(event.data)
        except (ValueError, RecursionError):
            raise self.error(
                f"stream event is not JSON: {clip(event.data, 120)}", ErrorKind.BAD_RESPONSE
            ) from None

    def check_json_text(self, text: str) -> None:
        """Structured output must parse as JSON."""
        if not parse_json_text(text):
            raise self.error(
                f"answer is not the requested JSON: {clip(text, 120)}", ErrorKind.BAD_RESPONSE
            )

    def not_listed(self, url: str, ids: list[str]) -> ProviderError:
        hint = did_you_mean(self.model, ids)
        return self.error(
            f"model '{self.model}' is not offered by {url}{hint}", ErrorKind.NOT_FOUND
        )

    def empty_answer(self) -> ProviderError:
        return self.error("empty answer (no text)", ErrorKind.BAD_RESPONSE)

    def cut_short(self, received: int) -> ProviderError:
        # A stream without its terminal event almost always means a dropped connection.
        return self.error(
            f"stream ended before its final event ({received} characters received)",
            ErrorKind.NETWORK,
        )
