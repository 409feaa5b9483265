"""Router replies and chunks as OpenAI Responses objects and stream events.

Every body and event is validated against the openai SDK's own pydantic models
(``model_validate``, which checks each required field and literal), so a shape
the SDK cannot read fails here before it reaches a client.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from rolecall.gateway import responses_format as rfmt
from rolecall.types import Chunk, Reply, ToolCall, ToolCallDelta, Usage

EVENT = TypeAdapter(ResponseStreamEvent)
RID = "resp_0123abcd"
ECHO = {"instructions": "be brief", "tools": [], "tool_choice": "auto", "temperature": 0.2}


def reply(**fields: Any) -> Reply:
    base: dict[str, Any] = {
        "text": "hello",
        "role": "coder",
        "provider": "a",
        "model": "model-a",
        "usage": Usage(10, 4, cached_input_tokens=3, cache_creation_input_tokens=2),
        "latency_ms": 1.0,
        "attempts": (),
        "finish_reason": "stop",
    }
    return Reply(**(base | fields))


def body_of(value: Reply) -> Response:
    return Response.model_validate(rfmt.response_body(value, RID, 1700000000, ECHO))


def test_text_reply_is_a_completed_response() -> None:
    response = body_of(reply())
    assert (response.id, response.object, response.status) == (RID, "response", "completed")
    assert response.output_text == "hello" and response.model == "model-a"
    assert response.instructions == "be brief" and response.temperature == 0.2
    assert response.incomplete_details is None and response.error is None
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (10, 4, 14)
    assert usage.input_tokens_details.cached_tokens == 3
    (message,) = response.output
    assert message.type == "message" and message.status == "completed"
    assert message.content[0].annotations == []


def test_items_in_order_reasoning_message_calls_with_distinct_ids() -> None:
    calls = (ToolCall("call_1", "get_weather", '{"city":"Paris"}'), ToolCall("call_2", "f", "{}"))
    response = body_of(reply(text="Looking.", reasoning="think", tool_calls=calls))
    assert [item.type for item in response.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert len({item.id for item in response.output}) == 4
    first_call = response.output[2]
    assert first_call.type == "function_call"
    assert (first_call.call_id, first_call.name, first_call.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "think"


def test_tool_calls_alone_have_no_message() -> None:
    response = body_of(reply(text="", tool_calls=(ToolCall("c", "f", "{}"),)))
    assert [item.type for item in response.output] == ["function_call"]
    assert response.output_text == ""


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("length", "max_output_tokens"),
        ("max_tokens", "max_output_tokens"),
        ("SAFETY", "content_filter"),
    ],
)
def test_cut_reply_is_incomplete(finish: str, reason: str) -> None:
    response = body_of(reply(finish_reason=finish))
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == reason
    assert response.output[0].status == "incomplete"


def run(
    chunks: list[Chunk], final: Reply, namespaced: dict[str, tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    built = rfmt.ResponseEvents(RID, 1700000000, "model-a", ECHO, namespaced)
    events = built.start()
    for chunk in chunks:
        events += built.add(chunk)
    events += built.finish(final)
    for event in events:
        EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def test_text_stream_event_sequence() -> None:
    events = run([Chunk(text="hel"), Chunk(text="lo")], reply())
    assert kinds(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == [] and events[0]["response"]["usage"] is None
    assert events[6]["text"] == "hello"
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "hello" and final.usage is not None
    assert final.output[0].id == events[2]["item"]["id"] == events[4]["item_id"]


def test_reasoning_text_and_calls_become_items_in_order() -> None:
    chunks = [
        Chunk(reasoning="thinking"),
        Chunk(text="Looking."),
        Chunk(tool_calls=(ToolCallDelta(0, id="call_a", name="get_weather"),)),
        Chunk(tool_calls=(ToolCallDelta(0, arguments='{"city":'),)),
        Chunk(tool_calls=(ToolCallDelta(0, arguments='"Paris"}'),)),
        Chunk(tool_calls=(ToolCallDelta(1, id="call_b", name="f", arguments="{}"),)),
    ]
    events = run(chunks, reply(text="Looking.", finish_reason="tool_use"))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    types = ["reasoning", "message", "function_call", "function_call"]
    assert [item["type"] for item in done] == types
    assert done[2]["arguments"] == '{"city":"Paris"}' and done[2]["call_id"] == "call_a"
    arguments_done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [e["arguments"] for e in arguments_done] == ['{"city":"Paris"}', "{}"]
    assert "response.reasoning_text.delta" in kinds(events)
    final = events[-1]
    assert final["type"] == "response.completed"
    assert final["response"]["output"] == done  # the final output is what each done said


def test_events_show_each_item_as_it_was_when_sent() -> None:
    # Text and a whole call in one chunk (as Gemini sends them): the message is added, then
    # closed by the call, before any event is sent.
    chunk = Chunk(text="Looking.", tool_calls=(ToolCallDelta(0, id="c", name="f", arguments="{}"),))
    events = run([chunk], reply(text="Looking."))
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [(item["status"], item.get("content")) for item in added] == [
        ("in_progress", []),
        ("in_progress", None),
    ]
    assert added[1]["arguments"] == ""


def test_call_without_id_is_named_as_the_router_names_it() -> None:
    events = run([Chunk(tool_calls=(ToolCallDelta(0, name="f", arguments="{}"),))], reply(text=""))
    assert events[-1]["response"]["output"][0]["call_id"] == "call_0"


def test_interleaved_calls_are_sent_one_whole_item_at_a_time() -> None:
    # An OpenAI-compatible server may interleave calls' pieces; text may follow a call.
    chunks = [
        Chunk(tool_calls=(ToolCallDelta(0, id="c0", name="f", arguments='{"a":'),)),
        Chunk(tool_calls=(ToolCallDelta(1, id="c1", name="g", arguments='{"b":'),)),
        Chunk(tool_calls=(ToolCallDelta(0, arguments="1}"),)),
        Chunk(text="Done."),
        Chunk(tool_calls=(ToolCallDelta(1, arguments="2}"),)),
    ]
    events = run(chunks, reply(text="Done."))
    shown = [
        (e["type"].removeprefix("response."), e.get("output_index"), e.get("delta"))
        for e in events[2:-1]
        if e["type"] != "response.content_part.added" and e["type"] != "response.content_part.done"
    ]
    assert shown == [
        ("output_item.added", 0, None),
        ("function_call_arguments.delta", 0, '{"a":'),
        ("function_call_arguments.delta", 0, "1}"),  # the first call streams as it comes
        ("function_call_arguments.done", 0, None),
        ("output_item.done", 0, None),
        ("output_item.added", 1, None),  # then what came after it began, each item whole
        ("function_call_arguments.delta", 1, '{"b":2}'),
        ("function_call_arguments.done", 1, None),
        ("output_item.done", 1, None),
        ("output_item.added", 2, None),
        ("output_text.delta", 2, "Done."),
        ("output_text.done", 2, None),
        ("output_item.done", 2, None),
    ]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(item["call_id"], item["arguments"]) for item in done[:2]] == [
        ("c0", '{"a":1}'),
        ("c1", '{"b":2}'),
    ]
    assert events[-1]["response"]["output"] == done


def test_empty_answer_is_one_empty_message() -> None:
    events = run([], reply(text=""))
    final = Response.model_validate(events[-1]["response"])
    assert [item.type for item in final.output] == ["message"]
    assert final.output_text == "" and "response.output_text.delta" not in kinds(events)


def test_cut_stream_ends_with_response_incomplete() -> None:
    events = run([Chunk(text="a long")], reply(text="a long", finish_reason="length"))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"


def test_failure_after_content_is_response_failed_keeping_what_arrived() -> None:
    built = rfmt.ResponseEvents(RID, 1700000000, "model-a", ECHO)
    events = built.start() + built.add(Chunk(text="partial"))
    failed = built.fail("provider 'a' failed after 7 characters")
    EVENT.validate_python(failed)
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == len(events)
    response = Response.model_validate(failed["response"])
    assert response.status == "failed" and response.error is not None
    assert response.error.message == "provider 'a' failed after 7 characters"
    assert response.output_text == "partial" and response.output[0].status == "incomplete"


def test_failure_keeps_what_arrived_after_a_call_began() -> None:
    built = rfmt.ResponseEvents(RID, 1700000000, "model-a", ECHO)
    events = built.start()
    events += built.add(Chunk(tool_calls=(ToolCallDelta(0, "c0", "f", '{"a": 1}'),)))
    events += built.add(Chunk(tool_calls=(ToolCallDelta(1, "c1", "g", '{"b":'),)))
    events += built.add(Chunk(text="Done"))
    response = Response.model_validate(built.fail("provider 'a' failed")["response"])
    shown = [(item.type, item.status) for item in response.output]
    assert shown == [("function_call", "incomplete")] * 2 + [("message", "incomplete")]
    assert [getattr(item, "arguments", None) for item in response.output[:2]] == [
        '{"a": 1}',
        '{"b":',
    ]
    assert response.output_text == "Done"


NAMESPACED = {"multi_agent_v1__wait_agent": ("multi_agent_v1", "wait_agent")}


def test_a_call_to_a_namespace_function_names_it_as_the_client_declared_it() -> None:
    calls = (ToolCall("c1", "multi_agent_v1__wait_agent", "{}"), ToolCall("c2", "f", "{}"))
    body = rfmt.response_body(reply(text="", tool_calls=calls), RID, 1, ECHO, NAMESPACED)
    first, second = Response.model_validate(body).output
    assert first.type == "function_call" and second.type == "function_call"
    assert (first.namespace, first.name, first.call_id) == ("multi_agent_v1", "wait_agent", "c1")
    assert (second.namespace, second.name) == (None, "f")


def test_a_streamed_namespace_call_is_named_in_every_event() -> None:
    pieces = [
        ToolCallDelta(0, id="c1", name="multi_agent_v1__", arguments='{"tim'),
        ToolCallDelta(0, name="wait_agent", arguments='eout":5}'),
    ]
    events = run([Chunk(tool_calls=(piece,)) for piece in pieces], reply(text=""), NAMESPACED)
    added = next(e["item"] for e in events if e["type"] == "response.output_item.added")
    assert added["call_id"] == "c1"  # its name was not whole yet
    done = next(e["item"] for e in events if e["type"] == "response.output_item.done")
    final = events[-1]["response"]["output"][0]
    for item in (done, final):
        assert (item["namespace"], item["name"]) == ("multi_agent_v1", "wait_agent")
        assert item["arguments"] == '{"timeout":5}'
    whole = run(
        [Chunk(tool_calls=(ToolCallDelta(0, id="c1", name="multi_agent_v1__wait_agent"),))],
        reply(text=""),
        NAMESPACED,
    )
    added = next(e["item"] for e in whole if e["type"] == "response.output_item.added")
    assert (added["namespace"], added["name"]) == ("multi_agent_v1", "wait_agent")
