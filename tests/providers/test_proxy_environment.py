"""Which provider calls the environment sends through a proxy, read as curl and requests
read ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from transport_servers import connect_proxy

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import make_client
from rolecall.providers._wire_proxy import ProxiedClient
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Message

PROXY = "http://proxy.example:3128"
VARIABLES = ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
VARIABLES += ("HTTPS_PROXY", "https_proxy", "REQUEST_METHOD")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


async def proxied(url: str) -> bool:
    config = ProviderConfig.model_validate(
        {"type": "openai-compatible", "model": "m", "base_url": url}
    )
    client = make_client(config, {}, url)
    await client.aclose()
    return isinstance(client, ProxiedClient)


@pytest.mark.parametrize(
    ("url", "no_proxy", "expected"),
    [
        # CIDR blocks, as curl (7.86+), requests and Go take them: a self-hosted server
        # on the corporate network is not sent to the internet proxy.
        ("http://10.1.2.3:8000/v1", "10.0.0.0/8", False),
        ("http://10.1.2.3:8000/v1", "192.168.0.0/16", True),
        ("http://[fd00::5]:8000/v1", "fd00::/8", False),
        # IPv6 addresses, with or without brackets
        ("http://[fd00::5]:8000/v1", "[fd00::5]", False),
        ("http://[fd00::5]:8000/v1", "fd00::5", False),
        ("http://[fd00::6]:8000/v1", "fd00::5", True),
        # a port: that port only (the URL's default port counts)
        ("http://vendor.example:8000/v1", "vendor.example:8000", False),
        ("http://vendor.example:9000/v1", "vendor.example:8000", True),
        ("https://vendor.example/v1", "vendor.example:443", False),
        # domains: as is, with a leading dot or "*.", never a mere suffix of a name
        ("https://api.vendor.example/v1", "vendor.example", False),
        ("https://api.vendor.example/v1", ".vendor.example", False),
        ("https://api.vendor.example/v1", "*.vendor.example", False),
        ("https://api.vendor.example/v1", "endor.example", True),
        ("https://API.Vendor.Example/v1", "vendor.example", False),
        # lists, spaces, "*"
        ("https://vendor.example/v1", "other.example, vendor.example", False),
        ("https://vendor.example/v1", "other.example vendor.example", False),
        ("https://vendor.example/v1", "other.example,*", False),
        ("https://vendor.example/v1", "", True),
        # loopback: never through a proxy for the internet
        ("http://127.0.0.2:11434/v1", "", False),
        ("http://[::1]:11434/v1", "", False),
        ("http://LOCALHOST:11434/v1", "", False),
        ("http://ollama.localhost:11434/v1", "", False),
        ("http://localhost.:11434/v1", "", False),
    ],
)
async def test_no_proxy_entries(
    env: pytest.MonkeyPatch, url: str, no_proxy: str, expected: bool
) -> None:
    env.setenv("HTTP_PROXY", PROXY)
    env.setenv("HTTPS_PROXY", PROXY)
    env.setenv("NO_PROXY", no_proxy)
    assert await proxied(url) is expected


@pytest.mark.parametrize(
    ("variables", "url", "expected"),
    [
        ({"HTTPS_PROXY": PROXY}, "https://vendor.example/v1", True),
        ({"HTTPS_PROXY": PROXY}, "http://vendor.example/v1", False),  # http has its own
        ({"HTTP_PROXY": PROXY}, "https://vendor.example/v1", False),
        ({"ALL_PROXY": PROXY}, "https://vendor.example/v1", True),
        ({"all_proxy": PROXY}, "http://vendor.example/v1", True),
        ({"https_proxy": PROXY, "no_proxy": "vendor.example"}, "https://vendor.example/v1", False),
    ],
)
async def test_which_variable_names_the_proxy(
    env: pytest.MonkeyPatch, variables: dict[str, str], url: str, expected: bool
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    assert await proxied(url) is expected


async def test_a_proxy_without_a_scheme_is_an_http_proxy(env: pytest.MonkeyPatch) -> None:
    """``HTTP_PROXY=proxy.corp:3128``, as curl, requests and httpx read it (every call
    failed with aiohttp's ``InvalidURL``)."""
    request = ChatRequest((Message("user", "hi"),))
    with SimServer("openai", models=("m",)) as sim:
        async with connect_proxy() as proxy:
            env.setenv("HTTP_PROXY", proxy.url.removeprefix("http://"))
            base_url = sim.base_url.replace("127.0.0.1", "vendor.example")
            config = ProviderConfig.model_validate(
                {"type": "openai", "model": "m", "api_key": "test-key", "base_url": base_url}
            )
            provider = build_provider("p", config)
            try:
                reply = await provider.complete(request)
            finally:
                await provider.aclose()
    assert reply.text == sim.reply
    assert proxy.heads and proxy.heads[0].startswith(b"POST http://vendor.example:")


async def test_a_socks_proxy_is_refused_by_name(env: pytest.MonkeyPatch) -> None:
    """aiohttp would speak HTTP to a SOCKS server: one line naming the variable instead,
    the proxy's password masked, not counted against the provider."""
    env.setenv("ALL_PROXY", "socks5h://user:pw-of-socks-77@127.0.0.1:1080")
    config = ProviderConfig.model_validate(
        {"type": "openai", "model": "m", "api_key": "k", "base_url": "https://vendor.example"}
    )
    provider = build_provider("p", config)
    with pytest.raises(ProviderError) as info:
        await provider.complete(ChatRequest((Message("user", "hi"),)))
    await provider.aclose()
    error = info.value
    assert error.kind is ErrorKind.BAD_REQUEST and not error.retryable
    assert "ALL_PROXY names a socks5h proxy" in error.message
    assert "pw-of-socks-77" not in error.message
