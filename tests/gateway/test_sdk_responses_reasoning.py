"""Reasoning round trips through the Responses door, as Codex CLI and the openai SDK with
``store: false`` run a tool loop: they ask for ``include: ["reasoning.encrypted_content"]``
and send the previous turns' ``reasoning`` items back in ``input``.

The Anthropic sim signs each thinking block and, as Anthropic does, wants a tool loop's
follow-up to start its assistant turn with that signed block; the Gemini sim signs each
function call. The gateway hands the signed reasoning out as the item's
``encrypted_content`` and reads it back into the assistant turn it precedes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway_helpers import GATEWAY_KEY, PRIMARY_KEY, RunningGateway
from thinking_helpers import next_step, write_config

from rolecall.gateway._encrypted_reasoning import MARK
from rolecall.sim import SimServer

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
ASK: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]


def weather(body: dict[str, Any]) -> dict[str, Any]:
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


def sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)


def ask(
    client: openai.OpenAI, items: list[Any], stream: bool, include: bool = True
) -> tuple[list[dict[str, Any]], Any]:
    """One request of the loop: its output items as a client keeps them (a stream's from
    each ``output_item.done``, as Codex CLI reads them), and the answer's headers."""
    kwargs: dict[str, Any] = {
        "model": "coder",
        "input": items,
        "tools": [WEATHER_TOOL],
        "reasoning": {"effort": "low"},
        "store": False,
        "max_output_tokens": 4096,
    }
    if include:
        kwargs["include"] = ["reasoning.encrypted_content"]
    if not stream:
        raw = client.responses.with_raw_response.create(**kwargs)
        output = raw.parse().output
        return [item.model_dump(exclude_none=True) for item in output], raw.headers
    with client.responses.with_streaming_response.create(**kwargs, stream=True) as raw:
        done = [e for e in raw.parse() if e.type == "response.output_item.done"]
        return [event.item.model_dump(exclude_none=True) for event in done], raw.headers


def results_for(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": "function_call_output", "call_id": item["call_id"], "output": '{"t": 18}'}
        for item in output
        if item["type"] == "function_call"
    ]


def sent_messages(sim: SimServer) -> list[dict[str, Any]]:
    body = sim.requests[-1].json
    assert isinstance(body, dict)
    messages: list[dict[str, Any]] = body["messages"]
    return messages


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_loop_keeps_its_signed_thinking(
    gateway: RunningGateway, claude: SimServer, stream: bool
) -> None:
    client = sdk(gateway)
    items = list(ASK)
    first, _ = ask(client, items, stream)
    assert [item["type"] for item in first] == ["reasoning", "function_call"]
    assert first[0]["content"][0]["text"] == "I need the weather in Paris."
    assert first[0]["encrypted_content"]
    items += first + results_for(first)
    second, headers = ask(client, items, stream)
    assert "x-rolecall-thinking" not in headers
    assert claude.requests[-1].json["thinking"]["type"] == "enabled"
    # The provider got turn one's thinking back first in its turn, signature and all.
    replayed = sent_messages(claude)[1]["content"]
    assert [block["type"] for block in replayed] == ["thinking", "tool_use"]
    assert replayed[0]["thinking"] == "I need the weather in Paris."
    assert replayed[0]["signature"]
    assert [item["type"] for item in second] == ["reasoning", "function_call"]
    items += second + results_for(second)
    third, _ = ask(client, items, stream)
    assert [item["type"] for item in third] == ["reasoning", "message"]
    assert third[1]["content"][0]["text"] == "Both are mild."
    assert sent_messages(claude)[3]["content"][0]["signature"]


@pytest.mark.parametrize("stream", [False, True])
def test_without_encrypted_content_the_follow_up_says_thinking_was_off(
    gateway: RunningGateway, claude: SimServer, stream: bool
) -> None:
    """OpenAI hands out no encrypted_content unless asked: the reasoning item sent back
    holds text no vendor takes, and the answer says thinking went off for it."""
    client = sdk(gateway)
    first, headers = ask(client, list(ASK), stream, include=False)
    assert "encrypted_content" not in first[0]
    assert "x-rolecall-thinking" not in headers
    _, headers = ask(client, [*ASK, *first, *results_for(first)], stream, include=False)
    assert headers["x-rolecall-thinking"] == "off"
    assert "thinking" not in claude.requests[-1].json


@pytest.mark.parametrize(
    "damage",
    [
        lambda content: content[:-7],
        # JSON nested deeper than any parser follows, behind our mark: a client's forgery
        lambda content: MARK + base64.urlsafe_b64encode(b"[" * 100_000).decode(),
    ],
    ids=["cut", "nested"],
)
def test_damaged_encrypted_content_is_a_400_naming_the_item(
    gateway: RunningGateway, claude: SimServer, damage: Callable[[str], str]
) -> None:
    client = sdk(gateway)
    first, _ = ask(client, list(ASK), stream=False)
    first[0]["encrypted_content"] = damage(first[0]["encrypted_content"])
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, [*ASK, *first, *results_for(first)], stream=False)
    assert "input[1].encrypted_content is damaged" in caught.value.message
    assert claude.calls == 1


