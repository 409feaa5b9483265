"""The Anthropic adapter against the Anthropic sim: tool round trips, images, cache usage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from anthropic_helpers import KEY, PNG_B64, WEATHER_TOOL, config, last_body

from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Chunk, Message

ASK = [{"role": "user", "content": "Weather in Paris?"}]


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


def _weather(body: dict[str, Any]) -> dict[str, Any]:
    """Asks for the weather tool until it has its result, then answers with it."""
    last = body["messages"][-1]["content"]
    results = [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"]
    if not results:
        return {"text": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    return {"text": f"It is {results[0]['content']} in Paris."}


def _history(call_id: str) -> list[dict[str, Any]]:
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    return [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
    ]


def _check_result_turns(body: dict[str, Any], call_id: str) -> None:
    assistant, user = body["messages"][1], body["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}
        ],
    }
    assert user == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}],
    }


async def test_tool_round_trip_through_complete(sim: SimServer) -> None:
    sim.responder = _weather
    params = {"tools": [WEATHER_TOOL]}
    async with Router(config(sim)) as router:
        asked = await router.complete("agent", ASK, params=params)
        assert asked.text == ""
        assert asked.finish_reason == "tool_calls"
        [call] = asked.tool_calls
        assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
        assert call.id.startswith("toolu_")
        assert last_body(sim)["tools"] == [
            {
                "name": "get_weather",
                "description": "The weather in a city.",
                "input_schema": WEATHER_TOOL["function"]["parameters"],
            }
        ]
        answered = await router.complete("agent", _history(call.id), params=params)
    assert answered.text == "It is sunny in Paris."
    assert answered.finish_reason == "stop" and answered.tool_calls == ()
    _check_result_turns(last_body(sim), call.id)
    assert sim.calls == 2  # a tool call with no text is an answer, not an empty one


async def _deltas(router: Router, messages: list[dict[str, Any]]) -> tuple[list[Chunk], Any]:
    stream = router.stream("agent", messages, params={"tools": [WEATHER_TOOL]})
    chunks = [chunk async for chunk in stream.deltas()]
    return chunks, stream.reply


async def test_tool_round_trip_through_stream(sim: SimServer) -> None:
    sim.responder = _weather
    async with Router(config(sim)) as router:
        chunks, reply = await _deltas(router, ASK)
        deltas = [d for c in chunks for d in c.tool_calls]
        assert deltas[0].name == "get_weather" and deltas[0].id
        assert {d.index for d in deltas} == {deltas[0].index}  # one call, one index
        assert "".join(d.arguments for d in deltas) == '{"city": "Paris"}'
        assert reply.finish_reason == "tool_calls"
        [call] = reply.tool_calls
        assert call.arguments == '{"city": "Paris"}' and call.id == deltas[0].id
        chunks, answered = await _deltas(router, _history(call.id))
    assert "".join(c.text for c in chunks) == "It is sunny in Paris."
    assert answered.text == "It is sunny in Paris." and answered.finish_reason == "stop"
    assert last_body(sim)["stream"] is True
    _check_result_turns(last_body(sim), call.id)


async def test_two_tool_results_become_one_user_turn(sim: SimServer) -> None:
    calls = [
        {
            "id": f"toolu_{n}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"},
        }
        for n in (1, 2)
    ]
    messages = [
        *ASK,
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "windy"},
        {"role": "user", "content": "And so?"},
    ]
    async with Router(config(sim)) as router:
        reply = await router.complete("agent", messages, params={"tools": [WEATHER_TOOL]})
    assert reply.text == "Hello from the sim."
    body = last_body(sim)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][0] == {"type": "text", "text": "Checking."}
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "windy"},
        {"type": "text", "text": "And so?"},
    ]


async def test_sim_calls_an_offered_tool_by_default(sim: SimServer) -> None:
    async with Router(config(sim)) as router:
        reply = await router.complete("agent", ASK, params={"tools": [WEATHER_TOOL]})
    [call] = reply.tool_calls
    assert call.name == "get_weather" and call.arguments == '{"city": "sim"}'


async def test_png_data_url_reaches_the_sim_as_a_base64_block(sim: SimServer) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    async with Router(config(sim)) as router:
        reply = await router.complete("agent", messages)
    assert reply.text == "Hello from the sim."
    assert last_body(sim)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


@pytest.mark.parametrize("media_type", ["image/tiff", "image/svg+xml", "image/bmp"])
async def test_image_type_anthropic_does_not_take_is_unsupported_before_sending(
    sim: SimServer, media_type: str
) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,AA=="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}]
    with pytest.raises(AllProvidersFailed) as failed:
        async with Router(config(sim)) as router:
            await router.complete("agent", messages)
    [error] = failed.value.errors
    # unsupported, not the vendor's 400: the router hands the call to a provider that can.
    assert error.kind is ErrorKind.UNSUPPORTED
    assert media_type in error.message and "image/png" in error.message
    assert sim.calls == 0


async def test_image_types_are_matched_whatever_their_case(sim: SimServer) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:Image/PNG;base64,{PNG_B64}"}}
    async with Router(config(sim)) as router:
        await router.complete("agent", [{"role": "user", "content": [image]}])
    [block] = last_body(sim)["messages"][0]["content"]
    assert block["source"]["media_type"] == "image/png"


async def test_cache_marks_pass_through_and_cached_tokens_land_in_usage(sim: SimServer) -> None:
    long_system = "You review code carefully. " * 20
    messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}
            ],
        },
        {"role": "user", "content": "Review this."},
    ]
    async with Router(config(sim)) as router:
        first = await router.complete("agent", messages)
        second = await router.complete("agent", messages)
        streamed = router.stream("agent", messages)
        _ = [text async for text in streamed]
    assert last_body(sim)["system"] == [
        {"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}
    ]
    prompt = 4 * 20 + 2  # every prompt word counts as input, cached or not
    assert first.usage.input_tokens == prompt
    assert (first.usage.cache_creation_input_tokens, first.usage.cached_input_tokens) == (80, 0)
    assert second.usage.input_tokens == prompt
    assert (second.usage.cached_input_tokens, second.usage.cache_creation_input_tokens) == (80, 0)
    assert streamed.reply.usage.cached_input_tokens == 80
    assert streamed.reply.usage.input_tokens == prompt


async def test_thinking_comes_back_as_reasoning(sim: SimServer) -> None:
    async with Router(config(sim)) as router:
        reply = await router.complete("agent", ASK, params={"reasoning_effort": "low"})
        stream = router.stream("agent", ASK, params={"reasoning_effort": "low"})
        chunks = [chunk async for chunk in stream.deltas()]
    assert reply.text == "Hello from the sim."
    assert reply.reasoning and reply.reasoning not in reply.text
    assert "".join(c.reasoning for c in chunks) == reply.reasoning
    assert "".join(c.text for c in chunks) == "Hello from the sim."


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_cut_by_the_context_window_is_length(sim: SimServer, stream: bool) -> None:
    """``model_context_window_exceeded`` is a cut-off answer, reported as ``length`` like
    ``max_tokens`` so a caller continues it the same way."""
    sim.responder = lambda body: {"text": "Half an ans", "finish": "context_window"}
    async with Router(config(sim)) as router:
        if stream:
            answer = router.stream("agent", ASK)
            text = "".join([piece async for piece in answer])
            reply = answer.reply
        else:
            reply = await router.complete("agent", ASK)
            text = reply.text
    assert text == "Half an ans" and reply.finish_reason == "length"


# Signed thinking: kept, sent back first, or thinking left out when there is none ----------
def _weather_loop(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]["content"]
    if isinstance(last, list) and any(b.get("type") == "tool_result" for b in last):
        return {"text": "Mild.", "reasoning": "I have it."}
    call = {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "", "tool_calls": [call], "reasoning": "I need the weather."}


async def _first_turn(router: Router, stream: bool) -> Any:
    params = {"reasoning_effort": "low", "tools": [WEATHER_TOOL]}
    if not stream:
        return await router.complete("agent", ASK, params=params)
    answer = router.stream("agent", ASK, params=params)
    _ = [chunk async for chunk in answer.deltas()]
    return answer.reply


@pytest.mark.parametrize("stream", [False, True])
async def test_signed_thinking_goes_back_first_in_its_turn(sim: SimServer, stream: bool) -> None:
    sim.responder = _weather_loop
    async with Router(config(sim)) as router:
        first = await _first_turn(router, stream)
        (block,) = first.reasoning_blocks
        assert block.protocol == "anthropic" and block.text == "I need the weather."
        assert block.signature  # the one the sim issued
        turn = Message(
            "assistant", "", tool_calls=first.tool_calls, reasoning=first.reasoning_blocks
        )
        result = Message("tool", '{"temp": 18}', tool_call_id=first.tool_calls[0].id)
        params = {"reasoning_effort": "low", "tools": [WEATHER_TOOL]}
        second = await router.complete("agent", [*ASK, turn, result], params=params)
    assert second.text == "Mild."
    sent = last_body(sim)
    assert sent["thinking"]["type"] == "enabled"
    assert sent["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "I need the weather.",
        "signature": block.signature,
    }


async def test_a_tool_loop_without_signed_thinking_is_sent_without_thinking(
    sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An OpenAI-shaped conversation keeps no signatures: Anthropic would refuse it with
    thinking on, so that one request goes without thinking, and says so in the log."""
    sim.responder = _weather_loop
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": '{"temp": 18}'},
    ]
    params = {"reasoning_effort": "low", "tools": [WEATHER_TOOL]}
    async with Router(config(sim)) as router:
        with caplog.at_level("INFO", logger="rolecall.providers"):
            reply = await router.complete("agent", history, params=params)
        fresh = await router.complete("agent", ASK, params=params)
    assert reply.text == "Mild."
    assert "thinking off for this request" in caplog.text
    assert fresh.reasoning_blocks  # a conversation not in a tool loop still thinks
    assert "thinking" in last_body(sim)
    assert "thinking" not in [r.json for r in sim.requests if r.path == "/v1/messages"][-2]


async def test_a_strict_tool_reaches_anthropic_strict(sim: SimServer) -> None:
    # Anthropic's tool takes `strict` (its input then always matches the schema).
    strict = {"type": "function", "function": {**WEATHER_TOOL["function"], "strict": True}}
    async with Router(config(sim), check_credentials=False) as router:
        await router.complete("agent", ASK, params={"tools": [strict]})
    [tool] = last_body(sim)["tools"]
    assert tool["name"] == "get_weather" and tool["strict"] is True
