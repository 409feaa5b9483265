"""The Anthropic Messages request body, translated from rolecall's OpenAI-shaped request.

Anthropic wants the system prompt as a top-level field, content as typed blocks
(``text``, ``image``, ``tool_use``, ``tool_result``) and strictly alternating user
and assistant turns, so consecutive ``tool`` turns become one user turn of
``tool_result`` blocks and adjacent turns of one role are merged. A parameter
Anthropic cannot honour (``seed``, ``logprobs``, ``n`` > 1, the penalties) is an
``unsupported`` error naming it, never a silent drop.

``reasoning_effort`` becomes ``thinking.budget_tokens``: minimal and low 1024 (Anthropic's
minimum), medium 4096, high 16384, and OpenAI's xhigh and max high's too; ``none`` sends no
``thinking`` (off is Claude's default).
Anthropic counts thinking in ``max_tokens`` and requires it to exceed the budget, so an unset
``max_tokens`` becomes the budget plus the usual 4096 for the answer, and a budget that would
not fit under the caller's ``max_tokens`` is cut to half of it (1024 at least,
:func:`effort_budget`); when even 1024 does not fit, the request goes without thinking, with
one log line saying so. An explicit ``thinking`` budget is the caller's own and is sent as
given (``config/params.py`` skips a provider it would not fit). Thinking also rules out
``temperature`` and ``top_k``.

An assistant turn's signed reasoning written by this protocol (``thinking`` blocks
with their signature, ``redacted_thinking`` blocks with their data) goes back first in
its turn, as the API requires of a tool loop's last assistant turn when thinking is on.
When that turn has none (an OpenAI-shaped client keeps no signatures; another vendor
wrote it before a hand-over), the request goes without thinking instead of meeting
Anthropic's 400 (:func:`thinking_unsigned`), with one log line saying so.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rolecall.config.params import DEFAULT_MAX_TOKENS as _DEFAULT_MAX_TOKENS
from rolecall.config.params import (
    IMAGE_TYPES,
    MIN_THINKING_BUDGET,
    sendable_params,
    vendor_limit_problem,
)
from rolecall.errors import ErrorKind, ProviderError
from rolecall.types import ChatRequest, ImagePart, Message, ReasoningBlock, TextPart

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EFFORTS_TAKEN",
    "PROTOCOL",
    "RESPOND_TOOL",
    "THINKING_BUDGETS",
    "THINKING_OFF",
    "anthropic_body",
    "effort_budget",
    "response_schema",
    "thinking_unsigned",
]

log = logging.getLogger("rolecall.providers")

DEFAULT_MAX_TOKENS = _DEFAULT_MAX_TOKENS["anthropic"]
PROTOCOL = "anthropic"  # the tag of the reasoning blocks this protocol signs
RESPOND_TOOL = "respond"
# minimal is low's budget, Anthropic's least (as Gemini's minimal is its low); OpenAI's xhigh
# and max are high's, as the Messages door reads Anthropic's own xhigh and max; none is no
# thinking, Claude's default, so it sends nothing.
THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 16384,
    "max": 16384,
}
THINKING_OFF = "none"
EFFORTS_TAKEN = "none, minimal, low, medium, high, xhigh or max"

Block = dict[str, Any]


def _unsupported(message: str, provider: str) -> ProviderError:
    return ProviderError(message, kind=ErrorKind.UNSUPPORTED, provider=provider, retryable=False)


def _bad(message: str, provider: str) -> ProviderError:
    return ProviderError(message, kind=ErrorKind.BAD_REQUEST, provider=provider, retryable=False)


# Parameters Anthropic has no field for, with the value that asks for nothing.
_NOT_TAKEN: dict[str, tuple[Any, ...]] = {
    "seed": (None,),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "n": (None, 1),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
}


def _check_unsupported(params: Mapping[str, Any], provider: str) -> None:
    for name, defaults in _NOT_TAKEN.items():
        if name in params and not any(
            params[name] is d or (params[name] == d and type(params[name]) is not bool)
            for d in defaults
        ):
            raise _unsupported(
                f"parameter '{name}' is not supported by the Anthropic Messages API: "
                f"remove it or route this call to a provider that takes it",
                provider,
            )


def response_schema(request: ChatRequest) -> Mapping[str, Any] | None:
    """The JSON Schema the answer must follow: ``response_schema``, else ``response_format``."""
    if request.response_schema is not None:
        return request.response_schema
    fmt = request.params.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return schema if isinstance(schema, Mapping) else {"type": "object"}
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    return None


# Messages ------------------------------------------------------------------------------
def _cache(block: Block, mark: Mapping[str, Any] | None) -> Block:
    if mark:
        block["cache_control"] = dict(mark)
    return block


# The only image types the Messages API takes inline (a 400 for any other).
_IMAGE_TYPES = sorted(IMAGE_TYPES["anthropic"])


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _image_type(data: str) -> str | None:
    """The type an image's first bytes show (of the four Anthropic takes), or None; only
    the first 16 base64 characters are decoded."""
    try:
        head = base64.b64decode(data[:16], validate=True)
    except ValueError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _image(part: ImagePart, provider: str) -> Block:
    inline = part.inline
    if inline is not None:
        media_type, data = inline
        if media_type.lower() not in _IMAGE_TYPES:
            raise _unsupported(
                f"image type {media_type[:40]} is not one Anthropic takes: send "
                + ", ".join(_IMAGE_TYPES),
                provider,
            )
        # Anthropic checks the data's first bytes against the declared type (a 400 when they
        # differ); a PNG sent as image/jpeg is sent as what it is.
        declared = media_type.lower()
        source = {"type": "base64", "media_type": _image_type(data) or declared, "data": data}
    elif part.url.startswith("https:"):
        source = {"type": "url", "url": part.url}
    else:
        raise _unsupported(
            f"image URL '{part.url[:40]}' cannot be sent to Anthropic: "
            "send a data: URL (base64) or an https: URL",
            provider,
        )
    return {"type": "image", "source": source}


def _content_blocks(message: Message, provider: str) -> list[Block]:
    blocks: list[Block] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            blocks.append(_cache({"type": "text", "text": part.text}, part.cache_control))
        else:
            blocks.append(_image(part, provider))
    return blocks


def _tool_use_blocks(message: Message, provider: str) -> list[Block]:
    blocks: list[Block] = []
    for call in message.tool_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise _bad(
                f"tool call '{call.id}' ({call.name}) has arguments that are not a JSON "
                "object: send its arguments as JSON object text",
                provider,
            )
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def _thinking_block(block: ReasoningBlock) -> Block:
    if block.redacted:
        return {"type": "redacted_thinking", "data": block.redacted}
    return {"type": "thinking", "thinking": block.text, "signature": block.signature}


def _turn(message: Message, provider: str) -> tuple[str, list[Block] | str]:
    """One message as (role, content): plain text stays a string, the rest become blocks."""
    if message.role == "tool":
        result: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.parts:
            result["content"] = _content_blocks(message, provider)
        else:
            result["content"] = message.content
        return "user", [result]
    if message.role == "assistant" and (message.tool_calls or message.reasoning):
        thinking = [_thinking_block(b) for b in message.reasoning if b.protocol == PROTOCOL]
        if message.tool_calls or thinking:
            if message.parts:
                text = _content_blocks(message, provider)
            else:
                text = [{"type": "text", "text": message.content}] if message.content else []
            return "assistant", thinking + text + _tool_use_blocks(message, provider)
    if message.parts:
        return message.role, _content_blocks(message, provider)
    return message.role, message.content


def _as_blocks(content: list[Block] | str) -> list[Block]:
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def anthropic_messages(request: ChatRequest, provider: str = "") -> list[dict[str, Any]]:
    """The non-system turns, alternating: adjacent turns of one role are merged."""
    out: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role, content = _turn(message, provider)
        if out and out[-1]["role"] == role:
            previous = out[-1]
            merged = _as_blocks(previous["content"]) + _as_blocks(content)
            # tool_result blocks must lead a user turn
            merged.sort(key=lambda block: block.get("type") != "tool_result")
            previous["content"] = merged
        else:
            out.append({"role": role, "content": content})
    return out


def _system(request: ChatRequest) -> str | list[Block] | None:
    system = [m for m in request.messages if m.role == "system"]
    if not system:
        return None
    if not any(m.parts for m in system):
        return "\n\n".join(m.content for m in system)
    blocks: list[Block] = []
    for message in system:
        parts = message.parts or (TextPart(message.content),)
        for part in parts:
            if isinstance(part, TextPart):
                blocks.append(_cache({"type": "text", "text": part.text}, part.cache_control))
    return blocks


# Tools ---------------------------------------------------------------------------------
def _tools(raw: Any, provider: str) -> list[Block]:
    if not isinstance(raw, list):
        raise _bad("'tools' must be a list of {type: function, function: {...}}", provider)
    tools: list[Block] = []
    for index, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
            raise _bad(f"tools[{index}] must be {{type: function, function: {{name}}}}", provider)
        out: Block = {"name": name}
        if function.get("description"):
            out["description"] = function["description"]
        schema = function.get("parameters")
        out["input_schema"] = (
            dict(schema) if isinstance(schema, Mapping) else {"type": "object", "properties": {}}
        )
        if isinstance(function.get("strict"), bool):  # the input held to the schema
            out["strict"] = function["strict"]
        tools.append(out)
    return tools


def _tool_choice(choice: Any, provider: str) -> Block:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if isinstance(name, str) and name:
        return {"type": "tool", "name": name}
    raise _bad(
        "'tool_choice' must be auto, none, required or {type: function, function: {name}}",
        provider,
    )


def _add_tools(
    body: dict[str, Any],
    params: Mapping[str, Any],
    schema: Mapping[str, Any] | None,
    provider: str,
) -> None:
    tools = _tools(params["tools"], provider) if params.get("tools") else []
    choice = (
        _tool_choice(params["tool_choice"], provider)
        if params.get("tool_choice") is not None
        else None
    )
    if schema is not None:
        tools.append(
            {
                "name": RESPOND_TOOL,
                "description": "Give the answer as this tool's input.",
                "input_schema": dict(schema),
            }
        )
        if choice is None and len(tools) == 1:
            choice = {"type": "tool", "name": RESPOND_TOOL}
    if params.get("parallel_tool_calls") is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice


# Sampling and thinking -----------------------------------------------------------------
def _thinking(body: dict[str, Any], params: Mapping[str, Any], provider: str) -> None:
    effort = params.get("reasoning_effort")
    thinking = params.get("thinking")
    if thinking is not None:
        body["thinking"] = thinking
    elif effort is not None and effort != THINKING_OFF:
        if str(effort) not in THINKING_BUDGETS:
            raise _bad(
                f"reasoning_effort {effort!r} is not one of {EFFORTS_TAKEN}",
                provider,
            )
        budget = effort_budget(str(effort), params.get("max_tokens"))
        if budget is None:
            log.info(
                "provider %s: thinking off for this request: max_tokens %s leaves no room "
                "for Anthropic's smallest thinking budget (%d)",
                provider,
                body["max_tokens"],
                MIN_THINKING_BUDGET,
            )
        else:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if params.get("max_tokens") is None:
                body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    enabled = isinstance(body.get("thinking"), Mapping) and body["thinking"].get("type") in (
        "enabled",
        "adaptive",
    )
    if enabled:
        for name in ("temperature", "top_k"):
            if params.get(name) is not None:
                raise _unsupported(
                    f"parameter '{name}' cannot be set with thinking on Anthropic: "
                    f"unset {name} or drop reasoning_effort/thinking",
                    provider,
                )


def effort_budget(effort: str, max_tokens: object) -> int | None:
    """The thinking budget of ``reasoning_effort`` under ``max_tokens`` (which must exceed
    it): the effort's own when it fits, else half of ``max_tokens`` so the answer keeps
    room, 1024 at least; None when ``max_tokens`` leaves no room for 1024."""
    budget = THINKING_BUDGETS[effort]
    if not isinstance(max_tokens, int) or budget < max_tokens:
        return budget
    capped = max(max_tokens // 2, MIN_THINKING_BUDGET)
    return capped if capped < max_tokens else None


def thinking_unsigned(messages: Sequence[Message], protocol: str = PROTOCOL) -> bool:
    """Whether the conversation is in a tool loop (tool results after the last assistant
    turn) whose assistant turn has no reasoning ``protocol`` signed: Claude refuses such a
    request with thinking on (Anthropic's API and Bedrock's alike)."""
    answered = False
    for message in reversed(messages):
        if message.role == "tool":
            answered = True
        elif message.role == "assistant":
            return answered and not any(b.protocol == protocol for b in message.reasoning)
    return False


def _thinking_on(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive")


def _drop_unsigned_thinking(body: dict[str, Any], request: ChatRequest, provider: str) -> None:
    if _thinking_on(body) and thinking_unsigned(request.messages):
        del body["thinking"]
        log.info(
            "provider %s: thinking off for this request: the assistant turn whose tool "
            "calls it answers has no signed thinking block to send back",
            provider,
        )


def _check_forced_tool(body: Mapping[str, Any], provider: str) -> None:
    thinking = body.get("thinking")
    choice = body.get("tool_choice")
    if not (isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive")):
        return
    if isinstance(choice, Mapping) and choice.get("type") in ("any", "tool"):
        forced = (
            "a JSON schema answer (response_format)"
            if choice.get("name") == RESPOND_TOOL
            else "tool_choice required or a named function"
        )
        raise _unsupported(
            f"{forced} cannot be combined with thinking on Anthropic (it forces tool use): "
            "drop reasoning_effort/thinking or use tool_choice auto",
            provider,
        )


def _sampling(body: dict[str, Any], params: Mapping[str, Any]) -> None:
    for key in ("temperature", "top_p", "top_k", "metadata"):
        if params.get(key) is not None:
            body[key] = params[key]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    user = params.get("user")
    if user is not None:
        body["metadata"] = {**(body.get("metadata") or {}), "user_id": str(user)}


def anthropic_body(
    model: str, request: ChatRequest, *, stream: bool, provider: str = ""
) -> dict[str, Any]:
    """The Messages API body; a parameter Anthropic cannot honour raises ``unsupported``."""
    _check_unsupported(request.params, provider)
    refused = vendor_limit_problem("anthropic", request.params)
    if refused is not None:
        raise _unsupported(f"Anthropic would refuse the request: {refused[1]}", provider)
    params = sendable_params("anthropic", request.params)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": anthropic_messages(request, provider),
    }
    system = _system(request)
    if system:
        body["system"] = system
    _sampling(body, params)
    _thinking(body, params, provider)
    _add_tools(body, params, response_schema(request), provider)
    _check_forced_tool(body, provider)
    if "thinking" in body:
        _drop_unsigned_thinking(body, request, provider)
    extra = params.get("extra_body")
    if isinstance(extra, Mapping):
        body.update(extra)
    elif extra is not None:
        raise _bad("'extra_body' must be an object", provider)
    if stream:
        body["stream"] = True
    return body
