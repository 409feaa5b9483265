"""An OpenAI Responses body (``POST /v1/responses``), checked and turned into a router call.

``instructions`` becomes the first system turn; ``input`` (a string, or items:
messages, ``function_call`` and ``function_call_output``) becomes the turns that
follow, in rolecall's internal form, so any provider can answer. An assistant
message and the function calls after it are one assistant turn (as a vendor
returned them); a call's output is a tool turn naming its function.

The gateway keeps nothing between requests, so every request carries the whole
conversation: ``previous_response_id``, ``conversation`` and ``item_reference``
items (which name stored state) are refused with a 400 that says to send the full
input with ``store: false``. ``store`` itself is accepted and changes nothing.
Reasoning items a client sends back are dropped: each vendor takes only its own
(signed or encrypted) reasoning, so earlier thinking is not replayed, as it is not
through chat completions.

Every field is carried to the router (per-call params, the turns, the response
schema), accepted and knowingly left out (``store``, ``metadata``, ``include``,
``truncation``: OpenAI's storage, labels and context management; rolecall records
every call itself and never truncates), or refused with a 400 naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall.config.params import known_params, suggest_param
from rolecall.gateway._chat_request import RequestInvalid
from rolecall.types import ContentPart, ImagePart, Message, MessageRole, TextPart, ToolCall

__all__ = ["RequestInvalid", "ResponsesRequest", "parse_responses_request"]


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: Mapping[str, Any] | None = None
    stream: bool = False
    # The request's settings as a response object repeats them (tools, tool_choice, text...).
    echo: dict[str, Any] = field(default_factory=dict)


_OWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "max_output_tokens",
        "reasoning",
        "text",
        "user",
    }
)
# Accepted and not forwarded: OpenAI-side storage, labels, context management and stream
# obfuscation; rolecall keeps nothing for later and never truncates an input.
_IGNORED = frozenset(
    {"store", "metadata", "include", "truncation", "stream_options", "prompt_cache_retention"}
)
# Fields that need state OpenAI keeps; the gateway keeps none.
_STATEFUL = {
    "previous_response_id": "the gateway keeps no responses",
    "conversation": "the gateway keeps no conversations",
    "prompt": "the gateway keeps no stored prompts",
    "background": "the gateway runs no background responses",
    "context_management": "the gateway does no server-side compaction",
}
_FIX_STATEFUL = ": send the full conversation in 'input' (with store: false)"
# Chat completions' names for fields the Responses API spells otherwise.
_CHAT_NAMES = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "functions": "tools",
    "function_call": "tool_choice",
}
# Forwarded as given: another protocol's parameters (top_k, thinking, stop...), which the
# openai SDK sends at the top level when a client puts them in its extra_body.
_FORWARDED = known_params(None) - _OWN - _IGNORED - _CHAT_NAMES.keys() - {"store", "metadata", "n"}
_KNOWN = _OWN | _IGNORED | _STATEFUL.keys() | _FORWARDED
_INCLUDABLE = frozenset(
    {
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
    }
)
_TOOL_CHOICES = frozenset({"auto", "none", "required"})
_ROLES: dict[str, MessageRole] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}


def parse_responses_request(body: Any) -> ResponsesRequest:
    """Check a Responses body; raise :class:`RequestInvalid` naming the field."""
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    _refuse_unknown(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("'model' is required: a role name or a provider id", "model")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise RequestInvalid("'stream' must be true or false", "stream")
    _check_ignored(body)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise RequestInvalid("'instructions' must be a string", "instructions")
    messages = _Turns().read(body.get("input"))
    if instructions:
        messages.insert(0, Message("system", instructions))
    params, echo = _params(body)
    schema = _text_format(body.get("text"), params)
    echo["instructions"] = instructions
    echo["text"] = body.get("text") or {"format": {"type": "text"}}
    return ResponsesRequest(model, tuple(messages), params, schema, stream, echo)


def _refuse_unknown(body: Mapping[str, Any]) -> None:
    for name, value in body.items():
        if name in _STATEFUL and value not in (None, False):
            raise RequestInvalid(
                f"'{name}' is not supported: {_STATEFUL[name]}{_FIX_STATEFUL}", name
            )
        if name in _CHAT_NAMES:
            raise RequestInvalid(
                f"'{name}' is chat completions' field: the Responses API takes "
                f"'{_CHAT_NAMES[name]}' instead",
                name,
            )
        if name not in _KNOWN:
            close = suggest_param(name, _KNOWN)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise RequestInvalid(
                f"unknown field '{name}'{hint}: the rolecall gateway takes OpenAI's Responses "
                "fields; put vendor-specific ones in 'extra_body'",
                name,
            )


def _check_ignored(body: Mapping[str, Any]) -> None:
    store = body.get("store")
    if store is not None and not isinstance(store, bool):
        raise RequestInvalid("'store' must be true or false", "store")
    truncation = body.get("truncation")
    if truncation is not None and truncation not in ("auto", "disabled"):
        raise RequestInvalid("'truncation' must be auto or disabled", "truncation")
    include = body.get("include")
    if include is None:
        return
    if not isinstance(include, list):
        raise RequestInvalid("'include' must be an array of strings", "include")
    for value in include:
        if value not in _INCLUDABLE:
            raise RequestInvalid(
                f"include value {value!r} is not known: use {', '.join(sorted(_INCLUDABLE))}",
                "include",
            )


class _Turns:
    """``input`` items read in order into turns: calls joined to their assistant turn."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.call_names: dict[str, str] = {}

    def read(self, raw: Any) -> list[Message]:
        if isinstance(raw, str):
            return [Message("user", raw)]
        if not isinstance(raw, list) or not raw:
            raise RequestInvalid("'input' must be a string or a non-empty array of items", "input")
        for index, item in enumerate(raw):
            where = f"input[{index}]"
            if not isinstance(item, dict):
                raise RequestInvalid(f"{where} must be an object", where)
            kind = item.get("type", "message")
            if kind == "message":
                self.messages.append(_message(where, item))
            elif kind == "function_call":
                self._call(where, item)
            elif kind == "function_call_output":
                self._output(where, item)
            elif kind == "item_reference":
                raise RequestInvalid(
                    f"{where}: item references need stored items; the gateway keeps "
                    f"none{_FIX_STATEFUL}",
                    where,
                )
            elif kind != "reasoning":  # earlier reasoning: no vendor takes another's
                raise RequestInvalid(
                    f"{where}.type {kind!r} is not supported: send message, function_call "
                    "and function_call_output items",
                    where,
                )
        if not self.messages:
            raise RequestInvalid("'input' has no message or function call to answer", "input")
        return self.messages

    def _call(self, where: str, item: Mapping[str, Any]) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        arguments = item.get("arguments", "{}")
        if not isinstance(call_id, str) or not call_id:
            raise RequestInvalid(f"{where}.call_id must be a non-empty string", where)
        if not isinstance(name, str) or not name:
            raise RequestInvalid(f"{where}.name must be a non-empty string", where)
        if not isinstance(arguments, str):
            raise RequestInvalid(f"{where}.arguments must be a JSON string", where)
        call = ToolCall(call_id, name, arguments)
        self.call_names[call_id] = name
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant":  # one turn: its text and its calls
            self.messages[-1] = Message(
                "assistant", last.content, last.parts, (*last.tool_calls, call)
            )
        else:
            self.messages.append(Message("assistant", tool_calls=(call,)))

    def _output(self, where: str, item: Mapping[str, Any]) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise RequestInvalid(f"{where}.call_id must be a non-empty string", where)
        if call_id not in self.call_names:
            raise RequestInvalid(
                f"{where}: no function_call with call_id {call_id!r} before it; send the "
                "function_call item with its output",
                where,
            )
        output = item.get("output")
        if isinstance(output, list):
            output = "".join(_output_text(f"{where}.output[{i}]", p) for i, p in enumerate(output))
        if not isinstance(output, str):
            raise RequestInvalid(f"{where}.output must be a string or input_text parts", where)
        self.messages.append(
            Message("tool", output, tool_call_id=call_id, name=self.call_names[call_id])
        )


