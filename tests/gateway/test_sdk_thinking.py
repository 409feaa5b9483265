"""Extended thinking with tools through the Messages door, to an Anthropic-protocol provider.

The official anthropic SDK runs a whole tool loop against a real gateway over the
Anthropic sim, with thinking on: the sim signs each thinking block and, as Anthropic
does, refuses a tool loop's follow-up whose assistant turn lost its thinking block or
carries a signature it never issued. So the gateway must hand the client real
signatures and send the signed blocks back first in the assistant turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import FALLBACK_KEY, PRIMARY_KEY, RunningGateway
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


def weather(body: dict[str, Any]) -> dict[str, Any]:
    """Think, then call get_weather for each city in turn, then answer."""
    results = [
        block
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    return next_step(len(results))


@pytest.fixture
def claude() -> Iterator[SimServer]:
    with SimServer("anthropic", api_key=PRIMARY_KEY, models=("claude-sim",)) as sim:
        sim.responder = weather
        yield sim


@pytest.fixture
def gpt() -> Iterator[SimServer]:
    with SimServer("openai", api_key=FALLBACK_KEY, models=("gpt-sim",), reply="from gpt") as s:
        yield s


def thinking_config(tmp_path: Path, claude: SimServer, gpt: SimServer) -> Path:
    providers = f"""\
        c: {{type: anthropic, model: claude-sim, base_url: "{claude.base_url}",
            api_key: "${{PRIMARY_KEY}}"}}
        o: {{type: openai, model: gpt-sim, base_url: "{gpt.base_url}",
            api_key: "${{FALLBACK_KEY}}"}}
        """
    roles = "coder: {provider: c}\nother: {provider: o}\n"
    env = f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\n"
    return write_config(tmp_path, providers, roles, env)


@pytest.fixture
def gateway(
    tmp_path: Path,
    claude: SimServer,
    gpt: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> RunningGateway:
    return start_gateway(thinking_config(tmp_path, claude, gpt))


def sent_messages(sim: SimServer) -> list[dict[str, Any]]:
    body = sim.requests[-1].json
    assert isinstance(body, dict)
    messages = body["messages"]
    assert isinstance(messages, list)
    return messages


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_loop_with_thinking_runs_to_its_answer(
    gateway: RunningGateway, claude: SimServer, stream: bool
) -> None:
    client = sdk(gateway)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]
    first = ask(client, messages, stream)
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    assert first.content[0].signature  # a real signature, not ""
    messages += [
        {"role": "assistant", "content": history(first)},
        {"role": "user", "content": results_for(first)},
    ]
    second = ask(client, messages, stream)
    assert [block.type for block in second.content] == ["thinking", "tool_use"]
    assert second.content[1].input == {"city": "London"}
    # The provider got turn one's thinking back first in its turn, signature and all.
    replayed = sent_messages(claude)[1]["content"]
    assert replayed[0] == {
        "type": "thinking",
        "thinking": "I need the weather in Paris.",
        "signature": first.content[0].signature,
    }
    assert replayed[1]["type"] == "tool_use"
    messages += [
        {"role": "assistant", "content": history(second)},
        {"role": "user", "content": results_for(second)},
    ]
    third = ask(client, messages, stream)
    assert [block.type for block in third.content] == ["thinking", "text"]
    assert third.content[1].text == "Both are mild."
    assert third.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_a_turn_that_lost_its_thinking_is_answered_without_thinking(
    gateway: RunningGateway, claude: SimServer, stream: bool
) -> None:
    """A client that drops thinking blocks (or a turn another vendor wrote) still gets its
    answer: that one request goes without thinking, and a header says so."""
    client = sdk(gateway)
    headers, kwargs = without_its_thinking(client, stream)
    assert headers["x-rolecall-thinking"] == "off"
    assert "thinking" not in claude.requests[-1].json
    assert "x-rolecall-thinking" not in first_turn_headers(client, kwargs)


@pytest.mark.parametrize("stream", [False, True])
def test_redacted_thinking_round_trips(
    gateway: RunningGateway, claude: SimServer, stream: bool
) -> None:
    def redacted(body: dict[str, Any]) -> dict[str, Any]:
        answer = weather(body)
        return {**answer, "reasoning": "[redacted] " + answer["reasoning"]}

    claude.responder = redacted
    client = sdk(gateway)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]
    first = ask(client, messages, stream)
    assert [block.type for block in first.content] == ["redacted_thinking", "tool_use"]
    messages += [
        {"role": "assistant", "content": history(first)},
        {"role": "user", "content": results_for(first)},
    ]
    second = ask(client, messages, stream)
    assert second.content[-1].input == {"city": "London"}
    assert sent_messages(claude)[1]["content"][0] == {
        "type": "redacted_thinking",
        "data": first.content[0].data,
    }
