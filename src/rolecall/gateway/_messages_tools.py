"""An Anthropic Messages request's tools, including the ones it loads as the conversation goes.

``tools`` become function tools. Claude Code also uses Anthropic's tool search
and mid-conversation tool changes (its betas ``advanced-tool-use`` and
``mid-conversation-tool-changes``), which Anthropic's servers resolve and other
vendors know nothing of, so the gateway resolves them here:

- a tool with ``defer_loading: true`` is not offered to the provider until the
  conversation loads it;
- a ``tool_reference`` block in a ``tool_result`` (what a tool search returns)
  loads the tool it names, and reads as that tool's definition, one
  ``<function>{...}</function>`` line, as Claude Code's ToolSearch describes its result;
- a system turn's ``tool_addition`` block (a reference or a whole definition)
  loads a tool and its ``tool_removal`` block withdraws one, in order.

The provider is offered the tools in force at the end of the conversation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rolecall.gateway._chat_request import RequestInvalid

__all__ = ["ToolCatalog", "read_tool_choice"]


class ToolCatalog:
    """The request's tool definitions and which of them are in force so far."""

    def __init__(self, raw: Any = None) -> None:
        self.defined: dict[str, dict[str, Any]] = {}  # name -> function (the provider's form)
        self.active: dict[str, dict[str, Any]] = {}  # in force, in the order they came
        if raw is None:
            return
        if not isinstance(raw, list):
            raise RequestInvalid(
                "tools: must be an array of {name, description, input_schema}", "tools"
            )
        for index, tool in enumerate(raw):
            function = _function(f"tools.{index}", tool)
            self.defined[function["name"]] = function
            if tool.get("defer_loading") is not True:
                self.active[function["name"]] = function

    def functions(self) -> list[dict[str, Any]]:
        """The function tools the provider is offered."""
        return [{"type": "function", "function": function} for function in self.active.values()]

    def reference(self, where: str, block: Mapping[str, Any]) -> str:
        """A ``tool_reference`` block: load its tool; what the block reads as."""
        name = block.get("tool_name", block.get("name"))
        if not isinstance(name, str) or not name:
            raise RequestInvalid(f"{where}: a tool_reference needs a tool_name", "messages")
        function = self.defined.get(name)
        if function is None:
            return f"<function>{json.dumps({'name': name})}</function>"
        self.active[name] = function
        shown = {"description": function.get("description", ""), "name": name}
        shown["parameters"] = function["parameters"]
        return f"<function>{json.dumps(shown, ensure_ascii=False)}</function>"

    def change(self, where: str, block: Mapping[str, Any]) -> None:
        """A system turn's ``tool_addition`` or ``tool_removal`` block."""
        tool = block.get("tool")
        kind = tool.get("type") if isinstance(tool, dict) else None
        if block["type"] == "tool_removal" and kind == "tool_reference":
            assert isinstance(tool, dict)
            self.active.pop(str(tool.get("name", tool.get("tool_name"))), None)
        elif kind == "tool_reference":
            assert isinstance(tool, dict)
            self.reference(where, tool)
        elif kind == "tool_definition" and block["type"] == "tool_addition":
            assert isinstance(tool, dict)
            function = _function(f"{where}.tool.definition", tool.get("definition"))
            self.defined[function["name"]] = self.active[function["name"]] = function
        else:
            raise RequestInvalid(
                f"{where}.tool: must be {{type: tool_reference, name}} or (to add one) "
                "{type: tool_definition, definition}",
                "messages",
            )


def _function(where: str, tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise RequestInvalid(f"{where}: must be an object {{name, input_schema}}", "tools")
    kind, name = tool.get("type"), tool.get("name")
    if kind not in (None, "custom"):
        raise RequestInvalid(
            f"{where}: tool type '{kind}' is one of Anthropic's server tools, which the "
            "rolecall gateway cannot run on other vendors; declare client tools "
            "{name, description, input_schema} only",
            "tools",
        )
    if not isinstance(name, str) or not name:
        raise RequestInvalid(f"{where}.name: Field required", "tools")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise RequestInvalid(f"{where}.input_schema: must be a JSON Schema object", "tools")
    function: dict[str, Any] = {"name": name, "parameters": schema}
    description = tool.get("description")
    if isinstance(description, str) and description:
        function["description"] = description
    return function


def read_tool_choice(raw: Any) -> dict[str, Any]:
    """``tool_choice`` (and ``disable_parallel_tool_use``) as the router's params."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    out: dict[str, Any] = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(raw.get("name"), str) and raw["name"]:
        out["tool_choice"] = {"type": "function", "function": {"name": raw["name"]}}
    else:
        raise RequestInvalid(
            "tool_choice: must be {type: auto}, {type: any}, {type: tool, name} or {type: none}",
            "tool_choice",
        )
    if raw.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out