def _output_text(where: str, part: Any) -> str:
    if isinstance(part, dict) and part.get("type") == "input_text":
        text = part.get("text")
        if isinstance(text, str):
            return text
    raise RequestInvalid(f"{where}: a function_call_output takes input_text parts only", where)


def _message(where: str, item: Mapping[str, Any]) -> Message:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise RequestInvalid(
            f"{where}.role must be user, assistant, system or developer", f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return Message(role, content)
    if not isinstance(content, list):
        raise RequestInvalid(
            f"{where}.content must be a string or an array of content parts", f"{where}.content"
        )
    parts = tuple(_part(f"{where}.content[{i}]", part) for i, part in enumerate(content))
    text = "".join(part.text for part in parts if isinstance(part, TextPart))
    if not any(isinstance(part, ImagePart) for part in parts):
        return Message(role, text)
    if role not in ("user", "system"):
        raise RequestInvalid(f"{where}: images are only allowed in user messages", where)
    return Message(role, text, parts)


def _part(where: str, part: Any) -> ContentPart:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "refusal"):
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise RequestInvalid(f"{where}.text must be a string", where)
        return TextPart(text)
    if kind == "input_image":
        url, detail = part.get("image_url"), part.get("detail")
        if part.get("file_id") and not url:
            raise RequestInvalid(
                f"{where}: file_id images need OpenAI's file storage; send image_url "
                "(a data: or https: URL)",
                where,
            )
        if not isinstance(url, str) or not url.startswith(("data:", "https:", "http:")):
            raise RequestInvalid(f"{where}.image_url must be a data: or https: URL", where)
        return ImagePart(url, detail if isinstance(detail, str) and detail != "auto" else None)
    raise RequestInvalid(
        f"{where}.type {kind!r} is not supported: send input_text, output_text and "
        "input_image parts",
        where,
    )


