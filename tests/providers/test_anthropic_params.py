"""Each OpenAI-format parameter, as the Anthropic sim receives it from the real adapter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from anthropic_helpers import KEY, WEATHER_TOOL, config, last_body

from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer

ASK = [{"role": "user", "content": "Weather in Paris?"}]
TOOLS = [WEATHER_TOOL]


@pytest.fixture(scope="module")
def _server() -> Iterator[SimServer]:
    server = SimServer("anthropic", api_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def sim(_server: SimServer) -> SimServer:
    _server.clear()
    _server.reset_stats()
    _server.responder = None
    return _server


async def _sent(sim: SimServer, params: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    async with Router(config(sim)) as router:
        if stream:
            _ = [text async for text in router.stream("agent", ASK, params=params)]
        else:
            await router.complete("agent", ASK, params=params)
    return last_body(sim)


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
async def test_tool_choice(sim: SimServer, choice: Any, sent: dict[str, Any]) -> None:
    body = await _sent(sim, {"tools": TOOLS, "tool_choice": choice})
    assert body["tool_choice"] == sent
    assert [tool["name"] for tool in body["tools"]] == ["get_weather"]


async def test_tools_take_anthropics_shape(sim: SimServer) -> None:
    body = await _sent(sim, {"tools": TOOLS}, stream=True)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert "tool_choice" not in body


async def test_parallel_tool_calls_false_disables_parallel_use(sim: SimServer) -> None:
    body = await _sent(sim, {"tools": TOOLS, "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = await _sent(
        sim, {"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False}
    )
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
async def test_reasoning_effort_is_a_thinking_budget(
    sim: SimServer, effort: str, budget: int
) -> None:
    body = await _sent(sim, {"reasoning_effort": effort})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == budget + 4096  # room for the answer beyond the budget


async def test_reasoning_effort_none_sends_no_thinking(sim: SimServer) -> None:
    # Thinking is off unless asked for: none is Anthropic's default, a temperature included.
    body = await _sent(sim, {"reasoning_effort": "none", "temperature": 0.2})
    assert "thinking" not in body
    assert body["max_tokens"] == 4096 and body["temperature"] == 0.2


async def test_reasoning_effort_minimal_is_the_least_budget(sim: SimServer) -> None:
    body = await _sent(sim, {"reasoning_effort": "minimal"})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("effort", ["xhigh", "max"])
async def test_openais_efforts_above_high_are_highs_budget(sim: SimServer, effort: str) -> None:
    # OpenAI's newest efforts (Codex CLI's xhigh): Claude's most, as the Messages door maps them.
    body = await _sent(sim, {"reasoning_effort": effort})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert body["max_tokens"] == 16384 + 4096


async def test_an_unknown_reasoning_effort_names_the_values_taken(sim: SimServer) -> None:
    with pytest.raises(AllProvidersFailed) as failed:
        await _sent(sim, {"reasoning_effort": "extreme"})
    [error] = failed.value.errors
    assert error.kind is ErrorKind.BAD_REQUEST
    assert "none, minimal, low, medium, high, xhigh or max" in error.message
    assert sim.calls == 0


@pytest.mark.parametrize(
    ("effort", "max_tokens", "budget"),
    [("medium", 4096, 2048), ("high", 3000, 1500), ("medium", 1500, 1024), ("low", 1025, 1024)],
)
async def test_a_budget_that_does_not_fit_under_max_tokens_is_cut(
    sim: SimServer, effort: str, max_tokens: int, budget: int
) -> None:
    """Anthropic refuses a budget not below max_tokens: half of max_tokens, 1024 at least."""
    body = await _sent(sim, {"reasoning_effort": effort, "max_tokens": max_tokens})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens


async def test_max_tokens_with_no_room_for_thinking_goes_without_it(sim: SimServer) -> None:
    body = await _sent(sim, {"reasoning_effort": "medium", "max_tokens": 1000})
    assert "thinking" not in body
    assert body["max_tokens"] == 1000


async def test_temperature_with_thinking_is_unsupported(sim: SimServer) -> None:
    with pytest.raises(AllProvidersFailed) as failed:
        await _sent(sim, {"reasoning_effort": "low", "temperature": 0.2})
    [error] = failed.value.errors
    assert error.kind is ErrorKind.UNSUPPORTED and "temperature" in error.message


async def test_thinking_passes_as_given(sim: SimServer) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2000}
    body = await _sent(sim, {"thinking": thinking, "max_tokens": 3000})
    assert body["thinking"] == thinking and body["max_tokens"] == 3000


async def test_user_and_metadata(sim: SimServer) -> None:
    assert (await _sent(sim, {"user": "u-42"}))["metadata"] == {"user_id": "u-42"}
    body = await _sent(sim, {"metadata": {"user_id": "m-1"}})
    assert body["metadata"] == {"user_id": "m-1"}


async def test_extra_body_is_merged_as_given(sim: SimServer) -> None:
    body = await _sent(sim, {"extra_body": {"service_tier": "auto", "top_k": 5}})
    assert body["service_tier"] == "auto" and body["top_k"] == 5


async def test_sampling_parameters(sim: SimServer) -> None:
    body = await _sent(
        sim, {"temperature": 0.3, "top_p": 0.9, "max_tokens": 77, "stop": ["END", "STOP"]}
    )
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 77
    assert body["stop_sequences"] == ["END", "STOP"]
    body = await _sent(sim, {"stop": "END", "temperature": 1})
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 1


async def test_a_temperature_above_anthropics_range_is_unsupported_not_lowered(
    sim: SimServer,
) -> None:
    with pytest.raises(AllProvidersFailed) as failed:
        await _sent(sim, {"temperature": 1.7})  # Anthropic's range is 0..1
    [error] = failed.value.errors
    assert error.kind is ErrorKind.UNSUPPORTED and error.params == ("temperature",)
    assert "temperature 1.7 is above 1" in error.message
    assert sim.calls == 0


async def test_cache_control_on_user_text_passes_through(sim: SimServer) -> None:
    part = {"type": "text", "text": "A long document.", "cache_control": {"type": "ephemeral"}}
    async with Router(config(sim)) as router:
        await router.complete("agent", [{"role": "user", "content": [part]}])
    assert last_body(sim)["messages"][0]["content"] == [part]


async def test_response_format_json_schema_is_the_respond_tool(sim: SimServer) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    async with Router(config(sim)) as router:
        reply = await router.complete("agent", ASK, params={"response_format": fmt})
    assert reply.text == '{"ok": false}' and reply.finish_reason == "stop"
    body = last_body(sim)
    assert body["tools"][0]["input_schema"] == schema
    assert body["tool_choice"] == {"type": "tool", "name": "respond"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seed", 7),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("n", 2),
        ("presence_penalty", 0.5),
        ("frequency_penalty", -0.5),
    ],
)
async def test_parameters_anthropic_cannot_honour_are_unsupported(
    sim: SimServer, name: str, value: Any
) -> None:
    with pytest.raises(AllProvidersFailed) as failed:
        await _sent(sim, {name: value})
    [error] = failed.value.errors
    assert error.kind is ErrorKind.UNSUPPORTED
    # Named by the adapter ('seed') or by the router's capability check (logprobs, n).
    assert name.removeprefix("top_") in error.message
    assert sim.calls == 0  # refused before any call


@pytest.mark.parametrize(
    "params", [{"seed": None}, {"logprobs": False}, {"n": 1}, {"presence_penalty": 0}]
)
async def test_default_values_of_those_parameters_are_fine(
    sim: SimServer, params: dict[str, Any]
) -> None:
    body = await _sent(sim, params)
    assert not set(params) & set(body)


async def test_invalid_tool_arguments_name_the_call(sim: SimServer) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]}]
    with pytest.raises(AllProvidersFailed) as failed:
        async with Router(config(sim)) as router:
            await router.complete("agent", messages)
    [error] = failed.value.errors
    assert error.kind is ErrorKind.BAD_REQUEST and "call_9" in error.message


@pytest.mark.parametrize(
    "params",
    [
        {"tools": TOOLS, "tool_choice": "required", "reasoning_effort": "low"},
        {"response_format": {"type": "json_object"}, "reasoning_effort": "low"},
    ],
)
async def test_forced_tool_use_with_thinking_is_unsupported(
    sim: SimServer, params: dict[str, Any]
) -> None:
    with pytest.raises(AllProvidersFailed) as failed:
        await _sent(sim, params)
    [error] = failed.value.errors
    assert error.kind is ErrorKind.UNSUPPORTED and "thinking" in error.message
    assert sim.calls == 0
