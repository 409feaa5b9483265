"""Anthropic Messages bodies to router calls, and replies, streams and errors back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent

from rolecall.errors import AllProvidersFailed, ErrorKind, NoProviderForRole, ProviderError
from rolecall.gateway import anthropic_format as fmt
from rolecall.gateway._messages_request import (
    IGNORED_FIELDS,
    ROUTER_FIELDS,
    RequestInvalid,
    parse_messages_request,
)
from rolecall.types import (
    Attempt,
    Chunk,
    ImagePart,
    Message,
    ReasoningBlock,
    Reply,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)

PNG_DATA = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA}}


def body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "coder",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


def refused(fields: dict[str, Any]) -> str:
    with pytest.raises(RequestInvalid) as caught:
        parse_messages_request(body(**fields))
    return caught.value.message


# Requests ------------------------------------------------------------------------------
def test_minimal_request() -> None:
    parsed = parse_messages_request(body())
    assert parsed.model == "coder" and not parsed.stream
    assert parsed.messages == (Message("user", "hi"),)
    assert parsed.params == {"max_tokens": 100}
    assert parsed.response_schema is None


def test_system_blocks_keep_cache_marks() -> None:
    mark = {"type": "ephemeral"}
    parsed = parse_messages_request(
        body(
            system=[
                {"type": "text", "text": "You are a coder.", "cache_control": mark},
                {"type": "text", "text": " Be brief."},
            ]
        )
    )
    system = parsed.messages[0]
    assert system.role == "system" and system.content == "You are a coder.\n Be brief."
    assert system.parts == (TextPart("You are a coder.", mark), TextPart(" Be brief."))
    assert parse_messages_request(body(system="plain")).messages[0] == Message("system", "plain")


def test_tool_round_trip_history() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "look it up", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp": 18}'},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no such city"}],
                    "is_error": True,
                },
                {"type": "text", "text": "And now?"},
            ],
        },
    ]
    parsed = parse_messages_request(body(messages=messages))
    assert parsed.messages == (
        Message("user", "Weather in Paris?"),
        Message(
            "assistant",
            "Let me check.",
            tool_calls=(ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),),
            # kept, signed, for the Anthropic provider that wrote it
            reasoning=(ReasoningBlock("anthropic", "look it up", signature="sig"),),
        ),
        Message("tool", '{"temp": 18}', tool_call_id="toolu_1"),
        Message("tool", "Error: no such city", tool_call_id="toolu_2"),
        Message("user", "And now?"),
    )


def test_images_in_user_turns_and_tool_results() -> None:
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE, url_image]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "screenshot", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "shot"}, IMAGE],
                }
            ],
        },
    ]
    parsed = parse_messages_request(body(messages=messages))
    first, _, result, moved = parsed.messages
    assert first.images == (
        ImagePart(f"data:image/png;base64,{PNG_DATA}"),
        ImagePart("https://example.com/a.png"),
    )
    assert result == Message("tool", "shot", tool_call_id="t1")
    # OpenAI's tool turns take text only: the image follows in a user turn of its own
    assert moved.role == "user" and moved.images == (
        ImagePart(f"data:image/png;base64,{PNG_DATA}"),
    )


def test_parameters_become_the_internal_ones() -> None:
    tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"},
    }
    parsed = parse_messages_request(
        body(
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END"],
            tools=[tool],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        )
    )
    assert parsed.params == {
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": tool["input_schema"],
                    "description": "Weather for a city",
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice(choice: dict[str, Any], expected: str) -> None:
    assert parse_messages_request(body(tool_choice=choice)).params["tool_choice"] == expected


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        (
            {"type": "enabled", "budget_tokens": 2048},
            {"thinking": {"type": "enabled", "budget_tokens": 2048}, "reasoning_effort": "low"},
        ),
        (
            {"type": "enabled", "budget_tokens": 8000},
            {"thinking": {"type": "enabled", "budget_tokens": 8000}, "reasoning_effort": "medium"},
        ),
        (
            {"type": "enabled", "budget_tokens": 31999},
            {"thinking": {"type": "enabled", "budget_tokens": 31999}, "reasoning_effort": "high"},
        ),
        ({"type": "adaptive"}, {"thinking": {"type": "adaptive"}, "reasoning_effort": "medium"}),
        ({"type": "disabled"}, {}),
    ],
)
def test_thinking_for_every_protocol(thinking: dict[str, Any], expected: dict[str, Any]) -> None:
    params = parse_messages_request(body(max_tokens=32000, thinking=thinking)).params
    assert {k: v for k, v in params.items() if k != "max_tokens"} == expected


def test_output_config_effort_and_format() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    parsed = parse_messages_request(
        body(output_config={"effort": "max", "format": {"type": "json_schema", "schema": schema}})
    )
    assert parsed.params["reasoning_effort"] == "high"
    assert parsed.response_schema == schema


def test_fields_claude_code_sends_are_accepted_and_left_out() -> None:
    sent = {
        "metadata": {"user_id": "user_abc"},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "mcp_servers": [],
        "service_tier": "auto",
        "container": None,
    }
    assert set(sent) <= IGNORED_FIELDS
    assert parse_messages_request(body(**sent)).params == {"max_tokens": 100}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"temprature": 0.5}, "temprature"),
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "less than max_tokens"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search"),
        ({"tools": [{"name": "f"}]}, "input_schema"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "'document'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ]
            },
            "messages.0.content.0.source",
        ),
    ],
)
def test_bad_requests_name_the_field(fields: dict[str, Any], named: str) -> None:
    assert named in refused(fields)


def test_unknown_field_suggests_the_near_name() -> None:
    message = refused({"stop_sequence": ["x"]})
    assert "stop_sequence" in message and "did you mean 'stop_sequences'" in message


def test_count_tokens_body_needs_no_max_tokens() -> None:
    parsed = parse_messages_request(
        {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}, counting=True
    )
    assert parsed.params == {}


# Replies -------------------------------------------------------------------------------
def reply(**fields: Any) -> Reply:
    values: dict[str, Any] = {
        "text": "Hello",
        "role": "coder",
        "provider": "o",
        "model": "gpt-sim",
        "usage": Usage(10, 5),
        "latency_ms": 1.0,
        "attempts": (Attempt("o", 1, "ok", None, 1.0),),
        "finish_reason": "stop",
    }
    return Reply(**{**values, **fields})


def test_message_body() -> None:
    out = fmt.message_body(reply(), "msg_abc")
    assert out == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "gpt-sim",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def test_message_body_with_thinking_tools_and_cache() -> None:
    out = fmt.message_body(
        reply(
            text="",
            reasoning="hmm",
            tool_calls=(ToolCall("call_1", "f", '{"a": 1}'), ToolCall("", "g", "")),
            usage=Usage(100, 5, cached_input_tokens=60, cache_creation_input_tokens=30),
        ),
        "msg_abc",
    )
    assert out["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": ""},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "toolu_abc_1", "name": "g", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"  # Gemini says STOP when it calls tools
    assert out["usage"] == {
        "input_tokens": 10,  # Anthropic counts cached tokens apart
        "output_tokens": 5,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 60,
    }


@pytest.mark.parametrize(
    ("finish", "tools", "expected"),
    [
        ("stop", False, "end_turn"),
        (None, False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("stop", True, "tool_use"),
        ("length", True, "max_tokens"),
        ("content_filter", False, "refusal"),
        ("malformed_function_call", False, "end_turn"),
    ],
)
def test_stop_reason(finish: str | None, tools: bool, expected: str) -> None:
    assert fmt.stop_reason(finish, tools) == expected


def test_malformed_tool_arguments_are_kept() -> None:
    assert fmt.tool_input('{"a": ') == {"arguments": '{"a": '}
    assert fmt.tool_input("[1]") == {"arguments": [1]}


# Streams -------------------------------------------------------------------------------
def parse_events(raw: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in raw:
        head, data = event.decode().rstrip("\n").split("\n")
        assert head.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[6:])
        assert payload["type"] == head[7:]
        out.append((head[7:], payload))
    return out


def accumulate(raw: list[bytes]) -> Any:
    """The message Anthropic's own SDK builds from these events."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for _, payload in parse_events(raw):
        event: RawMessageStreamEvent = payload  # type: ignore[assignment]
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def test_stream_events_in_anthropics_sequence() -> None:
    events = fmt.MessageEvents("msg_1", "gpt-sim")
    raw = [events.start()]
    raw += events.add(Chunk(reasoning="think"))
    raw += events.add(Chunk(reasoning=" more"))
    raw += events.add(Chunk(text="Hel"))
    raw += events.add(Chunk(text="lo"))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, "call_1", "f", '{"a"'),)))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, arguments=": 1}"),)))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(1, "call_2", "g", ""),)))
    raw += events.add(Chunk(usage=Usage(3, 4)))  # no content: no event
    final = reply(
        text="Hello",
        tool_calls=(ToolCall("call_1", "f", '{"a": 1}'), ToolCall("call_2", "g", "")),
        finish_reason="tool_calls",
        usage=Usage(12, 7, cached_input_tokens=2),
    )
    raw += events.finish(final)
    names = [name for name, _ in parse_events(raw)]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "ping",  # the tool calls are held to the end of the stream: a ping a piece
        "ping",
        "ping",
        "content_block_start",  # then each call's block whole, its input in one delta
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = accumulate(raw)
    assert message.id == "msg_1" and message.model == "gpt-sim"
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "think more"
    assert message.content[1].text == "Hello"
    assert (message.content[2].id, message.content[2].name) == ("call_1", "f")
    assert message.content[2].input == {"a": 1}
    assert message.content[3].input == {}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 7)
    assert message.usage.cache_read_input_tokens == 2


