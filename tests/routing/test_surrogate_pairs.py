"""A character whose surrogate pair a provider's stream split between two chunks reaches a
stream's reader whole, as the whole answer has it (the gateway's doors: tests/gateway)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raw_providers import ChatStreamProvider
from rolecall.config.schema import RolecallConfig
from rolecall.routing._surrogates import PairJoiner, paired
from rolecall.routing.router import Router
from rolecall.types import Chunk, ToolCallDelta

SPLIT_PAIR = [
    {"choices": [{"index": 0, "delta": {"content": "a\ud83d"}}]},
    {"choices": [{"index": 0, "delta": {"content": "\ude00b"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]
WHOLE = "a\U0001f600b"


@pytest.fixture
def provider() -> Iterator[ChatStreamProvider]:
    server = ChatStreamProvider(SPLIT_PAIR)
    yield server
    server.close()


def _config(provider: ChatStreamProvider) -> dict[str, object]:
    return {
        "providers": {
            "p": {"type": "openai-compatible", "model": "m", "base_url": provider.base_url}
        },
        "roles": {"coder": {"provider": "p"}},
    }


async def test_a_stream_gives_the_character_whole(provider: ChatStreamProvider) -> None:
    config = RolecallConfig.model_validate(_config(provider))
    async with (
        Router(config, check_credentials=False) as router,
        router.stream("coder", "hi") as stream,
    ):
        pieces = [piece async for piece in stream]
    assert pieces and all(piece.encode() for piece in pieces)  # each piece encodes alone
    assert "".join(pieces) == WHOLE == stream.reply.text


def test_a_half_with_no_other_half_goes_out_alone_and_in_order() -> None:
    pairs = PairJoiner()
    sent = [
        *pairs.feed(Chunk(reasoning="hm\ud83d")),
        *pairs.feed(Chunk(text="x\ud83d")),
        *pairs.feed(Chunk(tool_calls=(ToolCallDelta(0, "c0", "f", "{}"),))),
        *pairs.feed(Chunk(text="y\udbff")),
        *pairs.rest(),
    ]
    out = [(c.reasoning, c.text, len(c.tool_calls)) for c in sent]
    assert [piece for piece in out if piece != ("", "", 0)] == [
        ("hm", "", 0),
        ("\ud83d", "", 0),
        ("", "x", 0),
        ("", "\ud83d", 0),
        ("", "", 1),
        ("", "y", 0),
        ("", "\udbff", 0),
    ]


def test_a_whole_answer_from_chunks_has_the_character() -> None:
    assert paired("a\ud83d\ude00b \ud83d") == "a\U0001f600b \ud83d"
