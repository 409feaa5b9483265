"""A credential written as is in a provider's ``headers`` is masked like an ``api_key``.

Only a header value read from a ``${VAR}`` was registered as a secret: a literal
``X-Api-Key`` or ``Authorization: Bearer ...`` that a server echoed in its error body
reached the error, the startup warning and every record as it was written.
"""

from __future__ import annotations

import asyncio
import json

from transport_servers import raw_server, read_request

from rolecall import _secrets
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ProviderError
from rolecall.providers.openai import OpenAIProvider
from rolecall.types import ChatRequest, Message

API_KEY_HEADER = "hdr-literal-api-key-7f3a"
BEARER_TOKEN = "hdr-literal-bearer-token-7f3a"
REQUEST = ChatRequest((Message("user", "hi"),))


async def echo_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that quotes the request's head, and the bearer token alone, in a 400."""
    head = (await read_request(reader)).decode("latin-1")
    token = head.rsplit("Bearer ", 1)[-1].split("\r\n", 1)[0]
    message = f"bad request: you sent {head!r}; token {token} is not valid here"
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
    writer.write(
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()


async def test_a_literal_credential_header_echoed_by_the_server_is_masked() -> None:
    with _secrets._scoped_registry():
        async with raw_server(echo_headers) as url:
            config = ProviderConfig(
                type="openai-compatible",
                model="m",
                base_url=f"{url}/v1",
                headers={"X-Api-Key": API_KEY_HEADER, "Authorization": f"Bearer {BEARER_TOKEN}"},
            )
            provider = OpenAIProvider("p", config)
            try:
                try:
                    await provider.complete(REQUEST)
                except ProviderError as exc:
                    shown = f"{exc} {exc!r} {exc.message}"
                else:
                    raise AssertionError("the server answered 400")
            finally:
                await provider.aclose()
    assert "bad request" in shown
    assert API_KEY_HEADER not in shown
    assert BEARER_TOKEN not in shown
    assert "***" in shown


def test_a_header_that_is_no_credential_is_not_masked() -> None:
    with _secrets._scoped_registry():
        ProviderConfig(
            type="openai-compatible",
            model="m",
            base_url="http://127.0.0.1:9/v1",
            headers={"X-Title": "my project title", "Authorization": "Bearer short"},
        )
        shown = _secrets.redact("my project title, Bearer of news")
    assert shown == "my project title, Bearer of news"