def test_interleaved_calls_and_later_text_are_sent_one_whole_block_at_a_time() -> None:
    events = fmt.MessageEvents("msg_1", "m")
    raw = [events.start()]
    raw += events.add(Chunk(text="Let me look."))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, "c0", "f", '{"a":'),)))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(1, "c1", "g", '{"b":'),)))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, arguments="1}"),)))
    raw += events.add(Chunk(text="Done."))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(1, arguments="2}"),)))
    raw += events.finish(reply(text="Let me look.Done.", finish_reason="tool_calls"))
    names = [name for name, _ in parse_events(raw)]
    assert names[4:9] == ["ping"] * 5  # one a chunk held: the stream never falls silent
    shown = [
        (name, payload.get("index"), payload.get("delta", {}).get("partial_json"))
        for name, payload in parse_events(raw)[1:-2]
        if name != "ping"
    ]
    assert shown == [
        ("content_block_start", 0, None),
        ("content_block_delta", 0, None),  # text streams as it comes
        ("content_block_stop", 0, None),
        ("content_block_start", 1, None),  # the first call's block, whole, at the end
        ("content_block_delta", 1, '{"a":1}'),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, None),  # then what came after it, each block whole
        ("content_block_delta", 2, '{"b":2}'),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, None),
        ("content_block_delta", 3, None),
        ("content_block_stop", 3, None),
    ]
    message = accumulate(raw)
    assert [(b.type, getattr(b, "input", None)) for b in message.content] == [
        ("text", None),
        ("tool_use", {"a": 1}),
        ("tool_use", {"b": 2}),
        ("text", None),
    ]
    assert message.content[3].text == "Done."


