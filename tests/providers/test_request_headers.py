"""Headers computed per request (a signature, a refreshed token) reach the vendor on
every call, whole and streamed, beside the provider's fixed ones; one that cannot be
sent is an ``auth`` error naming the header and nothing is sent."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers.openai import OpenAIProvider
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Message

REQUEST = ChatRequest((Message("user", "hi"),))
KEY = "sk-fixed-key"


class SigningProvider(OpenAIProvider):
    """An OpenAI-protocol adapter that signs each call with a counter and the URL it saw."""

    per_request_headers = True

    def __init__(self, provider_id: str, config: ProviderConfig) -> None:
        super().__init__(provider_id, config)
        self.calls = 0
        self.token = "t"

    async def request_headers(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        self.calls += 1
        return {"x-signature": f"{self.token}{self.calls} {method} {url} {len(body or b'')}"}


def provider(server: SimServer) -> SigningProvider:
    config = ProviderConfig(type="openai", model="sim-model", api_key=KEY, base_url=server.base_url)
    return SigningProvider("signed", config)


async def test_each_call_carries_its_own_headers_whole_and_streamed() -> None:
    with SimServer("openai", api_key=KEY, reply="hello") as server:
        adapter = provider(server)
        try:
            assert (await adapter.complete(REQUEST)).text == "hello"
            assert "".join([c.text async for c in adapter.stream(REQUEST)]) == "hello"
            await adapter.check_credentials()
        finally:
            await adapter.aclose()
        signatures = [r.headers.get("x-signature", "") for r in server.requests]
    assert [s.split(" ")[0] for s in signatures] == ["t1", "t2", "t3"]
    first_call = signatures[0].split(" ")
    assert first_call[1:3] == ["POST", f"{server.base_url}/chat/completions"]
    assert int(first_call[3]) > 0  # the body it signs
    assert signatures[2].split(" ")[1:3] == ["GET", f"{server.base_url}/models"]
    assert all(r.api_key == KEY for r in server.requests)


async def test_a_header_that_cannot_be_sent_is_an_auth_error_and_nothing_is_sent() -> None:
    with SimServer("openai", api_key=KEY, reply="hello") as server:
        adapter = provider(server)
        adapter.token = "bad\r\nx-injected: 1 "
        try:
            with pytest.raises(ProviderError) as raised:
                await adapter.complete(REQUEST)
        finally:
            await adapter.aclose()
        assert server.requests == []
    assert raised.value.kind is ErrorKind.AUTH
    assert "x-signature" in str(raised.value) and "injected" not in str(raised.value)
