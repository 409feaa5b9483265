"""A tool loop through the Messages door to Gemini 3, which signs its function calls.

The official anthropic SDK runs the loop against a real gateway over the Gemini sim: the
sim signs each call and refuses a signature it never issued. The gateway hands the
client the call's signature as a thinking block signed ``gemini:...``, and a client that
sends its blocks back has the model's own signature reach Gemini, not the stand-in. A
client that did not ask for thinking gets no thinking block (Anthropic's API sends none
then), and the follow-up carries the stand-in Google documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import PRIMARY_KEY, RunningGateway
from thinking_helpers import ask as ask_sdk
from thinking_helpers import sdk, write_config

from rolecall.sim import SimServer

STAND_IN = "skip_thought_signature_validator"


def weather(body: dict[str, Any]) -> dict[str, Any]:
    """Think and call get_weather, then answer once the result is in."""
    last = body["contents"][-1]["parts"]
    if any("functionResponse" in part for part in last):
        return {"text": "It is mild.", "reasoning": "I have it."}
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "", "tool_calls": [call], "reasoning": "I need the weather."}


@pytest.fixture
def gemini() -> Iterator[SimServer]:
    with SimServer("google", api_key=PRIMARY_KEY) as sim:
        sim.models = ()  # every model exists
        sim.responder = weather
        yield sim


@pytest.fixture
def gateway(
    tmp_path: Path, gemini: SimServer, start_gateway: Callable[..., RunningGateway]
) -> RunningGateway:
    providers = f"""\
        g: {{type: google, model: gemini-3-pro-preview, base_url: "{gemini.base_url}",
            api_key: "${{PRIMARY_KEY}}"}}
        """
    roles = "coder: {provider: g}\n"
    return start_gateway(write_config(tmp_path, providers, roles, f"PRIMARY_KEY={PRIMARY_KEY}\n"))


def ask(gateway: RunningGateway, messages: list[Any], stream: bool, thinking: bool = True) -> Any:
    return ask_sdk(sdk(gateway), messages, stream, thinking)


@pytest.mark.parametrize("stream", [False, True])
def test_the_call_signature_round_trips_through_the_messages_door(
    gateway: RunningGateway, gemini: SimServer, stream: bool
) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = ask(gateway, messages, stream)
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    assert first.content[0].thinking == "I need the weather."
    signature = first.content[0].signature
    assert signature.startswith("gemini:")
    (use,) = [block for block in first.content if block.type == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": use.id, "content": json.dumps({"temp": 18})}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    second = ask(gateway, messages, stream)
    assert second.content[-1].text == "It is mild."
    sent = gemini.requests[-1].json
    assert isinstance(sent, dict)
    (call_part,) = [p for p in sent["contents"][1]["parts"] if "functionCall" in p]
    assert call_part["thoughtSignature"] == signature.removeprefix("gemini:")
    assert call_part["thoughtSignature"] != STAND_IN


@pytest.mark.parametrize("stream", [False, True])
def test_without_thinking_the_call_signature_stays_out_of_the_answer(
    gateway: RunningGateway, gemini: SimServer, stream: bool
) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = ask(gateway, messages, stream, thinking=False)
    assert [block.type for block in first.content] == ["tool_use"]
    (use,) = first.content
    result = {"type": "tool_result", "tool_use_id": use.id, "content": json.dumps({"temp": 18})}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    second = ask(gateway, messages, stream, thinking=False)
    assert [block.type for block in second.content] == ["text"]
    assert second.content[0].text == "It is mild."
    sent = gemini.requests[-1].json
    assert isinstance(sent, dict)
    (call_part,) = [p for p in sent["contents"][1]["parts"] if "functionCall" in p]
    assert call_part["thoughtSignature"] == STAND_IN
