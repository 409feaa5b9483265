"""The Anthropic sim, driven by the official anthropic SDK: answers, streams and every fault."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import anthropic
import httpx
import pytest
from sim_helpers import KEY, MESSAGES, REPLY, anthropic_client, sse_events

from rolecall.sim import Fault, SimServer


def _create(client: Any, **extra: Any) -> Any:
    return client.messages.create(model="sim-model", max_tokens=64, messages=MESSAGES, **extra)


def test_answer_has_text_usage_and_model(anthropic_sim: SimServer) -> None:
    reply = _create(anthropic_client(anthropic_sim), system="Be brief now")

    assert [block.text for block in reply.content] == [REPLY]
    assert reply.stop_reason == "end_turn"
    assert reply.model == "sim-model"
    # the system prompt is a top-level field and counts as input
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (9, 4)


def test_sdk_stream_text_and_final_usage(anthropic_sim: SimServer) -> None:
    client = anthropic_client(anthropic_sim)
    with client.messages.stream(model="sim-model", max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY
    assert (final.usage.input_tokens, final.usage.output_tokens) == (6, 4)
    assert final.stop_reason == "end_turn"


def test_stream_wire_format_has_named_events_in_order(anthropic_sim: SimServer) -> None:
    response = httpx.post(
        f"{anthropic_sim.base_url}/v1/messages",
        json={"model": "sim-model", "max_tokens": 64, "messages": MESSAGES, "stream": True},
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    events = sse_events(response.content)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[3:-3] == ["content_block_delta"] * 4
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == name for d, name in zip(data, names, strict=True))
    assert data[0]["message"]["usage"]["input_tokens"] == 6
    assert data[-2]["usage"]["output_tokens"] == 4
    assert data[-2]["delta"]["stop_reason"] == "end_turn"
    assert data[3]["delta"] == {"type": "text_delta", "text": "Hello"}


def test_bearer_auth_is_accepted_and_models_listed(anthropic_sim: SimServer) -> None:
    headers = {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    response = httpx.get(f"{anthropic_sim.base_url}/v1/models", headers=headers)
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["sim-model"]
    listed = anthropic_client(anthropic_sim).models.list()
    assert [m.id for m in listed.data] == ["sim-model"]
    assert anthropic_sim.model_calls == 2


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"x-api-key": KEY}, {"model": "sim-model", "max_tokens": 5, "messages": MESSAGES},
         "anthropic-version: header is required"),
        ({"x-api-key": KEY, "anthropic-version": "2023-06-01"},
         {"model": "sim-model", "messages": MESSAGES}, "max_tokens: Field required"),
        ({"anthropic-version": "2023-06-01"},
         {"model": "sim-model", "max_tokens": 5, "messages": MESSAGES},
         "x-api-key header is required"),
    ],
    ids=["no-version", "no-max-tokens", "no-key"],
)  # fmt: skip
def test_required_headers_and_fields(
    anthropic_sim: SimServer, headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    response = httpx.post(f"{anthropic_sim.base_url}/v1/messages", json=body, headers=headers)
    assert response.status_code in (400, 401)
    assert response.json()["type"] == "error"
    assert response.json()["error"]["message"] == message


def test_unknown_model_is_404_not_found_error(anthropic_sim: SimServer) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client(anthropic_sim).messages.create(
            model="claude-9", max_tokens=5, messages=MESSAGES
        )
    assert caught.value.body["error"] == {"type": "not_found_error", "message": "model: claude-9"}


ERRORS: list[tuple[Fault, type[anthropic.APIStatusError], int, str, str]] = [
    (Fault("auth"), anthropic.AuthenticationError, 401, "authentication_error", "x-api-key"),
    (Fault("permission"), anthropic.PermissionDeniedError, 403, "permission_error", "permission"),
    (Fault("not_found"), anthropic.NotFoundError, 404, "not_found_error", "sim-model"),
    (Fault("quota"), anthropic.BadRequestError, 400, "invalid_request_error", "credit balance"),
    (
        Fault("quota", variant="spend_limit"),
        anthropic.RateLimitError,
        429,
        "rate_limit_error",
        "spend limit",
    ),
    (Fault("rate_limit"), anthropic.RateLimitError, 429, "rate_limit_error", "rate limit"),
    (Fault("overloaded"), anthropic.OverloadedError, 529, "overloaded_error", "Overloaded"),
    (Fault("server"), anthropic.InternalServerError, 500, "api_error", "Internal"),
    (Fault("server", status=504), anthropic.InternalServerError, 504, "timeout_error", "timed"),
    (
        Fault("context_length"),
        anthropic.BadRequestError,
        400,
        "invalid_request_error",
        "prompt is too long",
    ),
    (Fault("bad_request"), anthropic.BadRequestError, 400, "invalid_request_error", "roles"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("fault", "error", "status", "type_", "text"),
    ERRORS,
    ids=[f"{f.kind}-{f.variant or f.status or ''}" for f, *_ in ERRORS],
)
def test_error_faults_raise_the_sdk_error(
    anthropic_sim: SimServer,
    fault: Fault,
    error: type[anthropic.APIStatusError],
    status: int,
    type_: str,
    text: str,
    stream: bool,
) -> None:
    anthropic_sim.script(fault)
    with pytest.raises(error) as caught:
        result = _create(anthropic_client(anthropic_sim), stream=stream)
        list(result) if stream else None
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == type_
    assert text in caught.value.body["error"]["message"]


def test_spend_limit_maps_to_the_sdk_specific_class(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("quota", variant="spend_limit"))
    with pytest.raises(anthropic.EnforcedSpendLimitReachedError):
        _create(anthropic_client(anthropic_sim))


def test_context_length_message_shape(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("context_length"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        _create(anthropic_client(anthropic_sim))
    message = caught.value.body["error"]["message"]
    match = re.fullmatch(r"prompt is too long: (\d+) tokens > (\d+) maximum", message)
    assert match is not None
    assert int(match[1]) > int(match[2]) == 200000


def test_rate_limit_headers(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("rate_limit", retry_after=12))
    with pytest.raises(anthropic.RateLimitError) as caught:
        _create(anthropic_client(anthropic_sim))
    headers = caught.value.response.headers
    assert headers["retry-after"] == "12"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])
    assert reset.tzinfo is not None
    assert 10 <= reset.timestamp() - time.time() <= 13


def test_overloaded_sends_retry_after_only_when_asked(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("overloaded"), Fault("overloaded", retry_after=3))
    client = anthropic_client(anthropic_sim)
    with pytest.raises(anthropic.OverloadedError) as plain:
        _create(client)
    assert "retry-after" not in plain.value.response.headers
    with pytest.raises(anthropic.OverloadedError) as hinted:
        _create(client)
    assert hinted.value.response.headers["retry-after"] == "3"


def test_error_event_after_200_surfaces_in_the_sdk_stream(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("stream_error", after_chunks=2))
    client = anthropic_client(anthropic_sim)
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model="sim-model", max_tokens=64, messages=MESSAGES) as stream,
    ):
        for text in stream.text_stream:
            received.append(text)
    assert "".join(received) == "Hello from"
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_stream_error_on_a_plain_request_is_529(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("stream_error"))
    with pytest.raises(anthropic.OverloadedError):
        _create(anthropic_client(anthropic_sim))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_refusal_stop_reason(anthropic_sim: SimServer, stream: bool) -> None:
    anthropic_sim.script(Fault("content_filter"))
    client = anthropic_client(anthropic_sim)
    if stream:
        with client.messages.stream(model="sim-model", max_tokens=64, messages=MESSAGES) as s:
            assert "".join(s.text_stream) == ""
            final = s.get_final_message()
    else:
        final = _create(client)
    assert final.stop_reason == "refusal"


def test_empty_and_malformed_answers(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("empty"), Fault("malformed"))
    client = anthropic_client(anthropic_sim)
    empty = _create(client)
    assert empty.content == [] and empty.stop_reason == "end_turn"
    with pytest.raises(ValueError):
        _create(client)


def test_reset_and_timeout_are_connection_errors(anthropic_sim: SimServer) -> None:
    anthropic_sim.script(Fault("reset"), Fault("timeout"))
    client = anthropic_client(anthropic_sim, timeout=0.3)
    with pytest.raises(anthropic.APIConnectionError) as reset:
        _create(client)
    assert not isinstance(reset.value, anthropic.APITimeoutError)
    with pytest.raises(anthropic.APITimeoutError):
        _create(client)
    assert _create(client).content[0].text == REPLY


def test_structured_output_default_reply_is_json(anthropic_sim: SimServer) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    response = httpx.post(
        f"{anthropic_sim.base_url}/v1/messages",
        json={
            "model": "sim-model",
            "max_tokens": 64,
            "messages": MESSAGES,
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        },
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    assert json.loads(response.json()["content"][0]["text"]) == {"ok": False}


# Tools, thinking and the prompt cache, through the official async SDK ------------------------
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _async_client(sim: SimServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key=KEY, max_retries=0, timeout=5)


def _tool_turns(call_id: str) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "sim"}}
    result = {"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}
    return [
        *MESSAGES,
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]


async def test_async_sdk_tool_use_then_answer(anthropic_sim: SimServer) -> None:
    async with _async_client(anthropic_sim) as client:
        asked = await client.messages.create(
            model="sim-model", max_tokens=64, messages=MESSAGES, tools=[WEATHER]
        )
        assert asked.stop_reason == "tool_use"
        [use] = asked.content
        assert use.type == "tool_use" and use.name == "get_weather"
        assert use.input == {"city": "sim"} and use.id.startswith("toolu_")
        answered = await client.messages.create(
            model="sim-model", max_tokens=64, messages=_tool_turns(use.id), tools=[WEATHER]
        )
    assert answered.stop_reason == "end_turn"
    assert [b.text for b in answered.content if b.type == "text"] == [REPLY]


async def test_async_sdk_streams_tool_use_events(anthropic_sim: SimServer) -> None:
    anthropic_sim.responder = lambda body: {
        "text": "Let me check.",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "toolu_1"}],
    }
    async with (
        _async_client(anthropic_sim) as client,
        client.messages.stream(
            model="sim-model", max_tokens=64, messages=MESSAGES, tools=[WEATHER]
        ) as stream,
    ):
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "input_json" in kinds  # the SDK's own event for input_json_delta
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me check."
    assert final.content[1].input == {"city": "Paris"} and final.content[1].id == "toolu_1"
    assert final.stop_reason == "tool_use"


async def test_async_sdk_thinking_blocks_whole_and_streamed(anthropic_sim: SimServer) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    async with _async_client(anthropic_sim) as client:
        reply = await client.messages.create(
            model="sim-model", max_tokens=2048, messages=MESSAGES, thinking=thinking
        )
        async with client.messages.stream(
            model="sim-model", max_tokens=2048, messages=MESSAGES, thinking=thinking
        ) as stream:
            final = await stream.get_final_message()
    for message in (reply, final):
        assert [b.type for b in message.content] == ["thinking", "text"]
        assert message.content[0].thinking and message.content[0].signature
        assert message.content[1].text == REPLY


async def test_async_sdk_cache_usage(anthropic_sim: SimServer) -> None:
    system: Any = [
        {"type": "text", "text": "Cache me " * 10 + "now", "cache_control": {"type": "ephemeral"}}
    ]
    async with _async_client(anthropic_sim) as client:
        first = await client.messages.create(
            model="sim-model", max_tokens=64, messages=MESSAGES, system=system
        )
        second = await client.messages.create(
            model="sim-model", max_tokens=64, messages=MESSAGES, system=system
        )
    assert first.usage.cache_creation_input_tokens == 21
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == 21
    assert second.usage.input_tokens == 6  # the uncached rest, as Anthropic reports it


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {
                "messages": [
                    *MESSAGES,
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}}
                        ],
                    },
                    {"role": "user", "content": "next"},
                ]
            },
            "without `tool_result` blocks",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_y", "content": "x"}
                        ],
                    }
                ]
            },
            "unexpected `tool_use_id`",
        ),
        ({"temperature": 1.5}, "temperature: range: 0..1"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "`max_tokens` must be greater"),
        (
            {
                "max_tokens": 4096,
                "temperature": 0.5,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "temperature",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/tiff",
                                    "data": "AA==",
                                },
                            }
                        ],
                    }
                ]
            },
            "media_type",
        ),
    ],
)
def test_requests_the_api_refuses_get_its_400(
    anthropic_sim: SimServer, extra: dict[str, Any], message: str
) -> None:
    body = {"model": "sim-model", "max_tokens": 64, "messages": MESSAGES, **extra}
    response = httpx.post(
        f"{anthropic_sim.base_url}/v1/messages",
        json=body,
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and message in error["message"]


# Thinking with tools: signed blocks, and the rule on a tool loop's assistant turn -----------
_WEATHER = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
_THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


def _tool_turn(client: Any, stream: bool) -> Any:
    kwargs: dict[str, Any] = {
        "model": "sim-model",
        "max_tokens": 2048,
        "messages": MESSAGES,
        "tools": [_WEATHER],
        "thinking": _THINKING,
    }
    if not stream:
        return client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as events:
        return events.get_final_message()


def _follow_up(client: Any, assistant: list[dict[str, Any]], call_id: str) -> Any:
    result = {"type": "tool_result", "tool_use_id": call_id, "content": "18 degrees"}
    return client.messages.create(
        model="sim-model",
        max_tokens=2048,
        messages=[
            *MESSAGES,
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": [result]},
        ],
        tools=[_WEATHER],
        thinking=_THINKING,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_is_signed_and_its_signature_is_taken_back(
    anthropic_sim: SimServer, stream: bool
) -> None:
    client = anthropic_client(anthropic_sim)
    first = _tool_turn(client, stream)
    thinking, call = first.content
    assert thinking.type == "thinking" and thinking.signature not in ("", "sim")
    blocks = [block.model_dump(exclude_none=True) for block in first.content]
    assert _follow_up(client, blocks, call.id).stop_reason == "end_turn"


def test_a_tool_loop_turn_without_its_thinking_is_refused(anthropic_sim: SimServer) -> None:
    client = anthropic_client(anthropic_sim)
    first = _tool_turn(client, stream=False)
    thinking, call = first.content
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        _follow_up(client, [call.model_dump()], call.id)
    forged = {"type": "thinking", "thinking": "something else", "signature": thinking.signature}
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        _follow_up(client, [forged, call.model_dump()], call.id)


def test_redacted_thinking_comes_whole_and_is_taken_back(anthropic_sim: SimServer) -> None:
    anthropic_sim.responder = lambda body: (
        {"text": "Mild.", "reasoning": "[redacted] weighing it"}
        if body["messages"][-1]["role"] == "user"
        and isinstance(body["messages"][-1]["content"], list)
        else {
            "text": "",
            "reasoning": "[redacted] weighing it",
            "tool_calls": [{"name": "get_weather", "arguments": {}}],
        }
    )
    client = anthropic_client(anthropic_sim)
    for stream in (False, True):
        first = _tool_turn(client, stream)
        redacted, call = first.content
        assert redacted.type == "redacted_thinking" and redacted.data
        blocks = [block.model_dump(exclude_none=True) for block in first.content]
        assert _follow_up(client, blocks, call.id).content[1].text == "Mild."
        tampered = {"type": "redacted_thinking", "data": "A" + redacted.data[1:]}
        with pytest.raises(anthropic.BadRequestError, match="Invalid `data`"):
            _follow_up(client, [tampered, call.model_dump()], call.id)
