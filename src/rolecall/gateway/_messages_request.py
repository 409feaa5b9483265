"""An incoming Anthropic Messages body, checked and turned into a router call.

The body is translated into the internal form (OpenAI-shaped messages and params,
see :mod:`rolecall.types`) so that any provider, of any protocol, can answer it:

- ``system`` (a string or text blocks) becomes the system turn; text blocks keep
  their ``cache_control`` marks (an Anthropic provider sends them on, others drop them).
- A user turn's ``tool_result`` blocks become ``tool`` turns, in order, followed by
  one user turn with the rest (text, images, and any image a tool result carried:
  OpenAI's tool turns take text only). ``is_error`` prefixes the result with
  ``Error:``, the internal form having no flag for it.
- An assistant turn's ``tool_use`` blocks become its tool calls; ``thinking`` and
  ``redacted_thinking`` blocks of earlier turns are dropped: their signatures bind
  them to the vendor that wrote them, and no other vendor takes them.
- ``tools`` become function tools, ``tool_choice`` auto/any/tool/none becomes
  auto/required/{function}/none (``disable_parallel_tool_use`` becomes
  ``parallel_tool_calls: false``), ``stop_sequences`` becomes ``stop``.
- ``thinking: {type: enabled, budget_tokens}`` (or ``adaptive``) is sent as
  ``thinking`` (the Anthropic adapter's field) and as the ``reasoning_effort`` the
  budget stands for (every other protocol's); ``disabled`` asks for nothing.
  ``output_config.effort`` is a ``reasoning_effort`` too, ``output_config.format``
  a response schema.
- ``top_k`` is forwarded: the adapters whose protocol has no such field drop it
  with a logged warning (``config/params.py``).

Fields of Anthropic's API that steer Anthropic's own servers (``metadata``,
``service_tier``, ``container``, ``mcp_servers``, ``context_management``...) are
accepted and left out, so an agent such as Claude Code that sends them works; any
other field is a 400 naming it. A content block or tool the gateway cannot carry
(``document``, a server tool such as ``web_search``) is a 400 naming it too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall.config.params import suggest_param
from rolecall.gateway._chat_request import RequestInvalid
from rolecall.types import ContentPart, ImagePart, Message, MessageRole, TextPart, ToolCall

__all__ = ["MessagesRequest", "RequestInvalid", "parse_messages_request", "thinking_effort"]


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: Mapping[str, Any] | None = None
    stream: bool = False


_OWN = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "stream",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "thinking",
        "output_config",
    }
)
# Accepted and not forwarded: they steer Anthropic's own servers (storage, capacity,
# server-side tools and context editing, workspaces), which no other vendor has.
IGNORED_FIELDS = frozenset(
    {
        "metadata",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "cache_control",
        "diagnostics",
        "inference_geo",
        "speed",
        "user_profile_id",
        "workspace_id",
        "betas",
        "anthropic_version",
    }
)
_KNOWN = _OWN | IGNORED_FIELDS
# Budget (tokens) below which each reasoning_effort is asked for: the Anthropic
# adapter's own budgets (low 1024, medium 4096, high 16384) read backwards.
_EFFORT_BY_BUDGET = ((4096, "low"), (16384, "medium"))
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def parse_messages_request(body: Any, *, counting: bool = False) -> MessagesRequest:
    """Check an Anthropic Messages body; raise :class:`RequestInvalid` naming the field.

    ``counting``: a ``count_tokens`` body, which needs no ``max_tokens`` (and a
    generation's fields in it are accepted and unused).
    """
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    _refuse_unknown(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("'model' is required: a role name, a provider id or an alias", "model")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise RequestInvalid("'stream' must be true or false", "stream")
    params = _params(body, counting)
    schema = _output_config(body.get("output_config"), params)
    system = _system(body.get("system"))
    return MessagesRequest(
        model=model,
        messages=system + _messages(body.get("messages")),
        params=params,
        response_schema=schema,
        stream=stream,
    )


def _refuse_unknown(body: Mapping[str, Any]) -> None:
    for name in body:
        if name not in _KNOWN:
            close = suggest_param(name, _KNOWN)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise RequestInvalid(
                f"{name}: Extra inputs are not permitted{hint}; the rolecall gateway takes "
                "the fields of Anthropic's Messages API",
                name,
            )


# Parameters ----------------------------------------------------------------------------
def _params(body: Mapping[str, Any], counting: bool = False) -> dict[str, Any]:
    max_tokens = None if counting else _max_tokens(body.get("max_tokens"))
    params: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not _is_number(value) or not 0 <= value <= 1:
                raise RequestInvalid(f"{name}: must be a number from 0 to 1", name)
            params[name] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise RequestInvalid("top_k: must be an integer of at least 0", "top_k")
        params["top_k"] = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestInvalid("stop_sequences: must be an array of strings", "stop_sequences")
        if stop:
            params["stop"] = stop
    tools = body.get("tools")
    if tools is not None:
        converted = _tools(tools)
        if converted:
            params["tools"] = converted
    if body.get("tool_choice") is not None:
        params.update(_tool_choice(body["tool_choice"]))
    params.update(_thinking(body.get("thinking"), max_tokens))
    return params


def _max_tokens(value: Any) -> int:
    if value is None:
        raise RequestInvalid("max_tokens: Field required", "max_tokens")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestInvalid(
            "max_tokens: must be an integer of at least 1 (the gateway does not pre-warm "
            "prompt caches)",
            "max_tokens",
        )
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def thinking_effort(budget: int) -> str:
    """The ``reasoning_effort`` a thinking budget stands for."""
    for below, effort in _EFFORT_BY_BUDGET:
        if budget < below:
            return effort
    return "high"


def _thinking(raw: Any, max_tokens: int | None) -> dict[str, Any]:
    if raw is None:
        return {}
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "disabled":
        return {}
    if kind in ("adaptive", "between_tools"):
        return {"thinking": {"type": kind}, "reasoning_effort": "medium"}
    if kind != "enabled":
        raise RequestInvalid(
            "thinking: must be {type: enabled, budget_tokens}, {type: adaptive} or "
            "{type: disabled}",
            "thinking",
        )
    budget = raw.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
        raise RequestInvalid(
            "thinking.budget_tokens: must be an integer of at least 1024", "thinking"
        )
    if max_tokens is not None and budget >= max_tokens:
        raise RequestInvalid(
            f"thinking.budget_tokens: must be less than max_tokens ({max_tokens})", "thinking"
        )
    thinking = {"type": "enabled", "budget_tokens": budget}
    return {"thinking": thinking, "reasoning_effort": thinking_effort(budget)}


def _output_config(raw: Any, params: dict[str, Any]) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestInvalid("output_config: must be an object", "output_config")
    effort = raw.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise RequestInvalid(
                "output_config.effort: must be low, medium, high, xhigh or max", "output_config"
            )
        params.setdefault("reasoning_effort", _EFFORTS[effort])
    fmt = raw.get("format")
    if fmt is None:
        return None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    if (
        not isinstance(fmt, dict)
        or fmt.get("type") != "json_schema"
        or not isinstance(schema, dict)
    ):
        raise RequestInvalid(
            "output_config.format: must be {type: json_schema, schema: {...}}", "output_config"
        )
    return schema


# Tools ---------------------------------------------------------------------------------
def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise RequestInvalid(
            "tools: must be an array of {name, description, input_schema}", "tools"
        )
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(raw):
        where = f"tools.{index}"
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
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any) -> dict[str, Any]:
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


# Messages ------------------------------------------------------------------------------
def _system(raw: Any) -> tuple[Message, ...]:
    if raw is None or raw == "" or raw == []:
        return ()
    if isinstance(raw, str):
        return (Message("system", raw),)
    if not isinstance(raw, list):
        raise RequestInvalid("system: must be a string or an array of text blocks", "system")
    parts: list[ContentPart] = []
    for index, block in enumerate(raw):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise RequestInvalid(
                f"system.{index}: must be a text block {{type: text, text}}", "system"
            )
        parts.append(_text(f"system.{index}", block))
    return (_message("system", parts),)


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise RequestInvalid("messages: must be a non-empty array", "messages")
    out: list[Message] = []
    for index, item in enumerate(raw):
        where = f"messages.{index}"
        if not isinstance(item, dict):
            raise RequestInvalid(f"{where}: must be an object {{role, content}}", "messages")
        role, content = item.get("role"), item.get("content")
        if role not in ("user", "assistant"):
            raise RequestInvalid(
                f"{where}.role: must be user or assistant (the system prompt is the "
                "top-level 'system' field)",
                "messages",
            )
        if isinstance(content, str):
            out.append(Message(role, content))
            continue
        if not isinstance(content, list):
            raise RequestInvalid(
                f"{where}.content: must be a string or an array of content blocks", "messages"
            )
        blocks = [_block(f"{where}.content.{i}", block) for i, block in enumerate(content)]
        out.extend(_user_turn(where, blocks) if role == "user" else _assistant_turn(where, blocks))
    return tuple(out)


def _block(where: str, block: Any) -> dict[str, Any]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise RequestInvalid(f"{where}: must be a content block with a type", "messages")
    return block


_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def _user_turn(where: str, blocks: list[dict[str, Any]]) -> list[Message]:
    """Tool results first (each a tool turn), then one user turn with everything else."""
    results: list[Message] = []
    parts: list[ContentPart] = []
    for index, block in enumerate(blocks):
        spot = f"{where}.content.{index}"
        kind = block["type"]
        if kind == "tool_result":
            message, images = _tool_result(spot, block)
            results.append(message)
            parts.extend(images)
        elif kind == "text":
            parts.append(_text(spot, block))
        elif kind == "image":
            parts.append(_image(spot, block))
        elif kind not in _DROPPED_BLOCKS:
            raise _unsupported_block(spot, kind, "text, image and tool_result")
    if parts:
        results.append(_message("user", parts))
    elif not results:
        results.append(Message("user", ""))
    return results


def _assistant_turn(where: str, blocks: list[dict[str, Any]]) -> list[Message]:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(blocks):
        spot = f"{where}.content.{index}"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(spot, block).text)
        elif kind == "tool_use":
            calls.append(_tool_use(spot, block))
        elif kind not in _DROPPED_BLOCKS:
            raise _unsupported_block(spot, kind, "text, tool_use and thinking")
    return [Message("assistant", "".join(texts), tool_calls=tuple(calls))]


def _unsupported_block(where: str, kind: str, allowed: str) -> RequestInvalid:
    return RequestInvalid(
        f"{where}: content block type '{kind}' is not supported by the rolecall gateway "
        f"here; send {allowed} blocks",
        "messages",
    )


def _message(role: MessageRole, parts: list[ContentPart]) -> Message:
    """A turn of ``parts``: plain text when one unmarked text block says it all."""
    text = "".join(part.text for part in parts if isinstance(part, TextPart))
    if len(parts) == 1 and isinstance(parts[0], TextPart) and not parts[0].cache_control:
        return Message(role, text)
    return Message(role, text, parts=tuple(parts))


def _text(where: str, block: Mapping[str, Any]) -> TextPart:
    text = block.get("text")
    if not isinstance(text, str):
        raise RequestInvalid(f"{where}.text: must be a string", "messages")
    cache = block.get("cache_control")
    return TextPart(text, cache if isinstance(cache, dict) else None)


def _image(where: str, block: Mapping[str, Any]) -> ImagePart:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        assert isinstance(source, dict)
        media_type, data = source.get("media_type"), source.get("data")
        if isinstance(media_type, str) and media_type and isinstance(data, str) and data:
            return ImagePart(f"data:{media_type};base64,{data}")
    elif kind == "url":
        assert isinstance(source, dict)
        url = source.get("url")
        if isinstance(url, str) and url.startswith(("https:", "http:")):
            return ImagePart(url)
    raise RequestInvalid(
        f"{where}.source: must be {{type: base64, media_type, data}} or {{type: url, url}}",
        "messages",
    )


def _tool_use(where: str, block: Mapping[str, Any]) -> ToolCall:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise RequestInvalid(f"{where}: a tool_use block needs an id and a name", "messages")
    if not isinstance(arguments, dict):
        raise RequestInvalid(f"{where}.input: must be an object", "messages")
    return ToolCall(call_id, name, json.dumps(arguments, ensure_ascii=False))


def _tool_result(where: str, block: Mapping[str, Any]) -> tuple[Message, list[ImagePart]]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise RequestInvalid(f"{where}.tool_use_id: Field required", "messages")
    content = block.get("content")
    images: list[ImagePart] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts: list[str] = []
        for index, item in enumerate(content):
            spot = f"{where}.content.{index}"
            kind = _block(spot, item)["type"]
            if kind == "text":
                texts.append(_text(spot, item).text)
            elif kind == "image":
                images.append(_image(spot, item))
            else:
                raise _unsupported_block(spot, kind, "text and image")
        text = "\n".join(texts)
    else:
        raise RequestInvalid(
            f"{where}.content: must be a string or an array of text and image blocks", "messages"
        )
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return Message("tool", text, tool_call_id=call_id), images
