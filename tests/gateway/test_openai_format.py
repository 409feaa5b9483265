"""Mapping OpenAI chat-completions bodies to router calls and replies back."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.errors import AllProvidersFailed, ErrorKind, NoProviderForRole, ProviderError
from rolecall.gateway import openai_format as fmt
from rolecall.types import Attempt, Message, Reply, TextPart, Usage


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "coder", "messages": [{"role": "user", "content": "hi"}], **fields}


def test_minimal_request() -> None:
    parsed = fmt.parse_chat_request(body())
    assert parsed.model == "coder"
    assert parsed.messages == (Message("user", "hi"),)
    assert parsed.params == {}
    assert parsed.response_schema is None
    assert not parsed.stream and not parsed.include_usage


def test_params_are_forwarded_and_max_completion_tokens_wins() -> None:
    parsed = fmt.parse_chat_request(
        body(temperature=0.3, top_p=0.9, max_tokens=10, max_completion_tokens=20, stop="END")
    )
    assert parsed.params == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 20, "stop": ["END"]}


def test_developer_role_and_content_parts() -> None:
    parsed = fmt.parse_chat_request(
        body(
            messages=[
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]},
            ]
        )
    )
    # Several text parts stay parts; as one text they are joined by a line break.
    parts = (TextPart("a"), TextPart("b"))
    assert parsed.messages == (Message("system", "be brief"), Message("user", "a\nb", parts))


def test_json_schema_response_format_becomes_response_schema() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    parsed = fmt.parse_chat_request(
        body(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        )
    )
    assert parsed.response_schema == schema
    assert fmt.parse_chat_request(
        body(response_format={"type": "json_object"})
    ).response_schema == {"type": "object"}
    assert fmt.parse_chat_request(body(response_format={"type": "text"})).response_schema is None


def test_stream_options() -> None:
    parsed = fmt.parse_chat_request(body(stream=True, stream_options={"include_usage": True}))
    assert parsed.stream and parsed.include_usage
    # include_usage means nothing without stream
    assert not fmt.parse_chat_request(body(stream_options={"include_usage": True})).include_usage


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": None}, "model"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"n": 0}, "n"),
        ({"seed": 1.5}, "seed"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"extra_body": []}, "extra_body"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"temprature": 0.2}, "temprature"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
    ],
)
def test_invalid_fields_are_named(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(fmt.RequestInvalid) as caught:
        fmt.parse_chat_request(body(**fields))
    assert caught.value.param == param


def test_body_must_be_an_object() -> None:
    with pytest.raises(fmt.RequestInvalid):
        fmt.parse_chat_request([1, 2])


def test_completion_body_shape() -> None:
    reply = Reply(
        text="hello",
        role="coder",
        provider="gpt",
        model="gpt-x",
        usage=Usage(3, 4),
        latency_ms=1.0,
        attempts=(Attempt("gpt", 1, "ok", None, 1.0),),
        finish_reason="end_turn",
    )
    out = fmt.completion_body(reply, "chatcmpl-1", 7)
    assert out["model"] == "gpt-x"
    assert out["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hello",
        "refusal": None,
    }
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    }


def test_finish_reasons() -> None:
    assert fmt.finish_reason(None) == "stop"
    assert fmt.finish_reason("max_tokens") == "length"
    assert fmt.finish_reason("MAX_TOKENS") == "length"
    assert fmt.finish_reason("content_filter") == "content_filter"


def _failed(*kinds: ErrorKind, retry_after: float | None = None) -> AllProvidersFailed:
    errors = [
        ProviderError("x", kind=k, provider=f"p{i}", retry_after=retry_after)
        for i, k in enumerate(kinds)
    ]
    return AllProvidersFailed("coder", errors)


def test_error_statuses() -> None:
    mixed = fmt.error_for_exception(_failed(ErrorKind.RATE_LIMIT, ErrorKind.SERVER))
    assert mixed is not None and mixed.status == 502
    limited = fmt.error_for_exception(
        _failed(ErrorKind.RATE_LIMIT, ErrorKind.RATE_LIMIT, retry_after=2.5)
    )
    assert limited is not None and limited.status == 429 and limited.retry_after == 2.5
    busy = fmt.error_for_exception(_failed(ErrorKind.OVERLOADED))
    assert busy is not None and busy.status == 503
    missing = fmt.error_for_exception(NoProviderForRole("tester"))
    assert missing is not None and missing.status == 404
    assert "tester" in missing.body["error"]["message"]
    assert fmt.error_for_exception(ValueError("x")) is None


def test_error_body_is_redacted() -> None:
    from rolecall._secrets import Secret

    Secret("sk-test-body-secret-123")
    out = fmt.error_body("upstream said sk-test-body-secret-123", "api_error")
    assert "sk-test-body-secret-123" not in str(out)
    assert set(out["error"]) == {"message", "type", "param", "code"}
