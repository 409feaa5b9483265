"""Whatever body a client sends, each door answers it or refuses it with a 4xx in its shape.

Valid bodies of the three APIs (OpenAI chat completions, Anthropic Messages, OpenAI
Responses) are mutated: fields dropped, given values of another type, wrapped in
lists, unknown fields added; over the socket also raw JSON tokens no encoder writes
(``NaN``, ``1e999``, lone surrogate escapes, 30-digit integers) and duplicate keys.
The translators are fuzzed in-process (every failure is :class:`RequestInvalid`),
and a running gateway in front of the fake providers must never answer 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gateway_helpers import RunningGateway, config_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_helpers import mutated
from raw_providers import ChatStreamProvider
from rolecall.gateway._chat_request import _KNOWN as CHAT_FIELDS
from rolecall.gateway._chat_request import RequestInvalid, parse_chat_request
from rolecall.gateway._messages_request import parse_messages_request
from rolecall.gateway._responses_request import parse_responses_request
from rolecall.sim import SimServer

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
IMAGE = "data:image/png;base64,iVBORw0KGgo="
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}
CHAT: dict[str, Any] = {
    "model": "coder",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}],
    "tool_choice": "auto",
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
    "temperature": 0.5,
    "max_tokens": 50,
    "stop": ["\n\n"],
    "stream": True,
    "stream_options": {"include_usage": True},
    "seed": 1,
}
MESSAGES: dict[str, Any] = {
    "model": "coder",
    "max_tokens": 4000,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "ok"}],
                }
            ],
        },
    ],
    "tools": [{"name": "f", "input_schema": SCHEMA}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "temperature": 0.5,
    "stop_sequences": ["\n\n"],
    "stream": False,
    "metadata": {"user_id": "u"},
}
RESPONSES: dict[str, Any] = {
    "model": "coder",
    "instructions": "Be brief.",
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "hi"},
                {"type": "input_image", "image_url": IMAGE},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
    ],
    "tools": [
        {"type": "function", "name": "f", "parameters": SCHEMA},
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]},
    ],
    "tool_choice": "auto",
    "text": {"format": {"type": "json_schema", "name": "x", "schema": SCHEMA}},
    "reasoning": {"effort": "low"},
    "temperature": 0.5,
    "max_output_tokens": 50,
    "stream": True,
    "store": False,
    "metadata": {"k": "v"},
}
MESSAGES_FIELDS = [*MESSAGES, "top_p", "top_k", "output_config", "service_tier", "container"]
RESPONSES_FIELDS = [*RESPONSES, "top_p", "include", "truncation", "user", "top_logprobs"]
RESPONSES_FIELDS += ["previous_response_id", "parallel_tool_calls", "prompt_cache_key"]
# (door, path, valid body, field names to add, whether its errors are Anthropic's shape)
DOORS = {
    "chat": ("/v1/chat/completions", CHAT, sorted(CHAT_FIELDS), False),
    "messages": ("/v1/messages", MESSAGES, MESSAGES_FIELDS, True),
    "count_tokens": ("/v1/messages/count_tokens", MESSAGES, MESSAGES_FIELDS, True),
    "responses": ("/v1/responses", RESPONSES, RESPONSES_FIELDS, False),
}
PARSERS: dict[str, Callable[[Any], object]] = {
    "chat": parse_chat_request,
    "messages": parse_messages_request,
    "count_tokens": lambda body: parse_messages_request(body, counting=True),
    "responses": parse_responses_request,
}

_WORDS = ["", "text", "function", "user", "assistant", "system", "tool", "developer", "image"]
_WORDS += ["tool_use", "tool_result", "input_text", "message", "function_call", "auto", "none"]
_WORDS += ["json_schema", "json_object", "enabled", "base64", "url", IMAGE, "https://x.test/a.png"]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(_WORDS),
)
_KEYS = st.sampled_from(
    [
        *("type", "text", "role", "content", "name", "id", "input", "function", "parameters"),
        *("arguments", "call_id", "output", "image_url", "url", "source", "tool_use_id"),
        *("schema", "json_schema", "effort", "format", "budget_tokens", "include_usage"),
    ]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
# JSON tokens no encoder writes but every parser of this gateway reads.
RAW_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"123456789012345678901234567890"]
RAW_TOKENS += [b'"\\ud800"', b'"x \\udfff"', b'"\\u0000"', b"-0", b"1e-400"]
_SCALAR_TOKEN = re.compile(rb'(?<=[:\[,] )(-?\d[\d.eE+-]*|true|false|null|"(?:[^"\\]|\\.)*")')


def _edited(data: st.DataObject, body: dict[str, Any], fields: list[str]) -> Any:
    """``body`` with one to four random edits, new keys among the door's own fields too."""
    return mutated(data, body, _VALUES, st.sampled_from(fields) | _KEYS, (1, 4))


