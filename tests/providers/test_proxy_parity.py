"""The direct client and the one used through a proxy, fault by fault: the same outcome.

Each reply is sent by a raw server; the proxied client reaches it as its plain-HTTP proxy
(the server answers the forwarded request itself), so both clients parse the same bytes.
An outcome is the status for an answer, else the error kind a provider would report.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib

import pytest
from transport_servers import raw_server, read_request

from rolecall.providers._errors import transport_error
from rolecall.providers._http import iter_lines, shared_ssl_context
from rolecall.providers._wire import HTTPClient, WireClient, WireError
from rolecall.providers._wire_proxy import ProxiedClient

OK = b"Content-Length: 2\r\n\r\nok"
SILENT = b"(nothing, until the client gives up)"


def _gzip(data: bytes) -> bytes:
    squeeze = zlib.compressobj(wbits=31)
    return squeeze.compress(data) + squeeze.flush()


REPLIES = {
    "answer": b"HTTP/1.1 200 OK\r\n" + OK,
    # A long header (a cookie, a gateway's trace) is no fault; aiohttp refused any over 8 KB.
    "a 20 KB header": b"HTTP/1.1 200 OK\r\nx-trace: " + b"t" * 20_000 + b"\r\n" + OK,
    "100 headers of 1 KB": b"HTTP/1.1 200 OK\r\n"
    + b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(100))
    + OK,
    "a head over 256 KB": b"HTTP/1.1 200 OK\r\nx-big: " + b"b" * (300 << 10) + b"\r\n" + OK,
    "interim 100 Continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + OK,
    "an odd status": b"HTTP/1.1 599 Odd\r\n" + OK,
    "a body ended by close": b"HTTP/1.0 200 OK\r\n\r\nall",
    "not HTTP": b"NOT HTTP AT ALL\r\n\r\n",
    "nothing": b"",
    "a body cut short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    "a bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "a gzip body": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_gzip(b"ok")), _gzip(b"ok")),
    "a bad gzip body": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok",
    "an unknown coding": b"HTTP/1.1 200 OK\r\nContent-Encoding: br2\r\nContent-Length: 2\r\n\r\nok",
    "silence": SILENT,
}
OUTCOMES = {
    "answer": "200",
    "a 20 KB header": "200",
    "100 headers of 1 KB": "200",
    "a head over 256 KB": "bad_response",
    "interim 100 Continue": "200",
    "an odd status": "599",
    "a body ended by close": "200",
    "not HTTP": "network",
    "nothing": "network",
    "a body cut short": "network",
    "a bad chunk size": "network",
    "two lengths": "network",
    "a gzip body": "200",
    "a bad gzip body": "bad_response",
    "an unknown coding": "bad_response",
    "silence": "timeout",
}


def _client(name: str, server: str) -> tuple[HTTPClient, str]:
    options = {
        "limit": 2,
        "connect_timeout": 2.0,
        "read_timeout": 0.5,
        "ssl_context": shared_ssl_context(),
    }
    if name == "direct":
        return WireClient({}, **options), f"{server}/v1/models"  # type: ignore[arg-type]
    proxied = ProxiedClient({}, proxy=server, proxy_variable="HTTP_PROXY", **options)  # type: ignore[arg-type]
    return proxied, "http://vendor.test/v1/models"


async def _outcome(name: str, reply: bytes) -> str:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await read_request(reader)
            if reply is SILENT:
                await reader.read()  # until the client closes
            writer.write(reply)
            await writer.drain()
        writer.close()

    async with raw_server(serve) as server:
        client, url = _client(name, server)
        try:
            response = await client.request("GET", url)
        except WireError as exc:
            return transport_error(exc, "p").kind.value
        finally:
            await client.aclose()
    assert response.body in (b"ok", b"all")
    return str(response.status)


@pytest.mark.parametrize("fault", list(REPLIES))
async def test_both_clients_give_the_same_outcome(fault: str) -> None:
    direct = await _outcome("direct", REPLIES[fault])
    proxied = await _outcome("proxied", REPLIES[fault])
    assert (direct, proxied) == (OUTCOMES[fault], OUTCOMES[fault])


@pytest.mark.parametrize("name", ["direct", "proxied"])
async def test_a_stream_line_over_32_mb_is_refused_by_both(name: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(33):
                writer.write(b"d" * (1 << 20))
                await writer.drain()
        writer.close()

    async with raw_server(serve) as server:
        client, url = _client(name, server)
        try:
            async with client.stream("GET", url, None) as response:
                with pytest.raises(WireError) as info:
                    async for _ in iter_lines(response.chunks()):
                        pass
        finally:
            await client.aclose()
    assert transport_error(info.value, "p").kind.value == "bad_response"
