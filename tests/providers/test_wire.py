"""The adapters' HTTP client against raw local servers: framing, timeouts, reuse, proxies."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from transport_servers import (
    event_loop_policy,  # noqa: F401  # a fixture: both loops
    raw_server,
    read_request,
)

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._errors import transport_error
from rolecall.providers._http import make_client, shared_ssl_context
from rolecall.providers._wire import WireClient, WireError, WireTimeout, WireTLSError
from rolecall.providers._wire_message import WireTooLarge
from rolecall.providers._wire_proxy import ProxiedClient
from rolecall.providers.openai import OpenAIProvider
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Message

# The override works across pytest-asyncio versions; newer ones only warn about it.
pytestmark = pytest.mark.filterwarnings(
    'ignore:Overriding the "event_loop_policy" fixture:pytest.PytestDeprecationWarning'
)


REQUEST = ChatRequest((Message("user", "hi"),))


def client(read_timeout: float = 5.0, limit: int = 4) -> WireClient:
    return WireClient(
        {"authorization": "Bearer k"},
        limit=limit,
        connect_timeout=2.0,
        read_timeout=read_timeout,
        ssl_context=shared_ssl_context(),
    )


async def test_body_delimited_by_close_and_repeated_headers() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nVia: a\r\nVia: b\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with raw_server(serve) as url:
        wire = client()
        response = await wire.request("GET", url + "/x")
        await wire.aclose()
    assert (response.status, response.body) == (200, b"all of it")
    assert response.headers["via"] == "a, b"


async def test_redirect_is_returned_not_followed() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 301 Moved\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()

    async with raw_server(serve) as url:
        wire = client()
        response = await wire.request("POST", url + "/v1/chat", b"{}")
        await wire.aclose()
    assert response.status == 301 and response.headers["location"] == "http://elsewhere/"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed HTTP response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "closed the connection"),
        (b"", "closed the connection"),
    ],
)
async def test_broken_responses_are_wire_errors(reply: bytes, message: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    async with raw_server(serve) as url:
        wire = client()
        with pytest.raises(WireError) as info:
            await wire.request("GET", url + "/")
        await wire.aclose()
    assert message in str(info.value) and not isinstance(info.value, WireTimeout)


async def test_a_reset_during_a_body_delimited_by_close_is_an_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart of it")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN: the body was cut, not finished

    async with raw_server(serve) as url:
        wire = client()
        with pytest.raises(WireError, match="mid-response"):
            await wire.request("GET", url + "/")
        await wire.aclose()


async def test_a_silent_server_times_out_per_read() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()
        await asyncio.sleep(5)

    async with raw_server(serve) as url:
        wire = client(read_timeout=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(WireTimeout, match=r"no response data for 0\.2 s"):
            await wire.request("GET", url + "/")
        assert loop.time() - started < 2
        await wire.aclose()


async def test_a_large_streamed_body_arrives_whole_while_read_slowly() -> None:
    piece = b"data: " + b"x" * 1000 + b"\n\n"
    count = 600  # ~600 KB: above the client's read buffer, so reading pauses and resumes

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(count):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(serve) as url:
        wire = client()
        received = b""
        async with wire.stream("POST", url + "/", b"{}") as response:
            assert response.status == 200
            async for chunk in response.chunks():
                received += chunk
                await asyncio.sleep(0)
        await wire.aclose()
    assert received == piece * count


async def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        WireClient(
            {"x-key": "a\r\nx-injected: 1"},
            limit=1,
            connect_timeout=1,
            read_timeout=1,
            ssl_context=shared_ssl_context(),
        )


async def test_nothing_listening_is_a_network_error_naming_the_address() -> None:
    config = ProviderConfig.model_validate(
        {"type": "openai-compatible", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    )
    provider = build_provider("p", config)
    with pytest.raises(ProviderError) as info:
        await provider.complete(REQUEST)  # type: ignore[attr-defined]
    await provider.aclose()
    assert info.value.kind is ErrorKind.NETWORK
    assert "cannot connect to 127.0.0.1:9" in info.value.message


# --------------------------------------------------------------------------- proxies


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A plain HTTP forward proxy (absolute-form requests), one request per connection."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
        seen.append(target)
        length = 0
        lines = [b"connection: close"]
        for line in head.split(b"\r\n")[1:]:
            name = line.split(b":", 1)[0].lower()
            if name == b"content-length":
                length = int(line.split(b":")[1])
            if line and name not in (b"connection", b"proxy-connection"):
                lines.append(line)
        body = await reader.readexactly(length)
        host_port, _, path = target.removeprefix(b"http://").partition(b"/")
        _, _, port = host_port.partition(b":")
        # Every name resolves to this machine: the proxy, not the client, looks hosts up.
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
        up_writer.write(b"%s /%s HTTP/1.1\r\n" % (method, path) + b"\r\n".join(lines) + b"\r\n\r\n")
        up_writer.write(body)
        await up_writer.drain()
        writer.write(await up_reader.read())
        await writer.drain()
        up_writer.close()
        writer.close()

    async with raw_server(serve) as url:
        yield url, seen


async def test_a_proxy_from_the_environment_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with SimServer("openai", models=("m",)) as sim:
        async with forward_proxy() as (proxy_url, seen):
            for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            # A name only the proxy can resolve, as for a vendor behind a corporate proxy.
            base_url = sim.base_url.replace("127.0.0.1", "vendor.example")
            config = ProviderConfig.model_validate(
                {"type": "openai", "model": "m", "api_key": "test-key", "base_url": base_url}
            )
            provider = build_provider("p", config)
            assert isinstance(provider, OpenAIProvider)
            assert isinstance(provider.client, ProxiedClient)
            reply = await provider.complete(REQUEST)
            streamed = "".join([chunk.text async for chunk in provider.stream(REQUEST)])
            await provider.aclose()
    assert reply.text == streamed == sim.reply
    assert seen == [f"{base_url}/chat/completions".encode()] * 2


@pytest.mark.parametrize(
    ("url", "no_proxy", "proxied"),
    [
        ("http://vendor.example/v1", "", True),
        ("http://vendor.example/v1", "vendor.example", False),
        ("http://127.0.0.1:11434/v1", "", False),  # loopback servers are never proxied
        ("http://localhost:8000/v1", "", False),
    ],
)
async def test_which_providers_go_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch, url: str, no_proxy: str, proxied: bool
) -> None:
    for name in ("no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    config = ProviderConfig.model_validate(
        {"type": "openai-compatible", "model": "m", "base_url": url}
    )
    wire = make_client(config, {}, url)
    assert isinstance(wire, ProxiedClient) is proxied
    await wire.aclose()


async def test_tls_with_the_server_name_and_a_verified_certificate() -> None:
    import ssl

    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    names: list[str | None] = []

    def remember_name(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    server_context.sni_callback = remember_name  # type: ignore[assignment]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    try:
        wire = WireClient({}, limit=1, connect_timeout=2, read_timeout=2, ssl_context=trusting)
        # "localhost" resolves to 127.0.0.1 and names the certificate's host.
        response = await wire.request("GET", f"https://localhost:{port}/")
        await wire.aclose()
        untrusted = client()  # certifi's roots do not know the test authority
        with pytest.raises(WireTLSError, match="certificate verify failed"):
            await untrusted.request("GET", f"https://localhost:{port}/")
        await untrusted.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert response.body == b"secure"
    assert names[0] == "localhost"


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"],
)
async def test_informational_responses_before_the_answer_are_skipped(interim: bytes) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # a whole answer, then a streamed one, on the kept-alive connection
            await read_request(reader)
            writer.write(interim * 2)
            await writer.drain()
            await asyncio.sleep(0.05)  # the answer in a later read than the 1xx heads
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nx-real: yes\r\n\r\nanswer")
            await writer.drain()

    async with raw_server(serve) as url:
        wire = client()
        response = await wire.request("POST", url + "/v1/chat", b"{}")
        async with wire.stream("POST", url + "/v1/chat", b"{}") as streamed:
            body = await streamed.read()
        await wire.aclose()
    assert (response.status, response.body) == (streamed.status, body) == (200, b"answer")
    assert response.headers["x-real"] == "yes" and "link" not in response.headers


async def test_a_head_that_never_ends_is_refused_at_once() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (1 << 20))  # 1 MB, still no end
        await writer.drain()
        await asyncio.sleep(5)

    async with raw_server(serve) as url:
        wire = client(read_timeout=4)
        # Refused as too large, not ended by the read timeout (a WireTimeout).
        with pytest.raises(WireTooLarge, match="the response's head is over 256 KB"):
            await wire.request("GET", url + "/")
        await wire.aclose()


def _serve_64_mb_and_more(framing: bytes) -> Any:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + framing + b"Connection: close\r\n\r\n")
        piece = bytes(1 << 20)
        with contextlib.suppress(ConnectionError):
            for _ in range(64):  # and one byte more
                writer.write(piece)
                await writer.drain()
            writer.write(b"x")
            await writer.drain()
        writer.close()

    return serve


@pytest.mark.parametrize("framing", [b"Content-Length: %d\r\n" % ((64 << 20) + 1), b""])
async def test_a_body_over_64_mb_is_refused(framing: bytes) -> None:
    async with raw_server(_serve_64_mb_and_more(framing)) as url:
        wire = client()
        with pytest.raises(WireTooLarge, match="the response body is over 64 MB"):
            await wire.request("GET", url + "/")
        await wire.aclose()
    error = transport_error(WireTooLarge("the response body is over 64 MB"), "p")
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_a_body_over_64_mb_through_a_proxy_is_refused() -> None:
    # The server plays a plain-HTTP proxy: it answers the forwarded request itself.
    framing = b"Content-Length: %d\r\n" % ((64 << 20) + 1)
    async with raw_server(_serve_64_mb_and_more(framing)) as url:
        proxied = ProxiedClient(
            {},
            proxy=url,
            proxy_variable="HTTP_PROXY",
            limit=4,
            connect_timeout=5.0,
            read_timeout=5.0,
            ssl_context=shared_ssl_context(),
        )
        with pytest.raises(WireTooLarge, match="the response body is over 64 MB"):
            await proxied.request("GET", "http://vendor.test/v1/models")
        await proxied.aclose()
