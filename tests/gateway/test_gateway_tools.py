"""Tools, images, reasoning and every chat parameter through the gateway, with the openai SDK.

The gateway's client is the official SDK; behind it the real OpenAI adapter talks to
the OpenAI sim, whose recorded body shows what the vendor received.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway

from rolecall.sim import SimServer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)


def _weather(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"text": f"It is {json.loads(last['content'])['temp']} degrees."}
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "", "tool_calls": [call], "cached_tokens": 2}


def _answer(call: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp": 18}'},
    ]


def _sent(sim: SimServer) -> dict[str, Any]:
    body = sim.requests[-1].json
    assert isinstance(body, dict)
    return body


def test_tool_round_trip_whole(gateway: RunningGateway, primary: SimServer) -> None:
    primary.responder = _weather
    client = sdk(gateway)
    first = client.chat.completions.create(model="a", messages=ASK, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert (call.id, call.function.name) == ("call_1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 2
    assert _sent(primary)["tools"] == [WEATHER_TOOL]

    second = client.chat.completions.create(
        model="a",
        messages=_answer(call.model_dump()),  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert second.choices[0].message.content == "It is 18 degrees."
    assert second.choices[0].finish_reason == "stop"
    messages = _sent(primary)["messages"]
    assert messages[1]["content"] is None
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'}


def test_tool_round_trip_streamed(gateway: RunningGateway, primary: SimServer) -> None:
    primary.responder = _weather
    client = sdk(gateway)
    chunks = list(
        client.chat.completions.create(
            model="a",
            messages=ASK,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [p for c in chunks if c.choices for p in c.choices[0].delta.tool_calls or []]
    assert pieces[0].id == "call_1" and pieces[0].function is not None
    assert pieces[0].function.name == "get_weather"
    arguments = "".join(p.function.arguments or "" for p in pieces if p.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 2

    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    with client.chat.completions.stream(
        model="a",
        messages=_answer(call),  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "It is 18 degrees."
    assert _sent(primary)["messages"][2]["tool_call_id"] == "call_1"


def test_streamed_tool_calls_assemble_in_the_sdk_helper(
    gateway: RunningGateway, primary: SimServer
) -> None:
    primary.responder = _weather
    with sdk(gateway).chat.completions.stream(
        model="a",
        messages=ASK,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    # No text: null content, as in the whole answer, not an empty string.
    assert final.choices[0].message.content is None


def test_image_reaches_the_vendor(gateway: RunningGateway, primary: SimServer) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]
    sdk(gateway).chat.completions.create(
        model="a",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item,misc]
    )
    assert _sent(primary)["messages"] == [{"role": "user", "content": content}]


PARAMS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("seed", {"seed": 7}, {"seed": 7}),
    ("logprobs-off", {"logprobs": False}, {"logprobs": False}),
    ("text-modality", {"modalities": ["text"]}, {"modalities": ["text"]}),
    ("reasoning_effort", {"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
    (
        "penalties",
        {"presence_penalty": 0.4, "frequency_penalty": -0.2},
        {"presence_penalty": 0.4, "frequency_penalty": -0.2},
    ),
    ("user", {"user": "u-1"}, {"user": "u-1"}),
    ("n", {"n": 1}, {"n": 1}),
    ("tool_choice", {"tool_choice": "none"}, {"tool_choice": "none"}),
    ("parallel_tool_calls", {"parallel_tool_calls": False}, {"parallel_tool_calls": False}),
    (
        "extra_body",
        {"extra_body": {"extra_body": {"prompt_cache_key": "k1"}}},
        {"prompt_cache_key": "k1"},
    ),
    ("top_k-at-top-level", {"extra_body": {"top_k": 5}}, {"top_k": 5}),
    (
        "response_format-strict",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True},
            }
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True},
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [row[1:] for row in PARAMS], ids=[row[0] for row in PARAMS]
)
def test_param_reaches_the_vendor(
    gateway: RunningGateway,
    primary: SimServer,
    fields: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    primary.responder = lambda body: "{}"
    sdk(gateway).chat.completions.create(model="a", messages=ASK, **fields)  # type: ignore[arg-type]
    body = _sent(primary)
    assert {name: body.get(name) for name in expected} == expected
    assert "extra_body" not in body


def test_strict_schema_is_not_rewritten(gateway: RunningGateway, primary: SimServer) -> None:
    primary.responder = lambda body: '{"a": 1}'
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": {}, "strict": True}}
    sdk(gateway).chat.completions.create(model="coder", messages=ASK, response_format=fmt)  # type: ignore[arg-type]
    assert _sent(primary)["response_format"]["json_schema"]["strict"] is True


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        (
            {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
            "modalities",
        ),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ],
    ids=["n", "logprobs", "logprobs-and-top", "top_logprobs", "modalities", "audio"],
)
def test_what_the_answer_cannot_carry_is_a_clear_400(
    config_path: Path,
    primary: SimServer,
    start_gateway: Callable[..., RunningGateway],
    fields: dict[str, Any],
    param: str,
) -> None:
    # Even a provider that takes n and logprobs: the answer has one choice and no logprobs.
    text = config_path.read_text()
    taking = "    model: model-a\n    capabilities: {n: true, logprobs: true}\n"
    config_path.write_text(text.replace("    model: model-a\n", taking, 1))
    gateway = start_gateway(config_path)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).chat.completions.create(model="a", messages=ASK, **fields)  # type: ignore[arg-type]
    assert caught.value.body["param"] == param  # type: ignore[index]
    assert "not supported" in caught.value.message and "rolecall gateway" in caught.value.message
    assert primary.calls == 0


def test_unknown_field_is_a_400_naming_it(gateway: RunningGateway, primary: SimServer) -> None:
    with gateway.client() as client:
        response = client.post(
            "/v1/chat/completions", json={"model": "a", "messages": ASK, "temprature": 0.5}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "temprature" and "'temperature'" in error["message"]
    assert primary.calls == 0


def test_harmless_openai_fields_are_accepted(gateway: RunningGateway, primary: SimServer) -> None:
    reply = sdk(gateway).chat.completions.create(
        model="a",
        messages=ASK,  # type: ignore[arg-type]
        store=False,
        metadata={"team": "x"},
    )
    assert reply.choices[0].message.content == "answer from A"
    assert "store" not in _sent(primary) and "metadata" not in _sent(primary)


def test_reasoning_content_whole_and_streamed(gateway: RunningGateway, primary: SimServer) -> None:
    primary.responder = lambda body: {"text": "Paris.", "reasoning": "France's capital"}
    with gateway.client() as client:
        whole = client.post("/v1/chat/completions", json={"model": "a", "messages": ASK}).json()
        assert whole["choices"][0]["message"]["reasoning_content"] == "France's capital"
        with client.stream(
            "POST", "/v1/chat/completions", json={"model": "a", "messages": ASK, "stream": True}
        ) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in lines]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "France's capital"
    assert "".join(d.get("content", "") for d in deltas) == "Paris."


def test_bad_tools_are_a_400(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "a", "messages": ASK, "tools": [{"type": "function"}]},
        )
    assert response.status_code == 400 and response.json()["error"]["param"] == "tools"
    assert isinstance(response, httpx.Response)


def _anthropic_weather(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]
    blocks = last["content"] if isinstance(last["content"], list) else []
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if results:
        return {"text": f"It is {json.loads(results[0]['content'])['temp']} degrees."}
    call = {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "", "tool_calls": [call]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_round_trip_served_by_an_anthropic_provider(
    gateway: RunningGateway, fallback: SimServer, stream: bool
) -> None:
    fallback.responder = _anthropic_weather
    client = sdk(gateway)
    if stream:
        with client.chat.completions.stream(
            model="b",
            messages=ASK,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
        ) as events:
            first = events.get_final_completion()
    else:
        first = client.chat.completions.create(model="b", messages=ASK, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    (call,) = first.choices[0].message.tool_calls or []
    assert (call.id, call.function.name) == ("toolu_1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert first.choices[0].finish_reason == "tool_calls"
    second = client.chat.completions.create(
        model="b",
        messages=_answer(call.model_dump()),  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert second.choices[0].message.content == "It is 18 degrees."
    sent = _sent(fallback)
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"


def _text_then_two_calls(body: dict[str, Any]) -> dict[str, Any]:
    calls = [
        {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "toolu_2", "name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    return {"text": "Checking both.", "tool_calls": calls}


def test_parallel_calls_after_text_from_anthropic_stream_as_they_answer_whole(
    gateway: RunningGateway, fallback: SimServer
) -> None:
    # Anthropic numbers its content blocks with the text first; a chat stream numbers
    # the tool calls alone from 0, or the SDK's accumulator cannot place them.
    fallback.responder = _text_then_two_calls
    client = sdk(gateway)
    with client.chat.completions.stream(
        model="b",
        messages=ASK,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as events:
        streamed = events.get_final_completion()
    whole = client.chat.completions.create(model="b", messages=ASK, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]

    def calls(message: Any) -> list[tuple[str, str, Any]]:
        return [
            (c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls
        ]

    assert calls(streamed.choices[0].message) == calls(whole.choices[0].message)
    assert [c[2]["city"] for c in calls(streamed.choices[0].message)] == ["Paris", "Rome"]
    assert streamed.choices[0].message.content == whole.choices[0].message.content
    assert streamed.choices[0].finish_reason == "tool_calls"
