"""Kept-alive connections: reused while the server keeps them, and a request never sent twice.

A request written to a connection may have reached the server's application, which may
be working on it (a paid call): when the connection then fails, the client reports it
(a ``network`` error, the router decides) instead of sending the request again itself.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from transport_servers import (
    event_loop_policy,  # noqa: F401  # a fixture: both loops
    raw_server,
    read_request,
)

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import shared_ssl_context
from rolecall.providers._wire import WireClient, WireError
from rolecall.sim import Fault, SimServer
from rolecall.types import ChatRequest, Message

pytestmark = pytest.mark.filterwarnings(
    'ignore:Overriding the "event_loop_policy" fixture:pytest.PytestDeprecationWarning'
)

REQUEST = ChatRequest((Message("user", "hi"),))
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def client(limit: int = 1) -> WireClient:
    return WireClient(
        {}, limit=limit, connect_timeout=2.0, read_timeout=5.0, ssl_context=shared_ssl_context()
    )


def hang_up(writer: asyncio.StreamWriter, how: str) -> None:
    if how == "reset":  # RST, not FIN
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


async def test_connections_are_kept_alive_and_stale_ones_replaced() -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(2):  # two requests per connection, then the server hangs up
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(OK)
            await writer.drain()
        writer.close()

    async with raw_server(serve) as url:
        wire = client(limit=1)
        for _ in range(5):
            assert (await wire.request("GET", url + "/")).body == b"ok"
            await asyncio.sleep(0.01)  # lets the client see a hang-up before the next request
        await wire.aclose()
    assert connections == 3


async def test_a_connection_the_server_closed_after_answering_is_not_reused() -> None:
    """A server closing after each response without saying so: its close can still be
    unread by the event loop when the next request goes; the request takes a new
    connection instead, and every call succeeds, sent once."""
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await read_request(reader)
        requests += 1
        writer.write(OK)
        await writer.drain()
        writer.close()

    async with raw_server(serve) as url:
        wire = client(limit=1)
        bodies = [(await wire.request("POST", url + "/", b"{}")).body for _ in range(200)]
        await wire.aclose()
    assert bodies == [b"ok"] * 200
    assert requests == 200  # each sent once to a server that read it


async def test_a_reused_connection_cut_mid_response_is_not_sent_again() -> None:
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await read_request(reader)
        requests += 1
        writer.write(OK)
        await read_request(reader)
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart")
        await writer.drain()
        writer.close()

    async with raw_server(serve) as url:
        wire = client(limit=1)
        assert (await wire.request("POST", url + "/", b"{}")).body == b"ok"
        with pytest.raises(WireError, match="mid-response"):
            await wire.request("POST", url + "/", b"{}")
        await wire.aclose()
    assert requests == 2


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("read", ["whole", "streamed"])
async def test_a_request_the_server_read_is_not_sent_again_when_it_hangs_up(
    how: str, read: str
) -> None:
    """The second request reaches the server, which hangs up without answering (it
    crashed, a balancer cut it): on a reused connection, with no byte of response,
    like a connection closed while idle, but the server may have done the work."""
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        for _ in range(2):
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            requests += 1
            if requests == 2:
                hang_up(writer, how)
                return
            writer.write(OK)
            await writer.drain()

    async with raw_server(serve) as url:
        wire = client()
        assert (await wire.request("POST", url + "/", b"{}")).body == b"ok"
        with pytest.raises(WireError, match="closed the connection without responding"):
            if read == "whole":
                await wire.request("POST", url + "/", b"{}")
            else:
                async with wire.stream("POST", url + "/", b"{}") as response:
                    await response.read()
        await wire.aclose()
    assert requests == 2


async def test_a_reset_after_the_request_is_a_network_error_for_the_router() -> None:
    with SimServer("openai", models=("m",)) as sim:
        config = ProviderConfig.model_validate(
            {"type": "openai", "model": "m", "api_key": "test-key", "base_url": sim.base_url}
        )
        provider = build_provider("p", config)
        await provider.complete(REQUEST)
        sim.script(Fault("reset"))  # the next call, on the kept-alive connection
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
        await provider.aclose()
        calls = sim.calls
    assert info.value.kind is ErrorKind.NETWORK and info.value.retryable
    assert calls == 2
