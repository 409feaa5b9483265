"""A character outside the BMP whose JSON escape a provider split across two stream chunks
(``"a\\ud83d"`` then ``"\\ude00b"``: a server slicing UTF-16 text may) reaches every door's
streaming client whole, as the whole answer has it, not as two lone surrogates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import anthropic
import openai
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway, config_text

from raw_providers import ChatStreamProvider
from rolecall.sim import SimServer

SPLIT_PAIR = [
    {"choices": [{"index": 0, "delta": {"content": "a\ud83d"}}]},
    {"choices": [{"index": 0, "delta": {"content": "\ude00b"}}]},
    {"choices": [{"index": 0, "delta": {"content": " \ud83c"}}]},  # its low half last
    {"choices": [{"index": 0, "delta": {"content": "\udf89"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]
WHOLE = "a\U0001f600b \U0001f389"


@pytest.fixture
def gateway(
    config_path: Path, fallback: SimServer, start_gateway: Callable[..., RunningGateway]
) -> Iterator[RunningGateway]:
    provider = ChatStreamProvider(SPLIT_PAIR)
    try:
        stand_in = SimpleNamespace(base_url=provider.base_url)
        text = config_text(stand_in, fallback, tmp=config_path.parent)  # type: ignore[arg-type]
        config_path.write_text(text)
        yield start_gateway(config_path, offline=True)
    finally:
        provider.close()


def test_a_messages_stream_sends_the_character_whole(gateway: RunningGateway) -> None:
    client = anthropic.Anthropic(
        base_url=gateway.server.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20
    )
    ask = [{"role": "user", "content": "hi"}]
    with client.messages.stream(model="coder", max_tokens=50, messages=ask) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert "".join(pieces) == WHOLE
    assert message.content[0].type == "text" and message.content[0].text == WHOLE


def test_a_responses_stream_sends_the_character_whole(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)
    with client.responses.stream(model="coder", input="hi") as stream:
        pieces = [e.delta for e in stream if e.type == "response.output_text.delta"]
        response = stream.get_final_response()
    assert "".join(pieces) == WHOLE
    assert response.output_text == WHOLE


def test_a_chat_stream_sends_the_character_whole(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)
    chunks = client.chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == WHOLE
