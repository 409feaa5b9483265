"""Interleaved thinking through the Messages and Responses doors, streamed: Claude may
think again between two tool calls of one answer, so a thinking block ends (its signature
arrives) after a tool call has begun, while the door holds that call to send it whole.
The block keeps its signature, and the client sends it back signed.

The Anthropic sim writes a signed thinking block before the second call
(``thinking_between_calls``); the clients are the anthropic and openai SDKs' stream
accumulators.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway_helpers import GATEWAY_KEY, PRIMARY_KEY, RunningGateway
from thinking_helpers import WEATHER_TOOL, history, results_for, sdk, write_config

from rolecall.gateway._encrypted_reasoning import decode_blocks
from rolecall.sim import SimServer

CALLS = [
    {"id": "toolu_paris", "name": "get_weather", "arguments": {"city": "Paris"}},
    {"id": "toolu_london", "name": "get_weather", "arguments": {"city": "London"}},
]
KWARGS: dict[str, Any] = {
    "model": "coder",
    "max_tokens": 4096,
    "tools": [WEATHER_TOOL],
    "thinking": {"type": "enabled", "budget_tokens": 2048},
}
ASK: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]


def answer(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]["content"]
    if isinstance(last, list) and any(block.get("type") == "tool_result" for block in last):
        return {"text": "Both are mild.", "reasoning": "I have both."}
    return {
        "text": "",
        "tool_calls": CALLS,
        "reasoning": "Paris first.",
        "thinking_between_calls": ["Now London."],
    }


@pytest.fixture
def claude() -> Iterator[SimServer]:
    with SimServer("anthropic", api_key=PRIMARY_KEY, models=("claude-sim",)) as sim:
        sim.responder = answer
        yield sim


@pytest.fixture
def gateway(
    tmp_path: Path, claude: SimServer, start_gateway: Callable[..., RunningGateway]
) -> RunningGateway:
    providers = f"""\
        c: {{type: anthropic, model: claude-sim, base_url: "{claude.base_url}",
            api_key: "${{PRIMARY_KEY}}"}}
        """
    config = write_config(
        tmp_path, providers, "coder: {provider: c}\n", f"PRIMARY_KEY={PRIMARY_KEY}\n"
    )
    return start_gateway(config)


def test_a_thinking_block_ending_after_a_call_began_keeps_its_signature(
    gateway: RunningGateway, claude: SimServer
) -> None:
    client = sdk(gateway)
    with client.messages.stream(**KWARGS, messages=ASK) as events:
        message = events.get_final_message()
    blocks = [(block.type, getattr(block, "thinking", None)) for block in message.content]
    assert blocks == [
        ("thinking", "Paris first."),
        ("tool_use", None),
        ("thinking", "Now London."),
        ("tool_use", None),
    ]
    signatures = [block.signature for block in message.content if block.type == "thinking"]
    assert all(signatures), signatures
    # Sent back, both blocks reach the provider signed (an unsigned one would be left out).
    messages = [
        *ASK,
        {"role": "assistant", "content": history(message)},
        {"role": "user", "content": results_for(message)},
    ]
    final = client.messages.create(**KWARGS, messages=messages)
    assert final.content[-1].text == "Both are mild."
    replayed = claude.requests[-1].json["messages"][1]["content"]
    thinking = [block for block in replayed if block["type"] == "thinking"]
    assert [block["thinking"] for block in thinking] == ["Paris first.", "Now London."]
    assert all(block["signature"] for block in thinking)


def test_the_responses_stream_carries_each_block_in_its_own_item(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)
    tool: Any = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    with client.responses.stream(
        model="coder",
        input=ASK,
        tools=[tool],
        reasoning={"effort": "low"},
        include=["reasoning.encrypted_content"],
        store=False,
        max_output_tokens=4096,
    ) as events:
        output = events.get_final_response().output
    assert [item.type for item in output] == ["reasoning", "function_call"] * 2
    carried = [decode_blocks(item.encrypted_content or "") for item in output[::2]]
    assert [[block.text for block in blocks or ()] for blocks in carried] == [
        ["Paris first."],
        ["Now London."],
    ]
    assert all(block.signature for blocks in carried for block in blocks or ())
