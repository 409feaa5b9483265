"""Claude Code's tool search and tool changes, resolved for vendors that have neither."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rolecall.gateway._messages_request import RequestInvalid, parse_messages_request
from rolecall.types import Message

SCHEMA = {"type": "object", "properties": {"url": {"type": "string"}}}
BASH = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object"},
    "cache_control": {"type": "ephemeral"},
}
SEARCH = {"name": "ToolSearch", "description": "Load deferred tools", "input_schema": {}}
WEB_FETCH = {
    "name": "WebFetch",
    "description": "Fetch a page",
    "input_schema": SCHEMA,
    "defer_loading": True,
}
PLACEHOLDER = {"name": "DeferredToolPlaceholder", "input_schema": {}, "defer_loading": True}
TOOLS = [BASH, SEARCH, WEB_FETCH, PLACEHOLDER]


def claude_code(messages: list[dict[str, Any]], tools: list[Any] = TOOLS) -> Any:
    """A body with the fields Claude Code 2.1.332 sends by default."""
    return parse_messages_request(
        {
            "model": "claude-opus-5-5",
            "max_tokens": 32000,
            "stream": True,
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332;"},
                {"type": "text", "text": "You are Claude.", "cache_control": {"type": "ephemeral"}},
            ],
            "tools": tools,
            "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
            "thinking": {"type": "adaptive", "display": "omitted"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "high"},
            "messages": messages,
        }
    )


def offered(parsed: Any) -> list[str]:
    return [tool["function"]["name"] for tool in parsed.params.get("tools", [])]


SEARCHED = [
    {"role": "user", "content": "fetch a page"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "", "signature": "sig"},
            {"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"query": "select:W"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "t1",
                "content": [{"type": "tool_reference", "tool_name": "WebFetch"}],
            },
            {"type": "text", "text": "Tool loaded.", "cache_control": {"type": "ephemeral"}},
        ],
    },
]


def test_a_deferred_tool_is_not_offered_until_loaded() -> None:
    parsed = claude_code([{"role": "user", "content": "hi"}])
    assert offered(parsed) == ["Bash", "ToolSearch"]
    assert parsed.params["thinking"] == {"type": "adaptive"}
    assert parsed.params["reasoning_effort"] == "medium"


def test_a_tool_reference_loads_its_tool_and_reads_as_its_definition() -> None:
    parsed = claude_code(SEARCHED)
    assert offered(parsed) == ["Bash", "ToolSearch", "WebFetch"]
    result = next(turn for turn in parsed.messages if turn.role == "tool")
    definition = {"description": "Fetch a page", "name": "WebFetch", "parameters": SCHEMA}
    assert result == Message(
        "tool", f"<function>{json.dumps(definition)}</function>", tool_call_id="t1"
    )
    assert parsed.messages[-1].content == "Tool loaded."


def test_a_reference_to_a_tool_never_declared_names_it_and_loads_nothing() -> None:
    searched = json.loads(json.dumps(SEARCHED))
    searched[2]["content"][0]["content"][0]["tool_name"] = "Gone"
    parsed = claude_code(searched)
    assert offered(parsed) == ["Bash", "ToolSearch"]
    result = next(turn for turn in parsed.messages if turn.role == "tool")
    assert result.content == '<function>{"name": "Gone"}</function>'


def test_system_turns_add_and_withdraw_tools_in_order() -> None:
    mcp = {"name": "mcp__docs__search", "description": "Search docs", "input_schema": SCHEMA}
    changes = {
        "role": "system",
        "content": [
            {"type": "text", "text": "Tools changed."},
            {"type": "tool_addition", "tool": {"type": "tool_definition", "definition": mcp}},
            {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "WebFetch"}},
            {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "Bash"}},
        ],
    }
    parsed = claude_code([{"role": "user", "content": "hi"}, changes])
    assert offered(parsed) == ["ToolSearch", "mcp__docs__search", "WebFetch"]
    assert parsed.messages[-1] == Message("system", "Tools changed.")


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ({"type": "tool_addition", "tool": {"type": "tool_definition"}}, "must be an object"),
        ({"type": "tool_removal", "tool": {"type": "tool_definition"}}, "tool_reference"),
        ({"type": "tool_addition"}, "messages.1.content.0.tool"),
    ],
)
def test_malformed_tool_changes_are_a_400_naming_the_block(
    block: dict[str, Any], words: str
) -> None:
    with pytest.raises(RequestInvalid) as caught:
        claude_code([{"role": "user", "content": "hi"}, {"role": "system", "content": [block]}])
    assert words in caught.value.message
