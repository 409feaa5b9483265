"""Anthropic Messages content (``system`` and ``messages``) as internal turns.

- ``system`` (a string or text blocks) becomes the system turn; text blocks keep
  their ``cache_control`` marks (an Anthropic provider sends them on, others drop them).
- A user turn's ``tool_result`` blocks become ``tool`` turns, in order, followed by
  one user turn with the rest (text, images, and any image a tool result carried:
  OpenAI's tool turns take text only). ``is_error`` prefixes the result with
  ``Error:``, the internal form having no flag for it.
- An assistant turn's ``tool_use`` blocks become its tool calls; its signed
  ``thinking`` and ``redacted_thinking`` blocks become its reasoning blocks, tagged
  with the protocol that signed them (a ``bedrock:`` or ``gemini:`` prefix names
  Bedrock's or Gemini's, see
  ``anthropic_format.wire_signature``; an untagged one is Anthropic's), so a provider
  of that protocol gets them back and any other leaves them out. A thinking block
  without a signature is dropped: no vendor would take it.

- Tool search and tool changes (``tool_reference`` results, a system turn's
  ``tool_addition``/``tool_removal``) load and withdraw tools (``_messages_tools``).

A block the gateway cannot carry (``document``, server tool results...) is a 400
naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rolecall.gateway._chat_request import RequestInvalid
from rolecall.gateway._messages_tools import ToolCatalog
from rolecall.types import (
    ContentPart,
    ImagePart,
    Message,
    MessageRole,
    ReasoningBlock,
    TextPart,
    ToolCall,
    parts_text,
)

__all__ = ["conversation", "system_turn"]


def system_turn(raw: Any) -> tuple[Message, ...]:
    """The ``system`` field as a system turn (none when it is empty)."""
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


def conversation(raw: Any, tools: ToolCatalog | None = None) -> tuple[Message, ...]:
    """The ``messages`` field as internal turns; ``tools`` follows the tools it loads."""
    tools = ToolCatalog() if tools is None else tools
    if not isinstance(raw, list) or not raw:
        raise RequestInvalid("messages: must be a non-empty array", "messages")
    out: list[Message] = []
    for index, item in enumerate(raw):
        where = f"messages.{index}"
        if not isinstance(item, dict):
            raise RequestInvalid(f"{where}: must be an object {{role, content}}", "messages")
        role, content = item.get("role"), item.get("content")
        if role == "system":  # Claude Code sends system turns inside messages
            out.extend(_system_turn(where, content, tools))
            continue
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
        if role == "user":
            out.extend(_user_turn(where, blocks, tools))
        else:
            out.extend(_assistant_turn(where, blocks))
    return tuple(out)


_TOOL_CHANGES = frozenset({"tool_addition", "tool_removal"})


def _system_turn(where: str, content: Any, tools: ToolCatalog) -> tuple[Message, ...]:
    """A system turn in ``messages``: its text, and the tools it adds or withdraws."""
    if not isinstance(content, list):
        return system_turn(content)
    texts = []
    for index, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") in _TOOL_CHANGES:
            tools.change(f"{where}.content.{index}", block)
        else:
            texts.append(block)
    return system_turn(texts)


def _block(where: str, block: Any) -> dict[str, Any]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise RequestInvalid(f"{where}: must be a content block with a type", "messages")
    return block


_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def _user_turn(where: str, blocks: list[dict[str, Any]], tools: ToolCatalog) -> list[Message]:
    """Tool results first (each a tool turn), then one user turn with everything else."""
    results: list[Message] = []
    parts: list[ContentPart] = []
    for index, block in enumerate(blocks):
        spot = f"{where}.content.{index}"
        kind = block["type"]
        if kind == "tool_result":
            message, images = _tool_result(spot, block, tools)
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
    texts: list[ContentPart] = []
    calls: list[ToolCall] = []
    reasoning: list[ReasoningBlock] = []
    for index, block in enumerate(blocks):
        spot = f"{where}.content.{index}"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(spot, block))
        elif kind == "tool_use":
            calls.append(_tool_use(spot, block))
        elif kind in _DROPPED_BLOCKS:
            signed = _reasoning_block(spot, block)
            if signed is not None:
                reasoning.append(signed)
        else:
            raise _unsupported_block(spot, kind, "text, tool_use and thinking")
    turn = _message("assistant", texts) if texts else Message("assistant")
    return [replace(turn, tool_calls=tuple(calls), reasoning=tuple(reasoning))]


# Protocols whose signatures the Messages door hands out tagged with their name.
_TAGGED = ("bedrock", "gemini")


def _protocol(opaque: str) -> tuple[str, str]:
    """The protocol that signed a signature (or redacted data) and the signature itself."""
    tag, colon, rest = opaque.partition(":")
    if colon and tag in _TAGGED:
        return tag, rest
    return "anthropic", opaque


def _reasoning_block(where: str, block: Mapping[str, Any]) -> ReasoningBlock | None:
    if block["type"] == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str):
            raise RequestInvalid(f"{where}.data: must be a string", "messages")
        protocol, opaque = _protocol(data)
        return ReasoningBlock(protocol, redacted=opaque) if opaque else None
    thinking, signature = block.get("thinking"), block.get("signature")
    if not isinstance(thinking, str) or not isinstance(signature, str | None):
        raise RequestInvalid(f"{where}: a thinking block needs thinking text", "messages")
    if not signature:
        return None
    protocol, opaque = _protocol(signature)
    return ReasoningBlock(protocol, thinking, signature=opaque)


def _unsupported_block(where: str, kind: str, allowed: str) -> RequestInvalid:
    return RequestInvalid(
        f"{where}: content block type '{kind}' is not supported by the rolecall gateway "
        f"here; send {allowed} blocks",
        "messages",
    )


def _message(role: MessageRole, parts: list[ContentPart]) -> Message:
    """A turn of ``parts``: plain text when one unmarked text block says it all, else the
    parts as given (several text blocks stay several)."""
    text = parts_text(parts)
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


def _tool_result(
    where: str, block: Mapping[str, Any], tools: ToolCatalog
) -> tuple[Message, list[ImagePart]]:
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
            elif kind == "tool_reference":  # a tool search's find: that tool, loaded
                texts.append(tools.reference(spot, item))
            else:
                raise _unsupported_block(spot, kind, "text, image and tool_reference")
        text = "\n".join(texts)
    else:
        raise RequestInvalid(
            f"{where}.content: must be a string or an array of text and image blocks", "messages"
        )
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return Message("tool", text, tool_call_id=call_id), images