@pytest.mark.parametrize(
    ("effort", "max_output_tokens", "budget"),
    [("medium", 4096, 2048), ("high", 8000, 4000), ("low", 1500, 1024), ("medium", 1025, 1024)],
)
def test_an_effort_whose_budget_does_not_fit_is_capped_under_max_output_tokens(
    gateway: RunningGateway, claude: SimServer, effort: str, max_output_tokens: int, budget: int
) -> None:
    """Anthropic refuses a thinking budget that is not below max_tokens: the effort's budget
    (medium 4096, high 16384) is capped at half of max_output_tokens, 1024 at least."""
    raw = sdk(gateway).responses.with_raw_response.create(
        model="coder",
        input=ASK,
        reasoning={"effort": effort},  # type: ignore[typeddict-item]
        max_output_tokens=max_output_tokens,
    )
    assert raw.parse().output[0].type == "reasoning"
    assert "x-rolecall-thinking" not in raw.headers
    sent = claude.requests[-1].json
    assert sent["max_tokens"] == max_output_tokens
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}


@pytest.mark.parametrize("stream", [False, True])
def test_max_output_tokens_too_small_for_any_budget_answers_without_thinking(
    gateway: RunningGateway, claude: SimServer, stream: bool
) -> None:
    """Anthropic's smallest budget is 1024 and must stay below max_tokens: with no room the
    answer comes without thinking, and says so."""
    kwargs: Any = {
        "model": "coder",
        "input": ASK,
        "reasoning": {"effort": "low"},
        "max_output_tokens": 1024,
    }
    if stream:
        with sdk(gateway).responses.with_streaming_response.create(**kwargs, stream=True) as raw:
            assert b"response.completed" in raw.read()
            headers = raw.headers
    else:
        raw = sdk(gateway).responses.with_raw_response.create(**kwargs)
        assert raw.parse().status == "completed"
        headers = raw.headers
    assert headers["x-rolecall-thinking"] == "off"
    assert "thinking" not in claude.requests[-1].json


SUMMARY_EVENTS = [
    "response.output_item.added",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_summary_part.done",
    "response.output_item.done",
]


@pytest.mark.parametrize("stream", [False, True])
def test_a_summary_asked_for_is_the_providers_thinking(
    gateway: RunningGateway, stream: bool
) -> None:
    """Codex CLI shows a reasoning item's summary, not its raw text: asked for one, the
    item's summary is the provider's thinking (Claude's is a summary already), streamed
    with OpenAI's summary events."""
    kwargs: Any = {
        "model": "coder",
        "input": ASK,
        "tools": [WEATHER_TOOL],
        "reasoning": {"effort": "low", "summary": "auto"},
        "max_output_tokens": 4096,
    }
    if stream:
        with sdk(gateway).responses.stream(**kwargs) as events:
            seen = [event for event in events if getattr(event, "output_index", None) == 0]
            response = events.get_final_response()
        assert [event.type for event in seen] == SUMMARY_EVENTS
        deltas = [event.delta for event in seen if event.type.endswith("text.delta")]
        assert "".join(deltas) == "I need the weather in Paris."
        assert seen[3].text == "I need the weather in Paris."  # type: ignore[union-attr]
        assert seen[4].part.text == "I need the weather in Paris."  # type: ignore[union-attr]
        assert seen[1].summary_index == 0  # type: ignore[union-attr]
    else:
        response = sdk(gateway).responses.create(**kwargs)
    item = response.output[0]
    assert item.type == "reasoning"
    assert [(part.type, part.text) for part in item.summary] == [
        ("summary_text", "I need the weather in Paris.")
    ]
    assert response.reasoning is not None and response.reasoning.summary == "auto"


def test_an_unknown_summary_is_a_400_naming_it(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).responses.create(
            model="coder",
            input=ASK,
            reasoning={"summary": "verbose"},  # type: ignore[typeddict-item]
        )
    assert "reasoning.summary" in caught.value.message


@pytest.mark.parametrize("effort", ["xhigh", "max"])
def test_openais_efforts_above_high_think_on_highs_budget(
    gateway: RunningGateway, claude: SimServer, effort: str
) -> None:
    """Codex CLI set to xhigh (or the SDK's max) reaches Claude as high's budget, not a 400."""
    answer = sdk(gateway).responses.create(
        model="coder",
        input=ASK,
        reasoning={"effort": effort},  # type: ignore[typeddict-item]
    )
    assert answer.output[0].type == "reasoning"
    assert claude.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 16384}


def test_a_roles_max_tokens_with_no_room_for_thinking_says_thinking_off(
    tmp_path: Path, claude: SimServer, start_gateway: Callable[..., RunningGateway]
) -> None:
    """The role's params are merged into the call: a role's max_tokens that leaves no room
    for any budget turns thinking off, and the answer says so as for the request's own."""
    providers = f"""\
        c: {{type: anthropic, model: claude-sim, base_url: "{claude.base_url}",
            api_key: "${{PRIMARY_KEY}}"}}
        """
    roles = "coder: {provider: c, params: {max_tokens: 1024}}\n"
    config = write_config(tmp_path, providers, roles, f"PRIMARY_KEY={PRIMARY_KEY}\n")
    raw = sdk(start_gateway(config)).responses.with_raw_response.create(
        model="coder", input=ASK, reasoning={"effort": "low"}
    )
    assert raw.parse().status == "completed"
    assert "thinking" not in claude.requests[-1].json
    assert raw.headers["x-rolecall-thinking"] == "off"