@pytest.mark.parametrize("arguments", ['{"a": 1', "{'a': 1}", "[1]", "  "])
def test_streamed_tool_input_is_the_whole_answers(arguments: str) -> None:
    events = fmt.MessageEvents("msg_1", "m")
    raw = [events.start()]
    for start in range(0, len(arguments), 3):
        first = start == 0
        piece = ToolCallDelta(
            0, "c0" if first else None, "f" if first else None, arguments[start : start + 3]
        )
        raw += events.add(Chunk(tool_calls=(piece,)))
    final = reply(text="", tool_calls=(ToolCall("c0", "f", arguments),))
    raw += events.finish(final)
    (block,) = accumulate(raw).content
    assert block.input == fmt.message_body(final, "msg_1")["content"][0]["input"]


def test_a_tool_name_in_pieces_reaches_the_block_whole() -> None:
    # OpenAI's chunk format lets a name come in pieces, as some compatible servers send it.
    events = fmt.MessageEvents("msg_1", "m")
    raw = [events.start()]
    raw += events.add(Chunk(text="Checking."))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, "c0", "get_", ""),)))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, None, "weather", '{"city":'),)))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, arguments='"Paris"}'),)))
    final = reply(text="", tool_calls=(ToolCall("c0", "get_weather", '{"city":"Paris"}'),))
    raw += events.finish(final)
    _text, call = accumulate(raw).content
    assert (call.id, call.name, call.input) == ("c0", "get_weather", {"city": "Paris"})
    starts = [p for name, p in parse_events(raw) if name == "content_block_start"]
    assert [p["content_block"].get("name") for p in starts] == [None, "get_weather"]


