"""The OpenAI adapter against the OpenAI sim: tools, images, reasoning, cached tokens.

Each test asserts the body the sim received (what OpenAI would get) and what the
caller gets back, through the real adapter and the router.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from rolecall.config.schema import ProviderConfig, RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Chunk, Message

KEY = "sk-openai-tools-test-0001"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _weather(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model: asks for the weather tool, then answers from the tool's result."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"text": f"It is {json.loads(last['content'])['temp']} degrees in Paris."}
    return {
        "text": "",
        "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
    }


@pytest.fixture(scope="module")
def _server() -> Iterator[SimServer]:
    with SimServer("openai", api_key=KEY) as server:
        yield server


@pytest.fixture
def sim(_server: SimServer) -> SimServer:
    _server.clear()
    _server.reset_stats()
    _server.responder = None
    return _server


def _router(sim: SimServer) -> Router:
    config = RolecallConfig.model_validate(
        {
            "providers": {
                "gpt": {
                    "type": "openai",
                    "model": "sim-model",
                    "api_key": KEY,
                    "base_url": sim.base_url,
                    "timeout": 5,
                }
            },
            "roles": {"coder": {"provider": "gpt"}},
            "retry": {"max_attempts": 1, "initial_backoff": 0.01},
        }
    )
    return Router(config)


def _sent(sim: SimServer) -> dict[str, Any]:
    body = sim.requests[-1].json
    assert isinstance(body, dict)
    return body


def _history_with(call: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"temp": 18})},
    ]


async def test_tool_round_trip_complete(sim: SimServer) -> None:
    sim.responder = _weather
    async with _router(sim) as router:
        first = await router.complete("coder", ASK, params={"tools": [WEATHER_TOOL]})
        assert first.finish_reason == "tool_calls" and first.text == ""
        (call,) = first.tool_calls
        assert (call.id, call.name, json.loads(call.arguments)) == (
            "call_1",
            "get_weather",
            {"city": "Paris"},
        )
        assert _sent(sim)["tools"] == [WEATHER_TOOL]
        second = await router.complete(
            "coder", _history_with(call.to_dict()), params={"tools": [WEATHER_TOOL]}
        )
    assert second.text == "It is 18 degrees in Paris." and second.finish_reason == "stop"
    assert sim.calls == 2  # a tool-call answer is a success: no retry, no hand-over
    messages = _sent(sim)["messages"]
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [call.to_dict()]}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'}


async def test_tool_round_trip_stream_deltas(sim: SimServer) -> None:
    sim.responder = _weather
    async with _router(sim) as router:
        stream = router.stream("coder", ASK, params={"tools": [WEATHER_TOOL]})
        chunks: list[Chunk] = [chunk async for chunk in stream.deltas()]
        pieces = [delta for chunk in chunks for delta in chunk.tool_calls]
        assert pieces[0].id == "call_1" and pieces[0].name == "get_weather"
        assert {p.index for p in pieces} == {0}
        assert json.loads("".join(p.arguments for p in pieces)) == {"city": "Paris"}
        reply = stream.reply
        assert reply.finish_reason == "tool_calls"
        (call,) = reply.tool_calls
        assert (call.id, call.name, json.loads(call.arguments)) == (
            "call_1",
            "get_weather",
            {"city": "Paris"},
        )
        second = router.stream("coder", _history_with(call.to_dict()))
        text = "".join([piece async for piece in second])
    assert text == "It is 18 degrees in Paris."
    assert second.reply.finish_reason == "stop"
    assert _sent(sim)["messages"][2]["role"] == "tool"


async def test_image_reaches_openai_as_an_image_url_part(sim: SimServer) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    async with _router(sim) as router:
        await router.complete("coder", messages)
    assert _sent(sim)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]


async def test_anthropic_cache_marks_are_left_out(sim: SimServer) -> None:
    mark = {"type": "ephemeral"}
    messages = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Long rules", "cache_control": mark}],
        },
        {"role": "user", "content": "hi"},
    ]
    async with _router(sim) as router:
        await router.complete("coder", messages)
    assert _sent(sim)["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "Long rules"}],
    }


PARAMS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("tools", {"tools": [WEATHER_TOOL]}, {"tools": [WEATHER_TOOL]}),
    ("tool_choice-required", {"tool_choice": "required"}, {"tool_choice": "required"}),
    (
        "tool_choice-named",
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    ),
    ("parallel_tool_calls", {"parallel_tool_calls": False}, {"parallel_tool_calls": False}),
    ("seed", {"seed": 42}, {"seed": 42}),
    ("logprobs", {"logprobs": True, "top_logprobs": 3}, {"logprobs": True, "top_logprobs": 3}),
    ("n", {"n": 1}, {"n": 1}),
    ("user", {"user": "user-7"}, {"user": "user-7"}),
    ("presence_penalty", {"presence_penalty": 0.5}, {"presence_penalty": 0.5}),
    ("frequency_penalty", {"frequency_penalty": -0.5}, {"frequency_penalty": -0.5}),
    ("reasoning_effort", {"reasoning_effort": "high"}, {"reasoning_effort": "high"}),
    ("max_tokens", {"max_tokens": 64}, {"max_completion_tokens": 64}),
    (
        "response_format-strict-kept",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
            }
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
            }
        },
    ),
    (
        "extra_body",
        {"extra_body": {"service_tier": "flex", "model": "not-this"}, "seed": 1},
        {"service_tier": "flex", "model": "sim-model", "seed": 1},
    ),
]


@pytest.mark.parametrize(
    ("params", "expected"), [row[1:] for row in PARAMS], ids=[r[0] for r in PARAMS]
)
async def test_param_reaches_openai(
    sim: SimServer, params: dict[str, Any], expected: dict[str, Any]
) -> None:
    sim.responder = lambda body: {"text": "{}"}
    async with _router(sim) as router:
        await router.complete("coder", "hi", params=params)
    body = _sent(sim)
    assert {name: body.get(name) for name in expected} == expected
    assert "extra_body" not in body


async def test_client_strict_schema_wins_over_the_response_schema(sim: SimServer) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    given = {
        "type": "json_schema",
        "json_schema": {"name": "mine", "schema": schema, "strict": True},
    }
    sim.responder = lambda body: {"text": '{"a": "x"}'}
    async with _router(sim) as router:
        await router.complete(
            "coder", "hi", params={"response_format": given}, response_schema=schema
        )
    assert _sent(sim)["response_format"] == given


async def test_reasoning_and_cached_tokens_complete(sim: SimServer) -> None:
    sim.responder = lambda body: {
        "text": "Paris.",
        "reasoning": "The capital of France",
        "cached_tokens": 4,
        "input_tokens": 10,
    }
    async with _router(sim) as router:
        reply = await router.complete("coder", "Capital of France?")
    assert reply.text == "Paris." and reply.reasoning == "The capital of France"
    assert reply.usage.input_tokens == 10 and reply.usage.cached_input_tokens == 4


async def test_reasoning_and_cached_tokens_stream(sim: SimServer) -> None:
    sim.responder = lambda body: {
        "text": "Paris.",
        "reasoning": "The capital of France",
        "cached_tokens": 4,
        "input_tokens": 10,
    }
    async with _router(sim) as router:
        stream = router.stream("coder", "Capital of France?")
        chunks = [chunk async for chunk in stream.deltas()]
    assert "".join(c.reasoning for c in chunks) == "The capital of France"
    assert "".join(c.text for c in chunks) == "Paris."
    assert stream.reply.reasoning == "The capital of France"
    assert stream.reply.usage.cached_input_tokens == 4


@pytest.mark.parametrize("stream", [False, True])
async def test_n_above_one_is_unsupported_not_a_silent_first_choice(
    sim: SimServer, stream: bool
) -> None:
    config = ProviderConfig.model_validate(
        {"type": "openai", "model": "sim-model", "api_key": KEY, "base_url": sim.base_url}
    )
    provider = build_provider("gpt", config)
    request = ChatRequest(messages=(Message("user", "hi"),), params={"n": 2})
    try:
        with pytest.raises(ProviderError) as caught:
            if stream:
                async for _ in provider.stream(request):
                    pass
            else:
                await provider.complete(request)
    finally:
        await provider.aclose()
    assert caught.value.kind is ErrorKind.UNSUPPORTED and not caught.value.retryable
    assert caught.value.message.startswith("n > 1 is not supported: ")
    assert sim.calls == 0
