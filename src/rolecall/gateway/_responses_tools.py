"""A Responses request's ``tools`` and ``tool_choice`` as the function tools every provider takes.

Function tools pass as they are. A ``namespace`` tool (functions grouped under one
name, as Codex CLI sends its sub-agent tools) is unpacked: each function in it
becomes a function named ``<namespace>__<name>`` (a dot, OpenAI's own spelling, is
not a valid function name at OpenAI or Anthropic), its description led by the
namespace's. A call to one goes back to the client as OpenAI returns it: a
``function_call`` with ``name`` and ``namespace`` apart; a ``function_call`` item
the client sends back with its ``namespace`` is joined the same way.

Every other tool type runs on OpenAI's side (``web_search``, ``file_search``,
``code_interpreter``, ``mcp``...) or is a form no function stands for
(``custom``, ``local_shell``...), so no other vendor can take it. Unless
``tool_choice`` forces one (a 400 naming it), such tools are left out of what
the provider sees and named in :attr:`ToolSet.omitted`, which the door reports.
A ``tool_choice`` of type ``allowed_tools`` names the functions a call may use
(:func:`read_allowed_tools`); the door offers the provider those alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall.gateway._chat_request import RequestInvalid

__all__ = ["ToolSet", "flat_name", "read_allowed_tools", "read_tool_choice", "read_tools"]

NAMESPACE_JOIN = "__"
_FUNCTION_FIX = "only function tools ({type: function, name, parameters}) reach every provider"
_TOOL_CHOICES = frozenset({"auto", "none", "required"})


def flat_name(namespace: str, name: str) -> str:
    """The function name a provider sees for ``name`` in ``namespace``."""
    return f"{namespace}{NAMESPACE_JOIN}{name}"


@dataclass(frozen=True, slots=True)
class ToolSet:
    """What the provider is offered, and what it takes to answer the client in its terms."""

    functions: list[dict[str, Any]] = field(default_factory=list)
    # A provider's function name -> (namespace, name) for the functions of namespace tools.
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    omitted: tuple[str, ...] = ()  # the tool types left out, sorted


def read_tools(raw: Any) -> ToolSet:
    """``tools`` as function tools; raise :class:`RequestInvalid` naming a malformed one."""
    if not isinstance(raw, list):
        raise RequestInvalid("'tools' must be an array of function tools", "tools")
    tools = ToolSet()
    omitted: set[str] = set()
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise RequestInvalid(f"{where} must be {{type: function, name, parameters}}", "tools")
        kind = tool.get("type")
        if kind == "function":
            _add(tools, _function(where, tool))
        elif kind == "namespace":
            _unpack(tools, where, tool, omitted)
        elif isinstance(kind, str) and kind:
            omitted.add(kind)
        else:
            raise RequestInvalid(f"{where} must be {{type: function, name, parameters}}", "tools")
    return ToolSet(tools.functions, tools.namespaced, tuple(sorted(omitted)))


def _function(where: str, tool: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise RequestInvalid(f"{where} must be {{type: function, name, parameters}}", "tools")
    function: dict[str, Any] = {"name": name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    if prefix:
        function["description"] = f"{prefix} {function.get('description', '')}".rstrip()
    return function


def _add(tools: ToolSet, function: dict[str, Any]) -> None:
    name = function["name"]
    if any(known["function"]["name"] == name for known in tools.functions):
        raise RequestInvalid(f"two tools are named '{name}': give each tool its own name", "tools")
    tools.functions.append({"type": "function", "function": function})


def _unpack(tools: ToolSet, where: str, tool: Mapping[str, Any], omitted: set[str]) -> None:
    namespace, members = tool.get("name"), tool.get("tools")
    if not isinstance(namespace, str) or not namespace or not isinstance(members, list):
        raise RequestInvalid(
            f"{where} must be {{type: namespace, name, description, tools: [...]}}", "tools"
        )
    description = tool.get("description")
    prefix = f"[{namespace}: {description}]" if isinstance(description, str) and description else ""
    for index, member in enumerate(members):
        inner = f"{where}.tools[{index}]"
        kind = member.get("type") if isinstance(member, dict) else None
        if kind != "function":
            if not isinstance(kind, str) or not kind:
                raise RequestInvalid(f"{inner} must be {{type: function, name}}", "tools")
            omitted.add(kind)
            continue
        function = _function(inner, member, prefix)
        name = function["name"]
        function["name"] = flat_name(namespace, name)
        _add(tools, function)
        tools.namespaced[function["name"]] = (namespace, name)


_ALLOWED_SHAPE = (
    "tool_choice must be {type: allowed_tools, mode: auto or required, tools: [{type: "
    "function, name}, ...]}"
)


def read_allowed_tools(raw: Any) -> tuple[list[str], str] | None:
    """(function names as the provider is offered them, mode) of an ``allowed_tools``
    choice, or None for any other choice."""
    if not isinstance(raw, dict) or raw.get("type") != "allowed_tools":
        return None
    listed, mode = raw.get("tools"), raw.get("mode")
    if mode not in ("auto", "required") or not isinstance(listed, list) or not listed:
        raise RequestInvalid(_ALLOWED_SHAPE, "tool_choice")
    names: list[str] = []
    for entry in listed:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or entry.get("type") != "function":
            kind = entry.get("type") if isinstance(entry, dict) else None
            if isinstance(kind, str) and kind != "function":
                raise RequestInvalid(
                    f"tool_choice.tools allows the tool type '{kind}', which the rolecall "
                    f"gateway cannot offer other vendors: {_FUNCTION_FIX}",
                    "tool_choice",
                )
            raise RequestInvalid(_ALLOWED_SHAPE, "tool_choice")
        namespace = entry.get("namespace")
        names.append(
            flat_name(namespace, name) if isinstance(namespace, str) and namespace else name
        )
    return names, str(mode)


def read_tool_choice(raw: Any, tools: ToolSet) -> str | dict[str, Any]:
    """``tool_choice`` in the router's form; a choice that forces a left-out tool is a 400."""
    if isinstance(raw, str) and raw in _TOOL_CHOICES:
        return raw
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "function" and isinstance(raw, dict) and isinstance(raw.get("name"), str):
        namespace = raw.get("namespace")
        name: str = raw["name"]
        if isinstance(namespace, str) and namespace:
            name = flat_name(namespace, name)
        elif not any(tool["function"]["name"] == name for tool in tools.functions):
            # A namespace's function named alone: the one it can only mean.
            members = [flat for flat, (_, own) in tools.namespaced.items() if own == name]
            name = members[0] if len(members) == 1 else name
        return {"type": "function", "function": {"name": name}}
    if isinstance(kind, str) and kind not in ("function", "allowed_tools"):
        raise RequestInvalid(
            f"'tool_choice' forces the tool type '{kind}', which the rolecall gateway cannot "
            f"offer other vendors: {_FUNCTION_FIX}; use auto, none, required or "
            "{type: function, name}",
            "tool_choice",
        )
    raise RequestInvalid(
        "'tool_choice' must be auto, none, required or {type: function, name}", "tool_choice"
    )