def test_a_stream_that_fails_inside_a_tool_call_leaves_no_block_open() -> None:
    # The door sends an error event after what add() returned: every block begun is closed.
    events = fmt.MessageEvents("msg_1", "m")
    raw = [events.start()]
    raw += events.add(Chunk(text="Checking."))
    raw += events.add(Chunk(tool_calls=(ToolCallDelta(0, "c0", "get_weather", '{"ci'),)))
    payloads = parse_events(raw)
    started = [p["index"] for name, p in payloads if name == "content_block_start"]
    stopped = [p["index"] for name, p in payloads if name == "content_block_stop"]
    assert started == stopped == [0]


def test_empty_stream_still_has_one_text_block() -> None:
    events = fmt.MessageEvents("msg_1", "m")
    raw = [events.start(), *events.finish(reply(text=""))]
    message = accumulate(raw)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "" and message.stop_reason == "end_turn"


GEMINI_CALL = ReasoningBlock("gemini", signature="s1")  # Gemini 3's call signature, no thought


@pytest.mark.parametrize("thinking", [True, False])
def test_a_call_signature_alone_is_a_thinking_block_only_when_thinking_was_asked(
    thinking: bool,
) -> None:
    calls = (ToolCall("c0", "f", "{}"),)
    whole = fmt.message_body(
        reply(text="", tool_calls=calls, reasoning_blocks=(GEMINI_CALL,)),
        "msg_1",
        thinking=thinking,
    )
    events = fmt.MessageEvents("msg_1", "m", thinking=thinking)
    raw = [events.start()]
    raw += events.add(Chunk(reasoning_block=GEMINI_CALL, tool_calls=(ToolCallDelta(0, "c0", "f"),)))
    raw += events.finish(reply(text="", tool_calls=calls))
    streamed = accumulate(raw).content
    expected = ["thinking", "tool_use"] if thinking else ["tool_use"]
    assert [block["type"] for block in whole["content"]] == expected
    assert [block.type for block in streamed] == expected


