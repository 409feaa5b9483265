"""A proxy that refuses, asks for credentials, drops the tunnel or is down: a ``network``
failure naming the proxy (its password masked) and the variable to fix, never the
provider's key or model, so the provider is not marked unavailable."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import Iterator

import pytest
from transport_servers import raw_server, read_request

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Message

REQUEST = ChatRequest((Message("user", "hi"),))
PASSWORD = "proxy-pw-41c7"
PROXY_AUTH = b"Basic " + base64.b64encode(f"alice:{PASSWORD}".encode())
ASK = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=corp\r\n"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def answering(reply: bytes) -> object:
    """A proxy that answers every request (CONNECT or forwarded) with ``reply``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await read_request(reader)
            writer.write(reply)
            await writer.drain()
        writer.close()

    return serve


async def failure(vendor_url: str, stream: bool = False) -> ProviderError:
    config = ProviderConfig.model_validate(
        {"type": "openai", "model": "m", "api_key": "sk-vendor", "base_url": vendor_url}
    )
    provider = build_provider("p", config)
    try:
        with pytest.raises(ProviderError) as info:
            if stream:
                async for _ in provider.stream(REQUEST):
                    pass
            else:
                await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    return info.value


# https: the proxy answers the CONNECT; http: the forwarded request itself.
TARGETS = [
    ("HTTPS_PROXY", "https://vendor.example:8443/v1"),
    ("HTTP_PROXY", "http://vendor.example:8080/v1"),
]


@pytest.mark.parametrize(("variable", "vendor_url"), TARGETS)
@pytest.mark.parametrize("credentials", ["", f"alice:{PASSWORD}@"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_407_names_the_proxy_and_the_variable(
    env: pytest.MonkeyPatch, variable: str, vendor_url: str, credentials: str, stream: bool
) -> None:
    async with raw_server(answering(ASK + b"Content-Length: 0\r\n\r\n")) as proxy_url:
        env.setenv(variable, proxy_url.replace("http://", f"http://{credentials}"))
        error = await failure(vendor_url, stream)
    port = proxy_url.rpartition(":")[2]
    assert error.kind is ErrorKind.NETWORK and not error.retryable  # same answer next time
    assert not error.kind.disables_provider and error.status is None
    assert (
        f"the proxy http://{'alice:***@' if credentials else ''}127.0.0.1:{port}" in error.message
    )
    assert f"({variable}) asks for credentials (407 Proxy Authentication Required)" in error.message
    fix = "check the user and password in" if credentials else "put user:password@ before"
    assert fix in error.message and PASSWORD not in str(error)


@pytest.mark.parametrize(
    ("reply", "said", "retryable"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403 Forbidden", False),
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "502 Bad Gateway", True),
    ],
)
async def test_a_refused_tunnel_names_the_proxy_and_the_host(
    env: pytest.MonkeyPatch, reply: bytes, said: str, retryable: bool
) -> None:
    async with raw_server(answering(reply)) as proxy_url:
        env.setenv("HTTPS_PROXY", proxy_url.replace("http://", f"http://alice:{PASSWORD}@"))
        error = await failure("https://vendor.example:8443/v1")
    assert error.kind is ErrorKind.NETWORK and error.retryable is retryable
    assert f"(HTTPS_PROXY) refused to reach vendor.example:8443 ({said})" in error.message
    assert PASSWORD not in str(error) and not error.kind.disables_provider


async def test_the_right_credentials_pass(env: pytest.MonkeyPatch) -> None:
    """The proxy's credentials go to it as ``Proxy-Authorization``, percent-decoded."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if b"proxy-authorization: " + PROXY_AUTH.lower() not in head.lower():
            writer.write(ASK + b"Content-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        _, _, port = head.split(b" ")[1].removeprefix(b"http://").partition(b"/")[0].partition(b":")
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", int(port))
        path = b"/" + head.split(b" ")[1].removeprefix(b"http://").partition(b"/")[2]
        lines = [line for line in head.split(b"\r\n")[1:] if line]
        lines = [line for line in lines if not line.lower().startswith(b"connection:")]
        lines.append(b"connection: close")  # the answer ends with the connection
        forwarded = b"POST " + path + b" HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
        upstream_writer.write(forwarded + await reader.readexactly(_body_length(head)))
        await upstream_writer.drain()
        writer.write(await upstream_reader.read())
        await writer.drain()
        upstream_writer.close()
        writer.close()

    with SimServer("openai", models=("m",)) as sim:
        async with raw_server(serve) as proxy_url:
            quoted = PASSWORD.replace("-", "%2D")  # percent-encoded in the URL
            env.setenv("HTTP_PROXY", proxy_url.replace("http://", f"http://alice:{quoted}@"))
            config = ProviderConfig.model_validate(
                {
                    "type": "openai",
                    "model": "m",
                    "api_key": "test-key",
                    "base_url": sim.base_url.replace("127.0.0.1", "vendor.example"),
                }
            )
            provider = build_provider("p", config)
            try:
                reply = await provider.complete(REQUEST)
            finally:
                await provider.aclose()
    assert reply.text == sim.reply and len(seen) == 1


def _body_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


async def test_a_tunnel_closed_at_once_is_a_network_failure(env: pytest.MonkeyPatch) -> None:
    async with raw_server(answering(b"HTTP/1.1 200 Connection established\r\n\r\n")) as url:
        env.setenv("HTTPS_PROXY", url)
        error = await failure("https://vendor.example:8443/v1")
    assert error.kind is ErrorKind.NETWORK and error.retryable


async def test_a_proxy_that_is_down_is_a_network_failure(env: pytest.MonkeyPatch) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # closed again: nothing listens there
    env.setenv("HTTPS_PROXY", f"http://alice:{PASSWORD}@127.0.0.1:{port}")
    error = await failure("https://vendor.example:8443/v1")
    assert error.kind is ErrorKind.NETWORK and error.retryable
    assert PASSWORD not in str(error)
