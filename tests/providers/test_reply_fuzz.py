"""Whatever a vendor answers, an adapter returns a well-typed answer or a ProviderError.

Valid replies of each vendor (whole bodies, and SSE or event-stream chunks) are
mutated: fields dropped, given values of another type (lists, objects, huge
integers, NaN), wrapped in lists, extra fields added, streams cut short. Each is
served by a local HTTP server to the real adapter, which must answer with a
:class:`Completion` (or chunks) whose fields have their types, or raise
:class:`ProviderError`; never a KeyError, TypeError or AttributeError. The plain
examples at the end are the shapes that once escaped.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_helpers import mutated
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import HTTPProvider
from rolecall.providers.bedrock import BedrockProvider
from rolecall.sim._eventstream import CONTENT_TYPE as EVENTSTREAM
from rolecall.sim._eventstream import event_frame
from rolecall.sim._http import Exchange, HttpRequest, HttpServer
from rolecall.types import ChatRequest, Chunk, Completion, Message, ToolCall, ToolCallDelta, Usage

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
REQUEST = ChatRequest(messages=(Message("user", "hi"),), params={"tools": TOOLS})
CALL = {"a": 1}

WHOLE: dict[str, Any] = {
    "openai": {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello world",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": json.dumps(CALL)},
                        }
                    ],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    },
    "anthropic": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "Hello world"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": CALL},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 1},
    },
    "google": {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "hm", "thought": True},
                        {"text": "Hello world"},
                        {"functionCall": {"name": "f", "args": CALL}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
        "modelVersion": "m",
    },
    "bedrock": {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "s"}}},
                    {"text": "Hello world"},
                    {"toolUse": {"toolUseId": "t1", "name": "f", "input": CALL}},
                ],
            }
        },
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
    },
}


def _oa(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _an(kind: str, **fields: Any) -> list[Any]:
    return [kind, {"type": kind, **fields}]


_OA_CALL = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f"}}
# Streams as lists of events: [event name, data] pairs where the wire names events.
STREAMED: dict[str, list[Any]] = {
    "openai": [
        _oa({"role": "assistant", "content": "Hello"}),
        _oa({"content": " world"}),
        _oa({"tool_calls": [{**_OA_CALL, "function": {"name": "f", "arguments": '{"a"'}}]}),
        _oa({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        _oa({}, "tool_calls"),
        {"model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        "[DONE]",
    ],
    "anthropic": [
        _an("message_start", message={"id": "m1", "model": "m", "usage": {"input_tokens": 3}}),
        _an("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        _an("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hm"}),
        _an("content_block_stop", index=0),
        _an("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        _an("content_block_delta", index=1, delta={"type": "text_delta", "text": "Hello world"}),
        _an("content_block_stop", index=1),
        _an(
            "content_block_start",
            index=2,
            content_block={"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ),
        _an(
            "content_block_delta",
            index=2,
            delta={"type": "input_json_delta", "partial_json": json.dumps(CALL)},
        ),
        _an("content_block_stop", index=2),
        _an("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 5}),
        _an("message_stop"),
    ],
    "google": [
        {"candidates": [{"content": {"parts": [{"text": "Hello"}]}}], "modelVersion": "m"},
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": " world"}, {"functionCall": {"name": "f"}}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
        },
    ],
    "bedrock": [
        ["messageStart", {"role": "assistant"}],
        ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello world"}}],
        ["contentBlockStop", {"contentBlockIndex": 0}],
        [
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}},
        ],
        ["contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{}"}}}],
        ["contentBlockStop", {"contentBlockIndex": 1}],
        ["messageStop", {"stopReason": "tool_use"}],
        ["metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}],
    ],
}

_WORDS = ["", "text", "tool_use", "function", "STOP", "SAFETY", "end_turn", "stop", "length"]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from([*_WORDS, "tool_calls", "content_filter", "guardrail_intervened", "[DONE]"]),
)
_KEYS = st.sampled_from(
    [
        *("type", "text", "content", "choices", "delta", "index", "usage", "candidates"),
        *("parts", "error", "tool_calls", "function", "arguments", "name", "id", "input"),
        *("stopReason", "finish_reason", "finishReason", "toolUse", "functionCall", "thought"),
        "refusal",
    ]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)


def _event_bytes(vendor: str, event: Any) -> bytes:
    named = isinstance(event, list) and len(event) == 2 and isinstance(event[0], str)
    if vendor == "bedrock":
        if named and isinstance(event[1], dict):
            return event_frame(event[0], event[1])
        return event_frame("contentBlockDelta", {"delta": event})
    if named and vendor == "anthropic":
        return f"event: {event[0]}\ndata: {json.dumps(event[1])}\n\n".encode()
    text = event if isinstance(event, str) else json.dumps(event)
    return f"data: {text}\n\n".encode()


class Reply:
    """What the server sends next: a content type, parts of a body, and where to cut it."""

    def __init__(self) -> None:
        self.content_type = "application/json"
        self.parts: list[bytes] = []
        self.cut_at: int | None = None  # bytes sent before the connection is closed

    async def serve(self, request: HttpRequest, exchange: Exchange) -> None:
        exchange.start(200, [("content-type", self.content_type)])
        body = b"".join(self.parts)
        if self.cut_at is not None:
            exchange.send(body[: self.cut_at])
            await exchange.cut()
            return
        for part in self.parts:
            exchange.send(part)
        await exchange.end()


@pytest.fixture
async def served() -> AsyncIterator[tuple[Reply, str]]:
    reply = Reply()
    server = HttpServer(reply.serve)
    port = await server.open("127.0.0.1", 0)
    try:
        yield reply, f"http://127.0.0.1:{port}"
    finally:
        await server.close()


def _provider(vendor: str, root: str) -> HTTPProvider:
    if vendor == "bedrock":
        values = {"type": "bedrock", "model": "anthropic.claude", "region": "us-east-1"}
        values |= {"base_url": root, "api_key": "bedrock-fuzz-key-123456", "timeout": 5}
        return BedrockProvider("b", BedrockConfig.model_validate(values))
    base_url = f"{root}/v1" if vendor == "openai" else root
    config = {"type": vendor, "model": "m", "api_key": "sk-fuzz-key-123456", "timeout": 5}
    provider = build_provider("p", ProviderConfig.model_validate({**config, "base_url": base_url}))
    assert isinstance(provider, HTTPProvider)
    return provider


async def _call(vendor: str, root: str, streamed: bool) -> Completion | list[Chunk]:
    provider = _provider(vendor, root)
    try:
        if streamed:
            return [chunk async for chunk in provider.stream(REQUEST)]  # type: ignore[attr-defined]
        result: Completion = await provider.complete(REQUEST)  # type: ignore[attr-defined]
        return result
    finally:
        await provider.aclose()


def _optional_text(value: object) -> bool:
    return value is None or isinstance(value, str)


def _assert_typed(answer: Completion | Chunk) -> None:
    """What callers rely on: texts are strings, counts are integers."""
    assert isinstance(answer.text, str)
    assert _optional_text(answer.model) and _optional_text(answer.finish_reason)
    assert _optional_text(answer.reasoning)
    if isinstance(answer.usage, Usage):
        counts = [answer.usage.input_tokens, answer.usage.output_tokens]
        counts += [answer.usage.cached_input_tokens, answer.usage.cache_creation_input_tokens]
        assert all(type(count) is int for count in counts), answer.usage
    for call in answer.tool_calls:
        assert isinstance(call, ToolCall | ToolCallDelta)
        assert _optional_text(call.id) and _optional_text(call.name), call
        assert isinstance(call.arguments, str), call


async def _check(reply: Reply, root: str, vendor: str, streamed: bool) -> None:
    try:
        answer = await _call(vendor, root, streamed)
    except ProviderError:
        return  # bad_response mostly; a mutated error event is classified as what it says
    for item in answer if isinstance(answer, list) else [answer]:
        _assert_typed(item)


@pytest.mark.parametrize("vendor", sorted(WHOLE))
@FUZZ
@given(data=st.data())
async def test_whole_replies(served: tuple[Reply, str], vendor: str, data: st.DataObject) -> None:
    reply, root = served
    reply.content_type, reply.cut_at = "application/json", None
    reply.parts = [json.dumps(mutated(data, WHOLE[vendor], _VALUES, _KEYS, (0, 3))).encode()]
    await _check(reply, root, vendor, streamed=False)


@pytest.mark.parametrize("vendor", sorted(STREAMED))
@FUZZ
@given(data=st.data())
async def test_streamed_replies(
    served: tuple[Reply, str], vendor: str, data: st.DataObject
) -> None:
    reply, root = served
    events = mutated(data, STREAMED[vendor], _VALUES, _KEYS, (0, 3))
    reply.content_type = EVENTSTREAM if vendor == "bedrock" else "text/event-stream"
    reply.parts = [_event_bytes(vendor, e) for e in (events if isinstance(events, list) else [])]
    size = sum(len(part) for part in reply.parts)
    cut = data.draw(st.none() | st.floats(min_value=0, max_value=1))
    reply.cut_at = None if cut is None else int(size * cut)  # a fraction: frames vary in size
    await _check(reply, root, vendor, streamed=True)


# ----------------------------------------------------------------- shapes that once escaped


def _whole(reply: Reply, vendor: str, edit: dict[str, Any]) -> None:
    """Serve ``vendor``'s whole reply with ``edit``'s paths ("a.0.b") set to its values."""
    body = copy.deepcopy(WHOLE[vendor])
    for path, value in edit.items():
        *parents, last = path.split(".")
        node = body
        for step in parents:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[int(last) if isinstance(node, list) else last] = value
    reply.content_type, reply.cut_at = "application/json", None
    reply.parts = [json.dumps(body).encode()]


def _streamed(reply: Reply, vendor: str, events: list[Any]) -> None:
    reply.content_type = EVENTSTREAM if vendor == "bedrock" else "text/event-stream"
    reply.parts, reply.cut_at = [_event_bytes(vendor, e) for e in events], None


async def test_gemini_finish_reason_of_another_type_is_ignored(
    served: tuple[Reply, str],
) -> None:
    reply, root = served
    _whole(reply, "google", {"candidates.0.finishReason": ["STOP"]})
    answer = await _call("google", root, streamed=False)
    assert isinstance(answer, Completion) and answer.text == "Hello world"


async def test_gemini_stream_candidates_not_a_list_is_bad_response(
    served: tuple[Reply, str],
) -> None:
    reply, root = served
    _streamed(reply, "google", [{"candidates": {"0": {}}}, *STREAMED["google"]])
    with pytest.raises(ProviderError) as info:
        await _call("google", root, streamed=True)
    assert info.value.kind is ErrorKind.BAD_RESPONSE
    assert "candidates is not a list" in info.value.message


async def test_gemini_stream_model_version_of_another_type_is_not_the_model(
    served: tuple[Reply, str],
) -> None:
    reply, root = served
    first, last = STREAMED["google"]
    _streamed(reply, "google", [{**first, "modelVersion": {"v": 2}}, last])
    chunks = await _call("google", root, streamed=True)
    assert isinstance(chunks, list) and chunks[-1].model == "m"  # the configured model


@pytest.mark.parametrize(
    "edit",
    [
        {"stopReason": ["end_turn"]},
        {"output.message.content.0.reasoningContent.reasoningText": ["hm"]},
    ],
    ids=["stopReason a list", "reasoningText a list"],
)
async def test_bedrock_fields_of_another_type_keep_the_answer(
    served: tuple[Reply, str], edit: dict[str, Any]
) -> None:
    reply, root = served
    _whole(reply, "bedrock", edit)
    answer = await _call("bedrock", root, streamed=False)
    assert isinstance(answer, Completion) and answer.text == "Hello world"
    assert [call.name for call in answer.tool_calls] == ["f"]


async def test_bedrock_stream_stop_reason_of_another_type_keeps_the_answer(
    served: tuple[Reply, str],
) -> None:
    reply, root = served
    events = [
        e if e[0] != "messageStop" else ["messageStop", {"stopReason": {}}]
        for e in STREAMED["bedrock"]
    ]
    _streamed(reply, "bedrock", events)
    chunks = await _call("bedrock", root, streamed=True)
    assert isinstance(chunks, list) and "".join(c.text for c in chunks) == "Hello world"


@pytest.mark.parametrize("vendor", ["anthropic", "bedrock"])
async def test_streamed_tool_call_id_and_name_of_another_type_are_left_out(
    served: tuple[Reply, str], vendor: str
) -> None:
    reply, root = served
    events = copy.deepcopy(STREAMED[vendor])
    for name, data in events:
        if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
            data["content_block"] |= {"id": {"x": 1}, "name": ["f"]}
        if name == "contentBlockStart":
            data["start"]["toolUse"] = {"toolUseId": {"x": 1}, "name": ["f"]}
    _streamed(reply, vendor, events)
    chunks = await _call(vendor, root, streamed=True)
    assert isinstance(chunks, list)
    calls = [call for chunk in chunks for call in chunk.tool_calls]
    assert calls and all(call.id is None and call.name is None for call in calls)


@pytest.mark.parametrize(
    ("vendor", "edit"),
    [
        ("anthropic", {"content.2.id": {"x": 1}, "content.2.name": ["f"]}),
        ("bedrock", {"output.message.content.2.toolUse": {"toolUseId": {"x": 1}, "name": ["f"]}}),
    ],
)
async def test_whole_tool_call_id_and_name_of_another_type_are_left_empty(
    served: tuple[Reply, str], vendor: str, edit: dict[str, Any]
) -> None:
    # As the streams leave them out: no Python repr of a dict reaches the client as an id.
    reply, root = served
    _whole(reply, vendor, edit)
    answer = await _call(vendor, root, streamed=False)
    assert isinstance(answer, Completion)
    assert [(call.id, call.name) for call in answer.tool_calls] == [("", "")]