def test_thought_text_is_a_thinking_block_even_when_thinking_was_not_asked() -> None:
    thought = (ReasoningBlock("gemini", "hmm", signature="s1"),)
    whole = fmt.message_body(reply(reasoning_blocks=thought), "msg_1", thinking=False)
    assert whole["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "gemini:s1"}
    events = fmt.MessageEvents("msg_1", "m", thinking=False)
    raw = [events.start()]
    raw += events.add(Chunk(reasoning="hmm"))
    raw += events.add(Chunk(reasoning_block=ReasoningBlock("gemini", signature="s1")))
    raw += events.finish(reply())
    (block,) = accumulate(raw).content
    assert (block.thinking, block.signature) == ("hmm", "gemini:s1")


# Errors --------------------------------------------------------------------------------
def failed(*kinds: ErrorKind) -> AllProvidersFailed:
    errors = [ProviderError("boom", kind=kind, provider=f"p{i}") for i, kind in enumerate(kinds)]
    return AllProvidersFailed("coder", errors)


@pytest.mark.parametrize(
    ("exc", "status", "error_type"),
    [
        (failed(ErrorKind.RATE_LIMIT), 429, "rate_limit_error"),
        (failed(ErrorKind.OVERLOADED), 529, "overloaded_error"),
        (failed(ErrorKind.SERVER, ErrorKind.AUTH), 500, "api_error"),
        (failed(ErrorKind.UNSUPPORTED), 400, "invalid_request_error"),
        (NoProviderForRole("planner"), 404, "not_found_error"),
        (ProviderError("bad", kind=ErrorKind.BAD_REQUEST), 400, "invalid_request_error"),
    ],
)
def test_router_errors_take_anthropics_statuses(
    exc: Exception, status: int, error_type: str
) -> None:
    mapped = fmt.error_for_exception(exc)  # type: ignore[arg-type]
    assert mapped.status == status
    assert mapped.body["type"] == "error"
    assert mapped.body["error"]["type"] == error_type
    assert mapped.body["error"]["message"]


def test_error_messages_hide_upstream_addresses() -> None:
    exc = AllProvidersFailed(
        "coder",
        [
            ProviderError(
                "cannot connect to 10.0.0.5:8080 (http://10.0.0.5:8080/v1)", kind=ErrorKind.NETWORK
            )
        ],
    )
    message = fmt.error_for_exception(exc, ("10.0.0.5:8080", "10.0.0.5")).body["error"]["message"]
    assert "10.0.0.5" not in message


def test_a_parameter_no_provider_takes_is_named_by_the_messages_field() -> None:
    # A provider skipped for the router's `stop`, which a Messages client wrote as
    # stop_sequences: Anthropic's shape has no param, so the message names the field.
    skipped = ProviderError(
        "parameter 'stop' cannot be sent to provider 'p' (local)",
        kind=ErrorKind.UNSUPPORTED,
        provider="p",
        params=("stop",),
    )
    mapped = fmt.error_for_exception(AllProvidersFailed("coder", [skipped]), (), ROUTER_FIELDS)
    assert mapped.status == 400
    assert mapped.body["error"]["message"].startswith("stop_sequences (passed on as 'stop'): ")


def test_stream_error_event_body() -> None:
    cause = ProviderError("overloaded", kind=ErrorKind.OVERLOADED, provider="o")
    body = fmt.stream_error_body(cause)
    assert body == {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}}
    assert fmt.stream_error_body(ValueError("x"))["error"]["type"] == "api_error"


# Token estimate ------------------------------------------------------------------------
def test_token_estimate_grows_with_the_input() -> None:
    small = fmt.estimate_input_tokens(parse_messages_request(body()))
    text = fmt.estimate_input_tokens(
        parse_messages_request(body(messages=[{"role": "user", "content": "word " * 400}]))
    )
    image = fmt.estimate_input_tokens(
        parse_messages_request(body(messages=[{"role": "user", "content": [IMAGE]}]))
    )
    tools = fmt.estimate_input_tokens(
        parse_messages_request(
            body(
                tools=[{"name": "f", "input_schema": {"type": "object", "description": "x" * 400}}]
            )
        )
    )
    assert 0 < small < 20
    assert 450 < text < 600  # 2000 characters: about 500 tokens
    assert image >= fmt.IMAGE_TOKENS
    assert tools > small + 90
