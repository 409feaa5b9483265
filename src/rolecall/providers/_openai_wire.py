"""OpenAI Chat Completions on the wire: messages out, tool calls, reasoning and usage back.

The shared types already speak OpenAI's chat format, so this is mostly a faithful
copy: content parts (text, ``image_url``) stay parts, an assistant turn that called
tools carries ``tool_calls`` (content null when it said nothing), a tool turn its
``tool_call_id``. Anthropic's ``cache_control`` marks are not OpenAI's (its prompt
cache needs no marks) and are left out. Replies are read the other way: tool calls,
``reasoning_content`` (DeepSeek, vLLM and other compatible servers) and cached tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rolecall.providers.base import token_count
from rolecall.types import ImagePart, Message, TextPart, ToolCall, ToolCallDelta, Usage

__all__ = [
    "message_dict",
    "reasoning_of",
    "tool_call_deltas",
    "tool_calls_of",
    "unsupported_param",
    "usage_of",
]


def message_dict(message: Message) -> dict[str, Any]:
    """One message in OpenAI's shape."""
    out: dict[str, Any] = {"role": message.role}
    if message.parts:
        out["content"] = [_part(part) for part in message.parts]
    elif message.role == "assistant" and message.tool_calls and not message.content:
        out["content"] = None
    else:
        out["content"] = message.content
    if message.tool_calls:
        out["tool_calls"] = [call.to_dict() for call in message.tool_calls]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
    elif message.name:  # the participant's name (a tool turn's is its function's: implied)
        out["name"] = message.name
    return out


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def unsupported_param(params: Mapping[str, Any]) -> str | None:
    """A parameter this adapter cannot carry back to the caller, named with the fix."""
    n = params.get("n")
    if n is not None and n != 1:
        return (
            f"n > 1 is not supported: n={n!r} asks for several answers and a reply "
            "carries one; send n=1 (or leave it out) and call again for another answer"
        )
    return None


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "{}" if value is None else json.dumps(value, ensure_ascii=False)


def tool_calls_of(message: Mapping[str, Any]) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` as ToolCalls (entries that are not function calls are skipped)."""
    raw = message.get("tool_calls")
    if not isinstance(raw, list):
        return ()
    calls: list[ToolCall] = []
    for index, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        call_id = call.get("id")
        calls.append(
            ToolCall(
                call_id if isinstance(call_id, str) and call_id else f"call_{index}",
                function["name"],
                _arguments(function.get("arguments")),
            )
        )
    return tuple(calls)


def tool_call_deltas(delta: Mapping[str, Any]) -> tuple[ToolCallDelta, ...]:
    """``delta.tool_calls`` pieces: ``{index, id?, function: {name?, arguments}}``."""
    raw = delta.get("tool_calls")
    if not isinstance(raw, list):
        return ()
    pieces: list[ToolCallDelta] = []
    for position, call in enumerate(raw):
        if not isinstance(call, dict):
            continue
        index = call.get("index")
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id, name = call.get("id"), function.get("name")
        arguments = function.get("arguments")
        pieces.append(
            ToolCallDelta(
                index=index if isinstance(index, int) else position,
                id=call_id if isinstance(call_id, str) and call_id else None,
                name=name if isinstance(name, str) and name else None,
                arguments="" if arguments is None else _arguments(arguments),
            )
        )
    return tuple(pieces)


def reasoning_of(message: Mapping[str, Any]) -> str:
    """Thinking text: ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning`` (OpenRouter)."""
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def usage_of(value: object) -> Usage | None:
    """``usage``, with ``prompt_tokens_details.cached_tokens`` apart (already in the prompt)
    and ``completion_tokens_details.reasoning_tokens`` (already in the completion)."""
    if not isinstance(value, dict):
        return None
    details = value.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    details = value.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    return Usage(
        input_tokens=token_count(prompt),
        output_tokens=token_count(completion),
        cached_input_tokens=token_count(cached),
        reasoning_tokens=token_count(reasoning),
    )
