"""The OpenAI sim, driven by the official openai SDK: answers, streams and every fault."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from sim_helpers import KEY, MESSAGES, PROMPT, REPLY, openai_client, sse_events

from rolecall.sim import Fault, SimServer


def test_answer_has_text_usage_and_model(openai_sim: SimServer) -> None:
    reply = openai_client(openai_sim).chat.completions.create(model="sim-model", messages=MESSAGES)

    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "sim-model"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (6, 4)
    assert reply.usage.total_tokens == 10
    assert openai_sim.calls == 1


def test_stream_with_include_usage_ends_with_usage_chunk_and_done(openai_sim: SimServer) -> None:
    stream = openai_client(openai_sim).chat.completions.create(
        model="sim-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 4)


def test_stream_wire_format(openai_sim: SimServer) -> None:
    body = {"model": "sim-model", "messages": MESSAGES, "stream": True}
    response = httpx.post(
        f"{openai_sim.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    events = sse_events(response.content)
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    parsed = [json.loads(data) for _, data in events[:-1]]
    assert all("usage" not in p for p in parsed)  # no include_usage: no usage at all
    assert {p["object"] for p in parsed} == {"chat.completion.chunk"}


def test_model_list_checks_the_key_and_counts(openai_sim: SimServer) -> None:
    models = openai_client(openai_sim).models.list()
    assert [m.id for m in models.data] == ["sim-model"]

    with pytest.raises(openai.AuthenticationError):
        openai_client(openai_sim, key="wrong").models.list()
    assert (openai_sim.model_calls, openai_sim.calls) == (2, 0)


def test_wrong_key_is_401_and_echoes_short_keys_only(openai_sim: SimServer) -> None:
    with pytest.raises(openai.AuthenticationError) as short:
        openai_client(openai_sim, key="sk-short").chat.completions.create(
            model="sim-model", messages=MESSAGES
        )
    assert short.value.code == "invalid_api_key"
    assert "sk-short" in short.value.message

    long_key = "sk-proj-" + "abcdefghijklmnopqrstuvwxyz0123"  # fake; split so scanners skip it
    with pytest.raises(openai.AuthenticationError) as masked:
        openai_client(openai_sim, key=long_key).chat.completions.create(
            model="sim-model", messages=MESSAGES
        )
    assert long_key not in masked.value.message and long_key[-4:] in masked.value.message


def test_missing_key_is_401(openai_sim: SimServer) -> None:
    response = httpx.post(
        f"{openai_sim.base_url}/chat/completions", json={"model": "sim-model", "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert "didn't provide an API key" in response.json()["error"]["message"]


def test_unknown_model_is_404_model_not_found(openai_sim: SimServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client(openai_sim).chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert "gpt-9" in caught.value.message


ERRORS: list[tuple[Fault, type[openai.APIStatusError], int, str | None]] = [
    (Fault("auth"), openai.AuthenticationError, 401, "invalid_api_key"),
    (Fault("permission"), openai.PermissionDeniedError, 403, None),
    (Fault("region"), openai.PermissionDeniedError, 403, "unsupported_country_region_territory"),
    (Fault("not_found"), openai.NotFoundError, 404, "model_not_found"),
    (Fault("quota"), openai.RateLimitError, 429, "insufficient_quota"),
    (Fault("rate_limit"), openai.RateLimitError, 429, "rate_limit_exceeded"),
    (Fault("overloaded"), openai.InternalServerError, 503, None),
    (Fault("server"), openai.InternalServerError, 500, None),
    (Fault("server", status=504), openai.InternalServerError, 504, None),
    (Fault("context_length"), openai.BadRequestError, 400, "context_length_exceeded"),
    (Fault("bad_request"), openai.BadRequestError, 400, None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("fault", "error", "status", "code"), ERRORS, ids=[f.kind for f, *_ in ERRORS]
)
def test_error_faults_raise_the_sdk_error(
    openai_sim: SimServer,
    fault: Fault,
    error: type[openai.APIStatusError],
    status: int,
    code: str | None,
    stream: bool,
) -> None:
    openai_sim.script(fault)
    client = openai_client(openai_sim)
    with pytest.raises(error) as caught:
        result: Any = client.chat.completions.create(
            model="sim-model", messages=MESSAGES, stream=stream
        )
        list(result) if stream else None
    assert caught.value.status_code == status
    assert caught.value.code == code
    if fault.kind == "quota":
        assert caught.value.type == "insufficient_quota"
        assert "retry-after" not in caught.value.response.headers


def test_rate_limit_headers(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("rate_limit", retry_after=7))
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client(openai_sim).chat.completions.create(model="sim-model", messages=MESSAGES)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["retry-after-ms"] == "7000"
    assert headers["x-ratelimit-reset-requests"] == "7s"
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_rate_limit_retry_after_as_http_date(openai_sim: SimServer) -> None:
    from email.utils import parsedate_to_datetime

    openai_sim.script(Fault("rate_limit", retry_after=30, variant="http_date"))
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client(openai_sim).chat.completions.create(model="sim-model", messages=MESSAGES)
    when = parsedate_to_datetime(caught.value.response.headers["retry-after"])
    assert 25 <= when.timestamp() - time.time() <= 32


def test_bad_gateway_is_an_html_page(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("server", status=502))
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(openai_sim).chat.completions.create(model="sim-model", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["content-type"] == "text/html"
    assert "<html>" in caught.value.response.text


def test_echo_key_puts_the_full_key_in_the_error(openai_sim: SimServer) -> None:
    long_key = "sk-proj-" + "abcdefghijklmnopqrstuvwxyz0123"  # fake; split so scanners skip it
    openai_sim.api_key = long_key
    openai_sim.script(Fault("auth", echo_key=True), Fault("server", echo_key=True))
    client = openai_client(openai_sim, key=long_key)
    for error in (openai.AuthenticationError, openai.InternalServerError):
        with pytest.raises(error) as caught:
            client.chat.completions.create(model="sim-model", messages=MESSAGES)
        assert long_key in caught.value.message


def test_gemini_style_array_error(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("openai_array_error"), Fault("openai_array_error", status=400))
    client = openai_client(openai_sim)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert limited.value.response.json()[0]["error"]["status"] == "RESOURCE_EXHAUSTED"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert isinstance(bad.value.response.json(), list)


def test_llama_cpp_context_error_shape(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("context_length", variant="llama.cpp"))
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(openai_sim).chat.completions.create(model="sim-model", messages=MESSAGES)
    error = caught.value.response.json()["error"]
    assert error["type"] == "exceed_context_size_error"
    assert error["n_prompt_tokens"] > error["n_ctx"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_content_filter_finish_reason(openai_sim: SimServer, stream: bool) -> None:
    openai_sim.script(Fault("content_filter"))
    client = openai_client(openai_sim)
    if stream:
        chunks = list(
            client.chat.completions.create(model="sim-model", messages=MESSAGES, stream=True)
        )
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""
    else:
        reply = client.chat.completions.create(model="sim-model", messages=MESSAGES)
        assert reply.choices[0].finish_reason == "content_filter"
        assert not reply.choices[0].message.content


def test_empty_and_malformed_answers(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("empty"), Fault("empty", variant="no_choices"), Fault("malformed"))
    client = openai_client(openai_sim)
    assert (
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
        .choices[0]
        .message.content
        == ""
    )
    assert client.chat.completions.create(model="sim-model", messages=MESSAGES).choices == []
    with pytest.raises(ValueError):  # json.JSONDecodeError: the body is cut mid-object
        client.chat.completions.create(model="sim-model", messages=MESSAGES)


def test_malformed_stream_chunk(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("malformed"))
    with pytest.raises(ValueError):
        list(
            openai_client(openai_sim).chat.completions.create(
                model="sim-model", messages=MESSAGES, stream=True
            )
        )


def test_stream_error_cuts_the_connection_after_chunks(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("stream_error", after_chunks=2))
    received: list[str] = []
    stream = openai_client(openai_sim).chat.completions.create(
        model="sim-model", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello from"


def test_reset_and_timeout_are_connection_errors(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("reset"), Fault("timeout"))
    client = openai_client(openai_sim, timeout=0.3)
    with pytest.raises(openai.APIConnectionError) as reset:
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert not isinstance(reset.value, openai.APITimeoutError)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert time.monotonic() - started < 2
    # the server is free again at once
    assert client.chat.completions.create(model="sim-model", messages=MESSAGES).choices
    assert openai_sim.calls == 3


def test_timeout_with_delay_answers_late(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("timeout", delay=0.3))
    started = time.monotonic()
    reply = openai_client(openai_sim).chat.completions.create(model="sim-model", messages=MESSAGES)
    assert reply.choices[0].message.content == REPLY
    assert time.monotonic() - started >= 0.3


def test_json_schema_request_gets_a_valid_default(openai_sim: SimServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 5},
            "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}, "minItems": 1},
            "done": {"type": "boolean"},
            "mode": {"enum": ["fast", "slow"]},
        },
        "required": ["title", "steps", "done", "mode"],
        "$defs": {
            "step": {
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 1}},
                "required": ["n"],
            }
        },
    }
    reply = openai_client(openai_sim).chat.completions.create(
        model="sim-model",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}},
    )
    value = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(value, schema)


def test_request_is_recorded(openai_sim: SimServer) -> None:
    openai_client(openai_sim).chat.completions.create(
        model="sim-model", messages=MESSAGES, temperature=0.2
    )
    sent = openai_sim.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.api_key == KEY
    assert sent.json["temperature"] == 0.2
    assert sent.json["messages"][0]["content"] == PROMPT


# Tool calls, reasoning and cached tokens ----------------------------------------------------
WEATHER_CALL = {"id": "call_w1", "name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tool_call_answer_in_openais_shape(openai_sim: SimServer) -> None:
    openai_sim.responder = lambda body: {"text": "", "tool_calls": [WEATHER_CALL]}
    reply = openai_client(openai_sim).chat.completions.create(
        model="sim-model", messages=MESSAGES, tools=[WEATHER_TOOL]
    )

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_w1", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
    assert openai_sim.requests[-1].json["tools"] == [WEATHER_TOOL]


def test_streamed_tool_calls_assemble_with_the_sdk(openai_sim: SimServer) -> None:
    second = {"id": "call_t2", "name": "get_time", "arguments": '{"zone": "Europe/Paris"}'}
    openai_sim.responder = lambda body: {"text": "", "tool_calls": [WEATHER_CALL, second]}
    client = openai_client(openai_sim)
    with client.chat.completions.stream(
        model="sim-model", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls]
    assert calls == [
        ("call_w1", "get_weather", '{"city":"Paris","unit":"c"}'),
        ("call_t2", "get_time", '{"zone": "Europe/Paris"}'),
    ]


def test_streamed_tool_call_deltas_carry_id_and_name_once(openai_sim: SimServer) -> None:
    openai_sim.responder = lambda body: {"text": "", "tool_calls": [WEATHER_CALL]}
    body = {"model": "sim-model", "messages": MESSAGES, "stream": True}
    response = httpx.post(
        f"{openai_sim.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
    )
    parsed = [json.loads(data) for _, data in sse_events(response.content)[:-1]]
    pieces = [
        p["choices"][0]["delta"]["tool_calls"][0]
        for p in parsed
        if p["choices"] and "tool_calls" in p["choices"][0]["delta"]
    ]
    assert pieces[0]["id"] == "call_w1" and pieces[0]["function"]["name"] == "get_weather"
    assert all("id" not in p and "name" not in p["function"] for p in pieces[1:])
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"city":"Paris","unit":"c"}'


def test_interleaved_tool_call_pieces_take_turns_and_still_assemble(
    openai_sim: SimServer,
) -> None:
    second = {"id": "call_t2", "name": "get_time", "arguments": '{"zone": "Europe/Paris"}'}
    openai_sim.responder = lambda body: {
        "text": "",
        "tool_calls": [WEATHER_CALL, second],
        "interleave_tool_calls": True,
    }
    body = {"model": "sim-model", "messages": MESSAGES, "stream": True}
    response = httpx.post(
        f"{openai_sim.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
    )
    parsed = [json.loads(data) for _, data in sse_events(response.content)[:-1]]
    order = [
        p["choices"][0]["delta"]["tool_calls"][0]["index"]
        for p in parsed
        if p["choices"] and "tool_calls" in p["choices"][0]["delta"]
    ]
    assert order[:6] == [0, 1, 0, 1, 0, 1]  # call 0, call 1, call 0 again...
    with openai_client(openai_sim).chat.completions.stream(
        model="sim-model", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_completion()
    calls = [(c.id, c.function.arguments) for c in final.choices[0].message.tool_calls]
    assert calls == [
        ("call_w1", '{"city":"Paris","unit":"c"}'),
        ("call_t2", '{"zone": "Europe/Paris"}'),
    ]


def test_reasoning_content_and_cached_tokens(openai_sim: SimServer) -> None:
    openai_sim.responder = lambda body: {
        "text": "42",
        "reasoning": "think it through",
        "cached_tokens": 3,
    }
    response = httpx.post(
        f"{openai_sim.base_url}/chat/completions",
        json={"model": "sim-model", "messages": MESSAGES},
        headers={"authorization": f"Bearer {KEY}"},
    ).json()

    assert response["choices"][0]["message"]["reasoning_content"] == "think it through"
    assert response["usage"]["prompt_tokens_details"]["cached_tokens"] == 3
    reply = openai_client(openai_sim).chat.completions.create(model="sim-model", messages=MESSAGES)
    assert reply.usage.prompt_tokens_details.cached_tokens == 3


def _image_turn(media_type: str) -> list[dict[str, Any]]:
    url = f"data:{media_type};base64,AAAA"
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"stop": ["a", "b", "c", "d", "e"]}, "array_above_max_length"),
        ({"messages": _image_turn("image/bmp")}, "invalid_image_format"),
    ],
)
def test_values_openai_refuses_get_its_400(
    openai_sim: SimServer, extra: dict[str, Any], code: str
) -> None:
    client = openai_client(openai_sim)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**{"model": "sim-model", "messages": MESSAGES, **extra})
    assert caught.value.code == code
    client.chat.completions.create(
        model="sim-model", messages=_image_turn("image/gif"), stop=["a", "b", "c", "d"]
    )  # what OpenAI takes