_RANGES: dict[str, tuple[float, float]] = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}


def _params(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The router's params and the settings the response repeats."""
    params: dict[str, Any] = {}
    echo: dict[str, Any] = {"tools": [], "tool_choice": "auto", "parallel_tool_calls": True}
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        echo[name] = value
        if value is None:
            continue
        if not _is_number(value) or not low <= value <= high:
            raise RequestInvalid(f"'{name}' must be a number from {low:g} to {high:g}", name)
        params[name] = value
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RequestInvalid(
                "'max_output_tokens' must be an integer of at least 1", "max_output_tokens"
            )
        params["max_tokens"] = limit
    echo["max_output_tokens"] = limit
    tools = body.get("tools")
    if tools is not None:
        params["tools"] = _tools(tools)
        echo["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        params["tool_choice"] = _tool_choice(choice)
        echo["tool_choice"] = choice
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise RequestInvalid(
                "'parallel_tool_calls' must be true or false", "parallel_tool_calls"
            )
        params["parallel_tool_calls"] = echo["parallel_tool_calls"] = parallel
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise RequestInvalid("'user' must be a string", "user")
        params["user"] = echo["user"] = user
    echo["reasoning"] = _reasoning(body.get("reasoning"), params)
    metadata = body.get("metadata")
    echo["metadata"] = metadata if isinstance(metadata, dict) else {}
    echo["truncation"] = body.get("truncation") or "disabled"
    for name in _FORWARDED:
        if body.get(name) is not None:
            params[name] = body[name]
    return params, echo


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# Built-in tools run on OpenAI's side (search, files, computers, code, images, MCP servers).
_FUNCTION_FIX = "only function tools ({type: function, name, parameters}) reach every provider"


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise RequestInvalid("'tools' must be an array of function tools", "tools")
    builtin = sorted(
        {str(tool.get("type")) for tool in raw if isinstance(tool, dict)} - {"function"}
    )
    if builtin:
        raise RequestInvalid(
            f"built-in tools are not available through the rolecall gateway "
            f"({', '.join(builtin)}): {_FUNCTION_FIX}",
            "tools",
        )
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(raw):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not name:
            raise RequestInvalid(
                f"tools[{index}] must be {{type: function, name, parameters}}", "tools"
            )
        function = {"name": name}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any) -> str | dict[str, Any]:
    if isinstance(raw, str) and raw in _TOOL_CHOICES:
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        return {"type": "function", "function": {"name": raw["name"]}}
    raise RequestInvalid(
        "'tool_choice' must be auto, none, required or {type: function, name}", "tool_choice"
    )


def _reasoning(raw: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``reasoning.effort`` becomes the router's ``reasoning_effort`` (each adapter maps it)."""
    if raw is None:
        return {"effort": None, "summary": None}
    if not isinstance(raw, dict):
        raise RequestInvalid("'reasoning' must be an object {effort, summary}", "reasoning")
    effort = raw.get("effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise RequestInvalid("reasoning.effort must be a string", "reasoning")
        params["reasoning_effort"] = effort
    return {"effort": effort, "summary": raw.get("summary")}


def _text_format(raw: Any, params: dict[str, Any]) -> Mapping[str, Any] | None:
    """``text.format`` as the response schema; ``text.verbosity`` as OpenAI's verbosity."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestInvalid("'text' must be an object {format, verbosity}", "text")
    if raw.get("verbosity") is not None:
        params["verbosity"] = raw["verbosity"]
    spec = raw.get("format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise RequestInvalid("text.format.schema must be a JSON Schema object", "text")
        # Chat's response_format too, so a vendor that takes it gets the client's strict and name.
        chat_spec = {key: spec[key] for key in ("name", "description", "strict") if key in spec}
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {**chat_spec, "schema": schema},
        }
        return schema
    raise RequestInvalid("text.format.type must be text, json_object or json_schema", "text")
