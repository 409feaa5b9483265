"""Shared HTTP helpers: SSE parsing, error bodies, retry hints, transport errors, clients."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterable

import pytest
from pydantic import ValidationError

from rolecall._secrets import Secret
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, MissingExtra
from rolecall.providers import Provider, build_provider
from rolecall.providers._errors import (
    clip,
    error_object,
    google_duration,
    kind_for_status,
    retry_after_seconds,
    transport_error,
)
from rolecall.providers._http import MAX_LINE_BYTES, SSEEvent, iter_lines, iter_sse
from rolecall.providers._wire import WireClient, WireError, WireTimeout, WireTLSError
from rolecall.providers._wire_message import WireTooLarge
from rolecall.providers.anthropic import AnthropicProvider
from rolecall.providers.google import GoogleProvider
from rolecall.providers.openai import OpenAIProvider
from rolecall.types import ChatRequest, Message

KEY = "sk-http-helper-secret-42"


async def _lines(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def _events(lines: list[str]) -> list[SSEEvent]:
    return [event async for event in iter_sse(_lines(lines))]


async def _chunks(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
async def test_lines_from_chunks_cut_anywhere(size: int) -> None:
    long = "x" * 300_000  # longer than any read buffer
    body = f"data: caf\u00e9 \U0001f600\r\n\ndata: {long}\nlast line without newline".encode()
    chunks = [body[i : i + size] for i in range(0, len(body), size)] if size < 1000 else [body]
    lines = [line async for line in iter_lines(_chunks(chunks))]
    assert lines == ["data: caf\u00e9 \U0001f600", "", f"data: {long}", "last line without newline"]


async def test_a_line_or_event_that_never_ends_is_too_large() -> None:
    # 64 KB reads of one line with no end: refused past MAX_LINE_BYTES, not buffered for ever
    # (nor joined again at every read, which took minutes for a few hundred MB).
    piece = b"a" * 65536
    endless = [b"data: "] + [piece] * (MAX_LINE_BYTES // len(piece) + 2)
    with pytest.raises(WireTooLarge, match="a line of the stream is over 32 MB"):
        async for _ in iter_lines(_chunks(endless)):
            pass
    # Data lines of one event that never ends: the same limit for the event.
    lines = [f"data: {'b' * 1_000_000}" for _ in range(MAX_LINE_BYTES // 1_000_000 + 2)]
    with pytest.raises(WireTooLarge, match="an event of the stream is over 32 MB"):
        await _events(lines)
    error = transport_error(WireTooLarge("a line of the stream is over 32 MB"), "p")
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_sse_named_events_multiline_data_and_comments() -> None:
    lines = [
        ": keep-alive comment",
        "event: message_start",
        'data: {"type":"message_start"}',
        "",
        "event: ping",
        "data: {}",
        "",
        "data: first line",
        "data:second line",
        "",
        "",
        "data: [DONE]",
    ]
    events = await _events(lines)
    assert events == [
        SSEEvent("message_start", '{"type":"message_start"}'),
        SSEEvent("ping", "{}"),
        SSEEvent("message", "first line\nsecond line"),
        SSEEvent("message", "[DONE]"),  # dispatched at end of input without a blank line
    ]


async def test_sse_event_name_resets_between_events() -> None:
    events = await _events(["event: error", "data: {}", "", "data: x", ""])
    assert [e.event for e in events] == ["error", "message"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": {"message": "m", "type": "t"}}', {"message": "m", "type": "t"}),
        (
            b'[{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}]',
            {"code": 429, "status": "RESOURCE_EXHAUSTED"},
        ),
        ({"error": "plain text error"}, {"message": "plain text error"}),
        ('{"object": "error", "message": "m"}', {"object": "error", "message": "m"}),
        ("<html>502</html>", {}),
        ("", {}),
        (None, {}),
        ("[]", {}),
    ],
)
def test_error_object_shapes(body: object, expected: dict[str, object]) -> None:
    assert error_object(body) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "bogus", "retry-after": "3"}, 3.0),
        ({"retry-after": "Sun, 01 Mar 2026 12:00:45 GMT"}, 45.0),
        ({"retry-after": "Sun, 01 Mar 2026 11:00:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "later"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str] | None, expected: float | None) -> None:
    now = 1772366400.0  # 2026-03-01T12:00:00Z
    assert retry_after_seconds(headers, now) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7s", 7.0), ("1.5s", 1.5), ("0s", 0.0), ("7", None), (7, None), ("s", None), (None, None)],
)
def test_google_duration(value: object, expected: float | None) -> None:
    assert google_duration(value) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ErrorKind.BAD_REQUEST),
        (401, ErrorKind.AUTH),
        (402, ErrorKind.QUOTA),
        (403, ErrorKind.PERMISSION),
        (404, ErrorKind.NOT_FOUND),
        (408, ErrorKind.TIMEOUT),
        (409, ErrorKind.SERVER),
        (413, ErrorKind.BAD_REQUEST),
        (422, ErrorKind.BAD_REQUEST),
        (429, ErrorKind.RATE_LIMIT),
        (500, ErrorKind.SERVER),
        (502, ErrorKind.SERVER),
        (503, ErrorKind.OVERLOADED),
        (504, ErrorKind.SERVER),
        (529, ErrorKind.OVERLOADED),
        (599, ErrorKind.SERVER),
        (302, ErrorKind.BAD_RESPONSE),
    ],
)
def test_kind_for_status(status: int, kind: ErrorKind) -> None:
    assert kind_for_status(status) is kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (WireTimeout("connecting to h:443 took over 10 s"), ErrorKind.TIMEOUT),
        (WireTimeout("no response data for 60 s"), ErrorKind.TIMEOUT),
        (WireError("cannot connect to h:443: [Errno 111] Connection refused"), ErrorKind.NETWORK),
        (WireError("the server closed the connection mid-response"), ErrorKind.NETWORK),
        (WireError("malformed HTTP response: invalid constant string"), ErrorKind.NETWORK),
        (WireTLSError("TLS with h:443 failed: certificate verify failed"), ErrorKind.TLS),
        (
            WireError("ClientPayloadError: 400, message: Can not decode content-encoding: gzip"),
            ErrorKind.BAD_RESPONSE,
        ),
    ],
)
def test_transport_errors(exc: Exception, kind: ErrorKind) -> None:
    error = transport_error(exc, "p1")
    assert error.kind is kind
    assert error.provider == "p1"
    assert error.status is None


def test_clip_redacts_before_cutting() -> None:
    Secret(KEY)
    text = "a" * 95 + KEY
    clipped = clip(text, 100)
    assert KEY[:5] not in clipped
    assert clipped.startswith("a" * 95)
    assert clip("one\n  two") == "one two"


# ----------------------------------------------------------------- construction


def _config(**values: object) -> ProviderConfig:
    return ProviderConfig.model_validate(values)


@pytest.mark.parametrize(
    ("values", "cls", "base"),
    [
        ({"type": "openai", "model": "gpt-4.1"}, OpenAIProvider, "https://api.openai.com/v1"),
        (
            {
                "type": "openai-compatible",
                "model": "llama3",
                "base_url": "http://127.0.0.1:11434/v1/",
            },
            OpenAIProvider,
            "http://127.0.0.1:11434/v1",
        ),
        (
            {"type": "anthropic", "model": "claude-sonnet-4-5"},
            AnthropicProvider,
            "https://api.anthropic.com",
        ),
        (
            {"type": "google", "model": "gemini-2.5-pro"},
            GoogleProvider,
            "https://generativelanguage.googleapis.com",
        ),
        (
            {"type": "anthropic", "model": "m", "endpoint": "https://proxy.example/anthropic/"},
            AnthropicProvider,
            "https://proxy.example/anthropic",
        ),
    ],
)
def test_build_provider_by_type(values: dict[str, object], cls: type, base: str) -> None:
    provider = build_provider("p1", _config(**values))
    assert type(provider) is cls
    assert isinstance(provider, Provider)
    assert provider.id == "p1"
    assert provider.model == values["model"]
    assert provider.base_url == base  # type: ignore[attr-defined]


def test_openai_compatible_requires_base_url() -> None:
    # The type's config model requires it, so no adapter is ever built without one.
    with pytest.raises(ValidationError, match=r"endpoint\n\s+Field required"):
        _config(type="openai-compatible", model="m")


def test_http_types_require_a_model() -> None:
    with pytest.raises(ValidationError, match=r"model\n\s+Field required"):
        _config(type="google")


def test_local_without_module_is_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rolecall.providers.local", None)  # type: ignore[arg-type]
    with pytest.raises(MissingExtra) as info:
        build_provider("local", _config(type="local"))
    assert info.value.extra == "local"
    assert "rolecall[local]" in str(info.value)


def test_importing_providers_does_not_load_adapters() -> None:
    import subprocess

    code = (
        "import sys, rolecall.providers as p; "
        "print(any(m in sys.modules for m in "
        "('aiohttp', 'httptools', 'rolecall.providers.openai')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_client_is_lazy_pooled_and_reused() -> None:
    config = _config(
        type="openai",
        model="gpt-4.1",
        api_key=KEY,
        timeout="30s",
        max_concurrency=3,
        headers={"x-team": "blue"},
    )
    provider = build_provider("p1", config)
    assert isinstance(provider, OpenAIProvider)
    assert provider._client is None  # nothing opened before first use
    client = provider.client
    assert isinstance(client, WireClient)
    assert provider.client is client
    assert client.read_timeout == 30.0 and client.connect_timeout == 10.0
    assert client.limit == 3
    assert KEY not in repr(provider)
    await provider.aclose()
    assert provider._client is None and client.closed
    await provider.aclose()  # idempotent


def test_auth_headers_per_vendor() -> None:
    openai = build_provider(
        "o", _config(type="openai-compatible", model="m", base_url="http://h/v1")
    )
    assert isinstance(openai, OpenAIProvider)
    assert "Authorization" not in openai.auth_headers()  # no key configured: no header
    claude = build_provider("c", _config(type="anthropic", model="m", api_key=KEY))
    assert isinstance(claude, AnthropicProvider)
    assert claude.auth_headers() == {"anthropic-version": "2023-06-01", "x-api-key": KEY}
    gemini = build_provider("g", _config(type="google", model="models/gemini-2.5-pro", api_key=KEY))
    assert isinstance(gemini, GoogleProvider)
    assert gemini.auth_headers() == {"x-goog-api-key": KEY}
    assert gemini._model_url.endswith("/v1beta/models/gemini-2.5-pro")
    assert KEY not in gemini._model_url


async def test_short_timeout_bounds_connect() -> None:
    provider = build_provider("p", _config(type="openai", model="m", timeout="2s"))
    assert isinstance(provider, OpenAIProvider)
    assert isinstance(provider.client, WireClient)
    assert provider.client.connect_timeout == 2.0
    await provider.aclose()


async def test_max_concurrency_requests_share_one_pool_in_parallel() -> None:
    from rolecall.sim import SimServer

    with SimServer("openai", models=("m",), latency=0.3) as sim:
        config = _config(
            type="openai", model="m", api_key="test-key", base_url=sim.base_url, max_concurrency=64
        )
        provider = build_provider("p", config)
        assert isinstance(provider, OpenAIProvider)
        request = ChatRequest((Message("user", "hi"),))
        replies = await asyncio.gather(*(provider.complete(request) for _ in range(64)))
        assert {r.text for r in replies} == {sim.reply}
        # 64 calls of 0.3 s each on 64 connections: all held by the provider at once.
        assert sim.peak_in_flight == 64
        client = provider.client
        await provider.aclose()
        assert client.closed


async def test_requests_carry_the_key_configured_headers_and_no_compression() -> None:
    from rolecall.sim import SimServer

    with SimServer("openai", models=("m",)) as sim:
        config = _config(
            type="openai",
            model="m",
            api_key="test-key",
            base_url=sim.base_url,
            headers={"x-team": "blue"},
        )
        provider = build_provider("p", config)
        assert isinstance(provider, OpenAIProvider)
        await provider.complete(ChatRequest((Message("user", "hi"),)))
        await provider.aclose()
        headers = sim.requests[-1].headers
    assert headers["authorization"] == "Bearer test-key"
    assert headers["x-team"] == "blue"
    assert headers["accept-encoding"] == "identity"
    assert headers["user-agent"].startswith("rolecall/")
    assert headers["content-type"] == "application/json"
