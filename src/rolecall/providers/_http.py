"""HTTP plumbing shared by the vendor adapters.

- :func:`make_client`: one pooled ``httpx.AsyncClient`` per provider, sized from its config.
- :func:`iter_sse`: server-sent events from a stream of lines.
- :class:`HTTPProvider`: the lazy client, request helpers and error plumbing every
  adapter shares. Vendor modules supply the body mapping and the classifier
  (built from the pure helpers in :mod:`rolecall.providers._errors`).

Adapters never retry, sleep or pick another provider; they only translate.
"""

from __future__ import annotations

import functools
import json
import math
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ConfigError, ConfigIssue, ErrorKind, ProviderError
from rolecall.providers._errors import (
    Classifier,
    clip,
    did_you_mean,
    error_object,
    parse_json_text,
    transport_error,
)

__all__ = [
    "HTTPProvider",
    "SSEEvent",
    "iter_sse",
    "make_client",
    "make_clients",
    "shared_ssl_context",
]

# Connecting should never take as long as generating; fail fast on a dead host.
MAX_CONNECT_TIMEOUT = 10.0
KEEPALIVE_SECONDS = 30.0
# Connections per httpx pool; a provider with more in flight gets several pools.
CONNECTIONS_PER_POOL = 8


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every provider: loading CA certificates costs ~50 ms."""
    return httpx.create_ssl_context()


def make_clients(config: ProviderConfig, headers: Mapping[str, str]) -> list[httpx.AsyncClient]:
    """``max_concurrency`` keep-alive connections, spread over pools of a few connections each.

    One httpx pool slows down sharply as its connection count grows (every release scans
    every waiting request and connection: encode/httpx#3215); small pools taken in turn
    keep many requests in flight as fast as a few.
    """
    total = config.max_concurrency
    count = math.ceil(total / CONNECTIONS_PER_POOL)
    per_pool = math.ceil(total / count)
    return [make_client(config, headers, per_pool) for _ in range(count)]


def make_client(
    config: ProviderConfig, headers: Mapping[str, str], max_connections: int | None = None
) -> httpx.AsyncClient:
    """A pooled client: ``max_connections`` (default ``max_concurrency``) kept alive, HTTP/1.1."""
    connections = max_connections or config.max_concurrency
    timeout = httpx.Timeout(
        config.timeout,
        connect=min(MAX_CONNECT_TIMEOUT, config.timeout),
        # Waiting for a free pooled connection is local queueing, not the vendor's fault.
        pool=None,
    )
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )
    return httpx.AsyncClient(
        headers={**headers, **config.headers},
        timeout=timeout,
        limits=limits,
        http2=False,
        follow_redirects=False,
        verify=shared_ssl_context(),
    )


# --------------------------------------------------------------------------- SSE


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Events from SSE lines (``event:``/``data:`` fields, blank line dispatches).

    An event still pending at end of input is dispatched too: some servers omit the
    final blank line after their last event.
    """
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line[0] == ":":
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
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

    def __init__(
        self, provider_id: str, config: ProviderConfig, default_base_url: str | None
    ) -> None:
        self.id = provider_id
        self.model = _require(config, provider_id, config.model, "model")
        base = config.base_url or default_base_url
        self.base_url = _require(config, provider_id, base, "base_url").rstrip("/")
        self.config = config
        self._client: httpx.AsyncClient | None = None
        self._pools: list[httpx.AsyncClient] = []
        self._turn = 0

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(id={self.id!r}, model={self.model!r}, base_url={self.base_url!r})"

    def auth_headers(self) -> dict[str, str]:
        """Vendor headers, key included; the only place the key is read."""
        raise NotImplementedError

    @property
    def client(self) -> httpx.AsyncClient:
        """The next pool in turn (created on first use)."""
        client = self._client
        if client is None:
            self._pools = make_clients(self.config, self.auth_headers())
            client = self._client = self._pools[0]
        pools = self._pools
        if len(pools) <= 1:
            return client
        self._turn = turn = (self._turn + 1) % len(pools)
        return pools[turn]

    async def aclose(self) -> None:
        client, self._client = self._client, None
        pools, self._pools = self._pools, []
        for pool in {id(c): c for c in [*pools, *([client] if client else [])]}.values():
            await pool.aclose()

    def error(self, message: str, kind: ErrorKind, status: int | None = None) -> ProviderError:
        return ProviderError(message, kind=kind, provider=self.id, status=status)

    def http_error(
        self, status: int | None, body: object, headers: Mapping[str, str]
    ) -> ProviderError:
        return type(self).classify(status, body, headers, provider=self.id)

    def parse_json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            head = clip(raw.decode("utf-8", "replace"), 120)
            raise self.error(f"response is not JSON: {head}", ErrorKind.BAD_RESPONSE) from None

    async def request_json(
        self, method: str, url: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """One request; a parsed JSON answer, or the classified ProviderError."""
        try:
            response = await self.client.request(method, url, json=body, params=params)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.id) from exc
        if not 200 <= response.status_code < 300:
            raise self.http_error(response.status_code, response.content, response.headers)
        return self.parse_json(response.content)

    @asynccontextmanager
    async def open_stream(self, url: str, body: Any) -> AsyncIterator[AsyncIterator[SSEEvent]]:
        """POST ``body`` and yield its SSE events; HTTP and transport errors are classified."""
        try:
            async with self.client.stream("POST", url, json=body) as response:
                if not 200 <= response.status_code < 300:
                    raw = await response.aread()
                    raise self.http_error(response.status_code, raw, response.headers)
                content_type = response.headers.get("content-type", "")
                if "json" in content_type and "event-stream" not in content_type:
                    raw = await response.aread()
                    if error_object(raw):
                        raise self.http_error(None, raw, response.headers)
                    raise self.error("expected an event stream, got JSON", ErrorKind.BAD_RESPONSE)
                yield iter_sse(response.aiter_lines())
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.id) from exc

    def event_json(self, event: SSEEvent) -> Any:
        try:
            return json.loads(event.data)
        except ValueError:
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
