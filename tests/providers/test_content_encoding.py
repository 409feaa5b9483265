"""A server that compresses although asked for ``identity``: bodies and streams decoded."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator

import pytest
from transport_servers import raw_server, read_request

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import shared_ssl_context
from rolecall.providers._wire import WireClient, WireError
from rolecall.providers._wire_message import WireTooLarge, decoded
from rolecall.types import ChatRequest, Message

REQUEST = ChatRequest((Message("user", "hi"),))


def compress(data: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":  # zlib-wrapped, as the RFC says
        return zlib.compress(data)
    if coding == "raw-deflate":  # what some servers send as "deflate"
        squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return squeeze.compress(data) + squeeze.flush()
    raise AssertionError(coding)


def header(coding: str) -> bytes:
    return b"deflate" if coding == "raw-deflate" else coding.encode()


def client() -> WireClient:
    return WireClient(
        {}, limit=2, connect_timeout=2, read_timeout=5, ssl_context=shared_ssl_context()
    )


CODINGS = ["gzip", "deflate", "raw-deflate"]


@pytest.mark.parametrize("coding", CODINGS)
async def test_a_compressed_body_is_decoded(coding: str) -> None:
    body = b'{"text": "' + b"caf\xc3\xa9 " * 2000 + b'"}'
    packed = compress(body, coding)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # the connection stays usable after a decoded body
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (header(coding), len(packed), packed)
            )
            await writer.drain()

    async with raw_server(serve) as url:
        wire = client()
        first = await wire.request("GET", url + "/")
        second = await wire.request("GET", url + "/")
        await wire.aclose()
    assert first.body == second.body == body


@pytest.mark.parametrize("coding", CODINGS)
async def test_a_compressed_stream_is_decoded_as_it_arrives(coding: str) -> None:
    events = b"".join(b'data: {"n": %d}\n\n' % n for n in range(300))
    packed = compress(events, coding)
    pieces = [packed[i : i + 7] for i in range(0, len(packed), 7)]  # cut anywhere

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Encoding: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % header(coding)
        )
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(serve) as url:
        wire = client()
        async with wire.stream("POST", url + "/", b"{}") as response:
            received = [chunk async for chunk in response.chunks()]
        await wire.aclose()
    assert b"".join(received) == events
    assert len(received) > 1  # decoded piece by piece, not at the end


@pytest.mark.parametrize(
    ("coding", "payload", "message"),
    [
        (b"br", b"\x0b\x02\x80hi\x03", "unsupported content-encoding: br"),
        (b"gzip", b"not gzip at all", "cannot decode content-encoding gzip"),
        (b"gzip", gzip.compress(b"x" * 1000)[:-12], "ended early"),
        # 70 KB that inflates to 70 MB: read no further than the body limit (64 MB), whether
        # it comes in one read or several.
        (b"gzip", gzip.compress(bytes(70 << 20)), "(response body is over|inflates past) 64 MB"),
    ],
    ids=["unsupported", "corrupt", "truncated", "bomb"],
)
async def test_an_undecodable_body_is_a_bad_response(
    coding: bytes, payload: bytes, message: str
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (coding, len(payload), payload)
        )
        await writer.drain()

    async with raw_server(serve) as url:
        wire = client()
        with pytest.raises(WireError, match=message):
            await wire.request("GET", url + "/")
        await wire.aclose()
        config = ProviderConfig.model_validate(
            {"type": "openai", "model": "m", "api_key": "k", "base_url": url + "/v1"}
        )
        provider = build_provider("p", config)
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)  # type: ignore[attr-defined]
        await provider.aclose()
    assert info.value.kind is ErrorKind.BAD_RESPONSE


@pytest.mark.parametrize("stream", [False, True])
async def test_the_adapter_reads_a_gzipped_answer(stream: bool) -> None:
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "zipped"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    delta = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "zipped"}, "finish_reason": None}],
    }
    end = {**delta, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if stream:
        body = b"".join(b"data: %s\n\n" % json.dumps(e).encode() for e in (delta, end))
        body += b"data: [DONE]\n\n"
        kind = b"text/event-stream"
    else:
        body, kind = json.dumps(completion).encode(), b"application/json"
    packed = gzip.compress(body)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (kind, len(packed), packed)
        )
        await writer.drain()

    async with raw_server(serve) as url:
        config = ProviderConfig.model_validate(
            {"type": "openai", "model": "m", "api_key": "k", "base_url": url + "/v1"}
        )
        provider = build_provider("p", config)
        if stream:
            text = "".join([c.text async for c in provider.stream(REQUEST)])  # type: ignore[attr-defined]
        else:
            text = (await provider.complete(REQUEST)).text  # type: ignore[attr-defined]
        await provider.aclose()
    assert text == "zipped"


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_one_read_that_inflates_past_the_limit_is_refused(coding: str) -> None:
    # 200 MB of zeros compress to ~200 KB, one read's worth: refused before the 200 MB exist.
    zeros = bytes(200 << 20)
    payload = gzip.compress(zeros, 9) if coding == "gzip" else zlib.compress(zeros, 9)
    del zeros

    async def one_read() -> AsyncIterator[bytes]:
        yield payload

    with pytest.raises(WireTooLarge, match=f"the {coding} body inflates past 64 MB in one read"):
        async for _ in decoded(one_read(), coding):
            pass


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"429 Too Many Requests\r\nRetry-After: 7", ErrorKind.RATE_LIMIT),
        (b"401 Unauthorized", ErrorKind.AUTH),
        (b"503 Service Unavailable", ErrorKind.OVERLOADED),
    ],
)
@pytest.mark.parametrize("coding", [b"gzip", b"deflate"])
async def test_an_empty_body_in_a_content_coding_keeps_its_status(
    head: bytes, kind: ErrorKind, coding: bytes
) -> None:
    """A body of no bytes is empty in any coding (a proxy labels its empty error
    answers ``gzip``): the status still says what went wrong."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 %s\r\nContent-Encoding: %s\r\nContent-Length: 0\r\n\r\n" % (head, coding)
        )
        await writer.drain()

    async with raw_server(serve) as url:
        config = ProviderConfig.model_validate(
            {"type": "openai", "model": "m", "api_key": "k", "base_url": url + "/v1"}
        )
        provider = build_provider("p", config)
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
        await provider.aclose()
    assert info.value.kind is kind
