"""Streamed tool calls from an OpenAI-compatible provider, through the Messages and Responses
doors: every argument arrives, in each protocol's event order, as the whole answer has it.

The sim interleaves the calls' argument pieces as vLLM may (call 0, call 1, call 0
again); the clients are the official SDKs and a raw reader of the events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from gateway_helpers import GATEWAY_KEY, PRIMARY_KEY, RunningGateway

from rolecall.sim import SimServer

CALLS = [
    {"id": "call_a", "name": "read_file", "arguments": {"path": "src/app/main.py", "lines": 40}},
    {"id": "call_b", "name": "grep", "arguments": {"pattern": "def main", "path": "src/"}},
]
ASK = [{"role": "user", "content": "Look around."}]
TOOLS = [
    {"name": "read_file", "input_schema": {"type": "object"}},
    {"name": "grep", "input_schema": {"type": "object"}},
]


@pytest.fixture
def gpt() -> Iterator[SimServer]:
    with SimServer("openai", api_key=PRIMARY_KEY, models=("gpt-sim",)) as sim:
        yield sim


@pytest.fixture
def gateway(
    tmp_path: Path, gpt: SimServer, start_gateway: Callable[..., RunningGateway]
) -> RunningGateway:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        f"""\
providers:
  o: {{type: openai, model: gpt-sim, base_url: "{gpt.base_url}", api_key: "{PRIMARY_KEY}"}}
roles:
  coder: {{provider: o}}
retry: {{max_attempts: 1}}
metrics: {{url: "sqlite:///{tmp_path}/rolecall.db", runs_dir: "{tmp_path}/runs"}}
gateway: {{keys: ["{GATEWAY_KEY}"]}}
"""
    )
    return start_gateway(path)


def answer_with(
    gpt: SimServer, calls: list[dict[str, Any]], interleave: bool, text: str = ""
) -> None:
    gpt.responder = lambda body: {
        "text": text,
        "tool_calls": calls,
        "interleave_tool_calls": interleave,
    }


def raw_events(gateway: RunningGateway, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The data of every server-sent event of a streamed answer, as sent."""
    with gateway.client().stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        return [
            json.loads(line[len("data: ") :])
            for line in response.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]


# Messages --------------------------------------------------------------------------------
MESSAGES_BODY = {"model": "coder", "max_tokens": 100, "messages": ASK, "tools": TOOLS}


def assert_anthropic_block_order(events: list[dict[str, Any]]) -> None:
    """Blocks one at a time, numbered in order; deltas only to the open block."""
    open_block: int | None = None
    started = 0
    for event in events:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_block is None, f"block {event['index']} starts inside {open_block}"
            assert event["index"] == started
            open_block, started = event["index"], started + 1
        elif kind == "content_block_delta":
            assert event["index"] == open_block, f"delta to block {event['index']}: {events}"
        elif kind == "content_block_stop":
            assert event["index"] == open_block
            open_block = None
    assert open_block is None


def sdk_message(gateway: RunningGateway, stream: bool) -> Any:
    client = anthropic.Anthropic(
        base_url=gateway.server.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20
    )
    if not stream:
        return client.messages.create(**MESSAGES_BODY)  # type: ignore[arg-type]
    with client.messages.stream(**MESSAGES_BODY) as events:  # type: ignore[arg-type]
        return events.get_final_message()


def tool_uses(message: Any) -> list[tuple[str, str, Any]]:
    return [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]


@pytest.mark.parametrize("interleave", [False, True])
def test_messages_stream_keeps_every_argument_of_interleaved_calls(
    gateway: RunningGateway, gpt: SimServer, interleave: bool
) -> None:
    answer_with(gpt, CALLS, interleave)
    events = raw_events(gateway, "/v1/messages", MESSAGES_BODY)
    assert_anthropic_block_order(events)
    # A client that takes a tool's input whole at its block's end has every argument.
    inputs: dict[int, str] = {}
    finished = []
    for event in events:
        if event["type"] == "content_block_delta":
            inputs[event["index"]] = inputs.get(event["index"], "") + event["delta"]["partial_json"]
        elif event["type"] == "content_block_stop":
            finished.append(json.loads(inputs[event["index"]]))
    assert finished == [call["arguments"] for call in CALLS]
    streamed = sdk_message(gateway, stream=True)
    expected = [(c["id"], c["name"], c["arguments"]) for c in CALLS]
    assert tool_uses(streamed) == expected == tool_uses(sdk_message(gateway, stream=False))


@pytest.mark.parametrize("arguments", ['{"path": "a.py"', "{'path': 'a.py'}", "[1, 2]"])
def test_messages_stream_keeps_arguments_that_are_not_a_json_object(
    gateway: RunningGateway, gpt: SimServer, arguments: str
) -> None:
    answer_with(gpt, [{"id": "call_a", "name": "read_file", "arguments": arguments}], False)
    whole = sdk_message(gateway, stream=False)
    streamed = sdk_message(gateway, stream=True)
    assert tool_uses(whole)[0][2] != {}  # kept, under "arguments"
    assert tool_uses(streamed) == tool_uses(whole)


# Responses -------------------------------------------------------------------------------
RESPONSES_TOOLS = [{"type": "function", "name": t["name"], "parameters": {}} for t in TOOLS]
RESPONSES_BODY = {"model": "coder", "input": "Look around.", "tools": RESPONSES_TOOLS}


def assert_responses_item_order(events: list[dict[str, Any]]) -> None:
    """Items one at a time, numbered in order; argument deltas only to the open item."""
    open_item: int | None = None
    added = 0
    for event in events:
        kind, index = event["type"], event.get("output_index")
        if kind == "response.output_item.added":
            assert open_item is None, f"item {index} added inside {open_item}"
            assert index == added
            open_item, added = index, added + 1
        elif kind == "response.output_item.done":
            assert index == open_item
            open_item = None
        elif index is not None:
            assert index == open_item, f"{kind} to item {index}, open: {open_item}"
    assert open_item is None


@pytest.mark.parametrize("interleave", [False, True])
def test_responses_stream_keeps_every_argument_of_interleaved_calls(
    gateway: RunningGateway, gpt: SimServer, interleave: bool
) -> None:
    answer_with(gpt, CALLS, interleave)
    events = raw_events(gateway, "/v1/responses", RESPONSES_BODY)
    assert_responses_item_order(events)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [json.loads(item["arguments"]) for item in done] == [c["arguments"] for c in CALLS]
    client = openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)
    with client.responses.stream(**RESPONSES_BODY) as stream:  # type: ignore[arg-type]
        final = stream.get_final_response()
    whole = client.responses.create(**RESPONSES_BODY)  # type: ignore[arg-type]
    expected = [(c["id"], c["name"], c["arguments"]) for c in CALLS]
    for response in (final, whole):
        calls = [(i.call_id, i.name, json.loads(i.arguments)) for i in response.output]
        assert calls == expected
