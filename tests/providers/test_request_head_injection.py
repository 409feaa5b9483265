"""No URL, model name, key or header can change the shape of the request sent.

A path is percent-encoded where a character may not stand in a request line; a URL
with a control character is refused; a key or header value with a line break (or any
control character) and a header name that is not a token are clear errors naming the
header, never its value, and nothing is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from transport_servers import raw_server, read_request

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import shared_ssl_context
from rolecall.providers._wire import WireClient, WireRequestError
from rolecall.types import ChatRequest, Message

REQUEST = ChatRequest((Message("user", "hi"),))
KEY = "sk-head-secret-0c7d"


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """Answers every request 404 (JSON); yields its URL and the request heads it read."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                heads.append(await read_request(reader))
                body = b'{"error": {"message": "no such model"}}'
                writer.write(
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async with raw_server(serve) as url:
        yield url, heads


def target(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0].split(b" ")[1]


def client() -> WireClient:
    return WireClient(
        {}, limit=1, connect_timeout=2, read_timeout=5, ssl_context=shared_ssl_context()
    )


async def test_a_path_is_percent_encoded_where_it_must_be() -> None:
    async with recording_server() as (url, heads):
        wire = client()
        await wire.request("GET", url + "/models/my model/caf\u00e9:x", params={"a": "b c"})
        await wire.request("GET", url + "/already%20escaped/a@b;c=d")
        await wire.aclose()
    assert [target(h) for h in heads] == [
        b"/models/my%20model/caf%C3%A9:x?a=b+c",
        b"/already%20escaped/a@b;c=d",
    ]


@pytest.mark.parametrize("url", ["/a\r\nx-injected: 1", "/a\nb", "/a\tb", "/a\x00b"])
async def test_a_url_with_a_control_character_is_refused(url: str) -> None:
    async with recording_server() as (base, heads):
        wire = client()
        with pytest.raises(WireRequestError, match="control character"):
            await wire.request("GET", base + url)
        await wire.aclose()
    assert heads == []


async def test_a_model_name_cannot_change_the_request_target() -> None:
    async with recording_server() as (url, heads):
        config = ProviderConfig.model_validate(
            {"type": "google", "model": "my model?alt=x#frag\r\n", "api_key": KEY, "base_url": url}
        )
        provider = build_provider("p", config)
        with pytest.raises(ProviderError):
            await provider.complete(REQUEST)  # type: ignore[attr-defined]
        await provider.aclose()
    assert [target(h) for h in heads] == [
        b"/v1beta/models/my%20model%3Falt%3Dx%23frag%0D%0A:generateContent"
    ]


def provider_config(vendor: str, url: str, **values: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"type": vendor, "model": "m", "api_key": KEY, "base_url": url, **values}
    )


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("bad", ["\n", "\r\nx-injected: 1", "\x00", "\u2028x"])
async def test_a_key_that_cannot_be_sent_is_an_auth_error_and_nothing_is_sent(
    vendor: str, bad: str
) -> None:
    async with recording_server() as (url, heads):
        provider = build_provider("p", provider_config(vendor, url, api_key=KEY + bad))
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)  # type: ignore[attr-defined]
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert "API key cannot be sent" in info.value.message
    assert KEY not in info.value.message
    assert heads == []


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"x-team": "blue\r\nx-injected: 1"}, "line break"),
        ({"x team": "blue"}, "not a valid header name"),
        ({"x-team:": "blue"}, "not a valid header name"),
        ({"x-team": "bl\u00fc\u20ac"}, "not Latin-1"),
    ],
)
async def test_a_configured_header_that_cannot_be_sent_is_a_bad_request(
    headers: dict[str, str], problem: str
) -> None:
    async with recording_server() as (url, heads):
        provider = build_provider("p", provider_config("openai", url, headers=headers))
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)  # type: ignore[attr-defined]
        await provider.aclose()
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert problem in info.value.message and "providers.p.headers" in info.value.message
    assert heads == []


async def test_through_a_proxy_a_key_that_cannot_be_sent_is_an_auth_error_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # never reached
    config = provider_config("anthropic", "https://vendor.example", api_key=KEY + "\r\nx: 1")
    provider = build_provider("p", config)
    with pytest.raises(ProviderError) as info:
        await provider.complete(REQUEST)  # type: ignore[attr-defined]
    await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH and KEY not in info.value.message