@pytest.mark.parametrize("door", sorted(DOORS))
@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_translators_refuse_only_with_request_invalid(door: str, data: st.DataObject) -> None:
    _, body, fields, _ = DOORS[door]
    # Through JSON text, as the gateway reads it: tuples become lists, keys strings.
    edited = json.loads(json.dumps(_edited(data, body, fields)))
    try:
        PARSERS[door](edited)
    except RequestInvalid as exc:
        assert exc.message.strip() and "\n" not in exc.message, exc.message


def _raw(data: st.DataObject, body: Any) -> bytes:
    """``body`` as JSON, maybe with a raw token in place of a value or a key twice."""
    raw = json.dumps(body).encode()
    how = data.draw(st.sampled_from(["plain", "token", "duplicate"]))
    tokens = list(_SCALAR_TOKEN.finditer(raw))
    if how == "token" and tokens:
        token = data.draw(st.sampled_from(tokens))
        raw = raw[: token.start()] + data.draw(st.sampled_from(RAW_TOKENS)) + raw[token.end() :]
    elif how == "duplicate" and isinstance(body, dict) and body:
        name = json.dumps(data.draw(st.sampled_from(sorted(body)))).encode()
        raw = raw[:-1] + b", " + name + b": " + json.dumps(data.draw(_VALUES)).encode() + b"}"
    return raw


def _refusal_message(door: str, answer: Any) -> str:
    """The message of a 4xx body in the door's error shape (fails the test otherwise)."""
    anthropic = DOORS[door][3]
    assert isinstance(answer, dict) and isinstance(answer.get("error"), dict), answer
    if anthropic:
        assert answer.get("type") == "error" and isinstance(answer["error"].get("type"), str)
    message = answer["error"].get("message")
    assert isinstance(message, str) and message.strip(), answer
    return message


@pytest.mark.parametrize("door", sorted(DOORS))
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_the_running_gateway_never_answers_500(
    gateway: RunningGateway, door: str, data: st.DataObject
) -> None:
    path, body, fields, _ = DOORS[door]
    raw = _raw(data, _edited(data, body, fields))
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    with gateway.client() as client:
        answer = client.post(path, content=raw, headers=headers)
        text = answer.read().decode()  # a stream read to its end: no cut connection
    assert answer.status_code != 500 and "internal gateway error" not in text, text
    if 400 <= answer.status_code < 500:
        _refusal_message(door, answer.json())


# ----------------------------------------------------------------- shapes that once escaped

LONE_SURROGATE_ECHOED = [
    b'"metadata": {"k": "bad \\ud800"}',
    b'"tools": [{"type": "web_search", "filters": {"allowed_domains": ["\\ud800"]}}]',
    b'"text": {"format": {"type": "json_schema", "name": "\\ud800", "schema": {}}}',
]


@pytest.mark.parametrize("field", LONE_SURROGATE_ECHOED, ids=["metadata", "tools", "text"])
def test_a_responses_stream_echoes_a_lone_surrogate_as_its_escape(
    gateway: RunningGateway, field: bytes
) -> None:
    body = b'{"model": "coder", "input": "hi", "stream": true, ' + field + b"}"
    with gateway.client() as client:
        answer = client.post("/v1/responses", content=body)
        text = answer.read().decode()
    assert answer.status_code == 200
    assert "event: response.completed" in text and "\\ud800" in text


# An OpenAI-compatible provider whose streamed answer holds a lone surrogate escape (JSON
# allows it; a model's broken byte sequence comes out so).
SURROGATE_EVENTS = [
    {"choices": [{"index": 0, "delta": {"content": "bad \ud800 text"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]


@pytest.fixture
def surrogate_gateway(
    config_path: Path, fallback: SimServer, start_gateway: Callable[..., RunningGateway]
) -> Iterator[RunningGateway]:
    """The gateway of ``config_path`` (its keys in its .env) with provider ``a`` replaced."""
    provider = ChatStreamProvider(SURROGATE_EVENTS)
    try:
        stand_in = SimpleNamespace(base_url=provider.base_url)
        text = config_text(stand_in, fallback, tmp=config_path.parent)  # type: ignore[arg-type]
        config_path.write_text(text)
        yield start_gateway(config_path, offline=True)  # it answers chat only
    finally:
        provider.close()


def test_a_messages_stream_carries_a_lone_surrogate_as_its_escape(
    surrogate_gateway: RunningGateway,
) -> None:
    body = {"model": "coder", "max_tokens": 50, "stream": True}
    body["messages"] = [{"role": "user", "content": "hi"}]
    with surrogate_gateway.client() as client:
        answer = client.post("/v1/messages", json=body)
        text = answer.read().decode()
    assert answer.status_code == 200 and answer.headers["x-rolecall-provider"] == "a"
    assert "event: message_stop" in text and "bad \\ud800 text" in text
