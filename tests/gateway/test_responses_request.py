"""OpenAI Responses request bodies into the router's turns, params and schema, or a 400."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.gateway._responses_request import RequestInvalid, parse_responses_request
from rolecall.types import ImagePart, Message, TextPart, ToolCall

PNG = "data:image/png;base64,iVBORw0KGgo="
TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}


def parse(**body: Any) -> Any:
    return parse_responses_request({"model": "coder", "input": "hi", **body})


def refused(**body: Any) -> RequestInvalid:
    with pytest.raises(RequestInvalid) as caught:
        parse(**body)
    return caught.value


def test_string_input_after_instructions() -> None:
    parsed = parse(instructions="be brief")
    assert parsed.messages == (Message("system", "be brief"), Message("user", "hi"))
    assert parsed.echo["instructions"] == "be brief" and parsed.stream is False


def test_message_items_with_parts_and_roles() -> None:
    parsed = parse(
        input=[
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is "},
                    {"type": "input_text", "text": "this?"},
                    {"type": "input_image", "image_url": PNG, "detail": "low"},
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "A dot."}]},
        ]
    )
    system, user, assistant = parsed.messages
    assert system == Message("system", "rules")
    assert user.content == "What is \nthis?"  # as one text: parts joined by a line break
    assert user.parts == (TextPart("What is "), TextPart("this?"), ImagePart(PNG, "low"))
    assert assistant == Message("assistant", "A dot.")


def test_calls_join_their_assistant_turn_and_outputs_name_their_function() -> None:
    parsed = parse(
        input=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "Looking.", "id": "msg_1", "status": "completed"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": '{"a":1}'},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "two"}],
            },
        ]
    )
    assert parsed.messages[1] == Message(
        "assistant",
        "Looking.",
        tool_calls=(ToolCall("c1", "f", "{}"), ToolCall("c2", "g", '{"a":1}')),
    )
    assert parsed.messages[2:] == (
        Message("tool", "one", tool_call_id="c1", name="f"),
        Message("tool", "two", tool_call_id="c2", name="g"),
    )


def test_params_tools_and_schema() -> None:
    parsed = parse(
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=64,
        tools=[TOOL],
        tool_choice={"type": "function", "name": "f"},
        parallel_tool_calls=False,
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}},
        user="u-1",
        top_k=5,
        store=False,
        metadata={"team": "x"},
        include=["reasoning.encrypted_content"],
        truncation="disabled",
    )
    assert parsed.params == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 64,
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "reasoning_effort": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object"}},
        },
        "user": "u-1",
        "top_k": 5,
    }
    assert parsed.response_schema == {"type": "object"}
    assert parsed.echo["tools"] == [TOOL] and parsed.echo["metadata"] == {"team": "x"}


def test_json_object_format() -> None:
    assert parse(text={"format": {"type": "json_object"}}).response_schema == {"type": "object"}
    assert parse(text={"format": {"type": "text"}}).response_schema is None


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id", "full conversation"),
        ({"conversation": "conv_1"}, "conversation", "store: false"),
        ({"background": True}, "background", "background"),
        ({"max_tokens": 5}, "max_tokens", "'max_output_tokens'"),
        ({"messages": []}, "messages", "'input'"),
        ({"temprature": 1}, "temprature", "'temperature'"),
        ({"include": ["everything"]}, "include", "reasoning.encrypted_content"),
        (
            {"tools": [{"type": "web_search"}], "tool_choice": {"type": "file_search"}},
            "tool_choice",
            "'file_search'",
        ),
        ({"tools": [TOOL, {**TOOL, "strict": False}]}, "tools", "two tools are named 'f'"),
        ({"tools": [{"type": "namespace", "name": "ns"}]}, "tools", "tools[0] must be"),
        ({"tools": [{"type": "function"}]}, "tools", "tools[0]"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice", "auto, none, required"),
        ({"temperature": 3}, "temperature", "0 to 2"),
        ({"max_output_tokens": 0}, "max_output_tokens", "at least 1"),
        ({"input": []}, "input", "non-empty"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "stored items"),
        ({"input": [{"type": "computer_call_output"}]}, "input[0]", "function_call_output"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "developer"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
            "input[0]",
            "no function_call with call_id 'c9'",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
            "image_url",
        ),
        (
            {
                "input": [
                    {"role": "assistant", "content": [{"type": "input_image", "image_url": PNG}]}
                ]
            },
            "input[0]",
            "only allowed in user messages",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0]",
            "input_file",
        ),
    ],
)
def test_refused_with_the_field_named(body: dict[str, Any], param: str, words: str) -> None:
    error = refused(**body)
    assert error.param == param
    assert words in error.message


def test_missing_model_and_non_object_body() -> None:
    with pytest.raises(RequestInvalid, match="'model' is required"):
        parse_responses_request({"input": "hi"})
    with pytest.raises(RequestInvalid, match="JSON object"):
        parse_responses_request(["hi"])


# Codex CLI's sub-agent tools, as it sends them by default (descriptions shortened).
AGENTS = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools for spawning and managing sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "close_agent",
            "description": "Close an agent.",
            "strict": False,
            "parameters": {"type": "object", "properties": {"target": {"type": "string"}}},
        },
        {"type": "function", "name": "wait_agent", "parameters": {"type": "object"}},
    ],
}


def test_namespace_tool_functions_reach_the_provider_under_joined_names() -> None:
    parsed = parse(tools=[TOOL, AGENTS], tool_choice="auto")
    assert [tool["function"]["name"] for tool in parsed.params["tools"]] == [
        "f",
        "multi_agent_v1__close_agent",
        "multi_agent_v1__wait_agent",
    ]
    close = parsed.params["tools"][1]["function"]
    assert close["description"] == (
        "[multi_agent_v1: Tools for spawning and managing sub-agents.] Close an agent."
    )
    assert close["parameters"] == AGENTS["tools"][0]["parameters"]  # type: ignore[index]
    assert close["strict"] is False
    assert parsed.namespaced == {
        "multi_agent_v1__close_agent": ("multi_agent_v1", "close_agent"),
        "multi_agent_v1__wait_agent": ("multi_agent_v1", "wait_agent"),
    }
    assert parsed.echo["tools"] == [TOOL, AGENTS] and parsed.omitted_tools == ()


def test_a_namespaced_call_sent_back_is_joined_as_the_provider_was_offered_it() -> None:
    call = {
        "type": "function_call",
        "call_id": "c1",
        "name": "close_agent",
        "namespace": "multi_agent_v1",
        "arguments": '{"target":"a1"}',
    }
    output = {"type": "function_call_output", "call_id": "c1", "output": "closed"}
    parsed = parse(tools=[AGENTS], input=[{"role": "user", "content": "go"}, call, output])
    _, assistant, result = parsed.messages
    assert assistant.tool_calls == (
        ToolCall("c1", "multi_agent_v1__close_agent", '{"target":"a1"}'),
    )
    assert result == Message(
        "tool", "closed", tool_call_id="c1", name="multi_agent_v1__close_agent"
    )


def test_tool_choice_names_a_namespace_function_either_way() -> None:
    joined = {"type": "function", "function": {"name": "multi_agent_v1__wait_agent"}}
    forced = {"type": "function", "name": "wait_agent", "namespace": "multi_agent_v1"}
    assert parse(tools=[AGENTS], tool_choice=forced).params["tool_choice"] == joined
    alone = {"type": "function", "name": "wait_agent"}
    assert parse(tools=[AGENTS], tool_choice=alone).params["tool_choice"] == joined
    plain = {"type": "function", "name": "f"}
    assert parse(tools=[TOOL, AGENTS], tool_choice=plain).params["tool_choice"] == {
        "type": "function",
        "function": {"name": "f"},
    }


def test_tools_only_openai_runs_are_left_out_and_named() -> None:
    parsed = parse(
        tools=[
            {"type": "web_search", "external_web_access": False},
            TOOL,
            {"type": "custom", "name": "apply_patch"},
            {"type": "web_search"},
        ]
    )
    assert [tool["function"]["name"] for tool in parsed.params["tools"]] == ["f"]
    assert parsed.omitted_tools == ("custom", "web_search")
    only_builtin = parse(tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    assert "tools" not in only_builtin.params  # the provider is offered no tool at all
    assert only_builtin.omitted_tools == ("file_search",)
    assert only_builtin.echo["tools"] == [{"type": "file_search", "vector_store_ids": ["vs_1"]}]


def test_forcing_a_left_out_tool_is_a_400_naming_it() -> None:
    error = refused(tools=[{"type": "web_search"}], tool_choice={"type": "web_search_preview"})
    assert error.param == "tool_choice"
    assert "'web_search_preview'" in error.message and "{type: function, name}" in error.message
