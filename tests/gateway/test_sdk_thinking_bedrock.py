"""Extended thinking with tools through the Messages door, to Claude on Bedrock.

The official anthropic SDK runs a whole tool loop against a real gateway over the Bedrock
sim, with thinking on: the sim signs each reasoningContent block and, as Claude on
Bedrock does, refuses a tool loop's follow-up whose assistant turn lost its reasoning or
carries a signature it never issued. So the gateway hands the client Bedrock's signature
(tagged ``bedrock:``), reads it back and sends the block first in the assistant turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import RunningGateway
from thinking_helpers import (
    ask,
    first_turn_headers,
    history,
    next_step,
    results_for,
    sdk,
    without_its_thinking,
    write_config,
)

from rolecall.sim import SimServer
from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID

SECRET = "sim-bedrock-gateway-thinking-secret"
MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"


def weather(body: dict[str, Any]) -> dict[str, Any]:
    """Think, then call get_weather for each city in turn, then answer."""
    results = [
        block
        for message in body["messages"]
        for block in message["content"]
        if "toolResult" in block
    ]
    return next_step(len(results))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SimServer]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with SimServer("bedrock", api_key=SECRET, models=()) as sim:
        sim.responder = weather
        yield sim


@pytest.fixture
def gateway(
    tmp_path: Path, aws: SimServer, start_gateway: Callable[..., RunningGateway]
) -> RunningGateway:
    providers = f"""\
        aws: {{type: bedrock, model: "{MODEL}", region: us-east-1, endpoint: "{aws.base_url}"}}
        """
    return start_gateway(write_config(tmp_path, providers, "coder: {provider: aws}\n"))


def replayed(sim: SimServer) -> list[dict[str, Any]]:
    """The assistant turn of the last Converse request."""
    body = sim.requests[-1].json
    assert isinstance(body, dict)
    content = body["messages"][1]["content"]
    assert isinstance(content, list)
    return content


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_loop_with_thinking_runs_to_its_answer(
    gateway: RunningGateway, aws: SimServer, stream: bool
) -> None:
    client = sdk(gateway)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]
    first = ask(client, messages, stream)
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    signature = first.content[0].signature
    assert signature.startswith("bedrock:")  # Bedrock's, tagged so the door reads it back
    messages += [
        {"role": "assistant", "content": history(first)},
        {"role": "user", "content": results_for(first)},
    ]
    second = ask(client, messages, stream)
    assert [block.type for block in second.content] == ["thinking", "tool_use"]
    assert second.content[1].input == {"city": "London"}
    signed = {"text": "I need the weather in Paris.", "signature": signature[len("bedrock:") :]}
    assert replayed(aws)[0] == {"reasoningContent": {"reasoningText": signed}}
    assert "toolUse" in replayed(aws)[1]
    messages += [
        {"role": "assistant", "content": history(second)},
        {"role": "user", "content": results_for(second)},
    ]
    third = ask(client, messages, stream)
    assert [block.type for block in third.content] == ["thinking", "text"]
    assert third.content[1].text == "Both are mild."
    assert third.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_redacted_reasoning_round_trips(
    gateway: RunningGateway, aws: SimServer, stream: bool
) -> None:
    def redacted(body: dict[str, Any]) -> dict[str, Any]:
        answer = weather(body)
        return {**answer, "reasoning": "[redacted] " + answer["reasoning"]}

    aws.responder = redacted
    client = sdk(gateway)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]
    first = ask(client, messages, stream)
    assert [block.type for block in first.content] == ["redacted_thinking", "tool_use"]
    data = first.content[0].data
    assert data.startswith("bedrock:")
    messages += [
        {"role": "assistant", "content": history(first)},
        {"role": "user", "content": results_for(first)},
    ]
    second = ask(client, messages, stream)
    assert second.content[-1].input == {"city": "London"}
    sealed = {"redactedContent": data[len("bedrock:") :]}
    assert replayed(aws)[0] == {"reasoningContent": sealed}


@pytest.mark.parametrize("stream", [False, True])
def test_a_turn_that_lost_its_thinking_is_answered_without_thinking(
    gateway: RunningGateway, aws: SimServer, stream: bool
) -> None:
    client = sdk(gateway)
    headers, kwargs = without_its_thinking(client, stream)
    assert headers["x-rolecall-thinking"] == "off"
    sent = aws.requests[-1].json
    assert isinstance(sent, dict)
    assert "thinking" not in sent.get("additionalModelRequestFields", {})
    assert "x-rolecall-thinking" not in first_turn_headers(client, kwargs)
