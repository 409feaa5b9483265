"""Vendor keys never reach a proxy on their own: not in a CONNECT request, not as proxy auth.

Through ``HTTPS_PROXY`` the proxy only tunnels bytes: it must not see the key in any form
(``Authorization``, ``x-api-key``, ``x-goog-api-key``, nor as ``Proxy-Authorization``).
Through ``HTTP_PROXY`` to a plain-HTTP base URL the proxy relays the whole request, key
included, by necessity; the key must still not be offered as the proxy's own credentials.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from transport_servers import connect_proxy, test_authority, tls_front

from rolecall.config.schema import ProviderConfig
from rolecall.providers import build_provider
from rolecall.providers._http import shared_ssl_context
from rolecall.providers._wire_proxy import ProxiedClient
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Message

KEY = "sk-proxy-secret-5f1e09c4"
HOST = "vendor.example"  # not loopback, so the proxy settings apply; resolved by the proxy
REQUEST = ChatRequest((Message("user", "hi"),))
VENDORS = ("openai", "anthropic", "google")


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    shared_ssl_context.cache_clear()
    yield monkeypatch
    shared_ssl_context.cache_clear()


def key_forms() -> list[bytes]:
    """The key as it could appear on the wire: as is, or base64 in Basic credentials."""
    raw = KEY.encode()
    forms = [raw]
    for text in (raw, b":" + raw, raw + b":"):
        forms.append(base64.b64encode(text).rstrip(b"="))
    return forms


def assert_no_key(heads: list[bytes]) -> None:
    assert heads, "the proxy saw no request"
    for head in heads:
        for form in key_forms():
            assert form not in head, head
        assert b"proxy-authorization" not in head.lower(), head


async def call_through(vendor: str, base_url: str) -> None:
    config = ProviderConfig.model_validate(
        {"type": vendor, "model": "m", "api_key": KEY, "base_url": base_url}
    )
    provider = build_provider("p", config)
    try:
        assert isinstance(provider.client, ProxiedClient)  # type: ignore[attr-defined]
        reply = await provider.complete(REQUEST)
        streamed = "".join([chunk.text async for chunk in provider.stream(REQUEST)])
    finally:
        await provider.aclose()
    assert reply.text == streamed and reply.text


@pytest.mark.parametrize("vendor", VENDORS)
async def test_the_https_proxy_never_sees_the_key(
    vendor: str, proxy_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    authority = test_authority(tmp_path, HOST)
    proxy_env.setenv("SSL_CERT_FILE", str(authority.ca_file))
    with SimServer(vendor, api_key=KEY, models=("m",)) as sim:  # type: ignore[arg-type]
        async with (
            tls_front(sim.port, authority.server_context) as port,
            connect_proxy() as proxy,
        ):
            proxy_env.setenv("HTTPS_PROXY", proxy.url)
            base_url = sim.base_url.replace(sim.root_url, f"https://{HOST}:{port}")
            await call_through(vendor, base_url)
        requests = list(sim.requests)
    assert_no_key(proxy.heads)
    assert all(head.startswith(b"CONNECT ") for head in proxy.heads)
    assert requests and all(KEY in str(request.headers) for request in requests)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_plain_http_proxy_is_not_sent_the_key_as_its_credentials(
    vendor: str, proxy_env: pytest.MonkeyPatch
) -> None:
    with SimServer(vendor, api_key=KEY, models=("m",)) as sim:  # type: ignore[arg-type]
        async with connect_proxy() as proxy:
            proxy_env.setenv("HTTP_PROXY", proxy.url)
            base_url = sim.base_url.replace("127.0.0.1", HOST)
            await call_through(vendor, base_url)
    assert proxy.heads
    for head in proxy.heads:
        assert b"proxy-authorization" not in head.lower(), head
        # The vendor's own header, which a plain-HTTP proxy relays by necessity, only once.
        assert head.count(KEY.encode()) == 1, head
