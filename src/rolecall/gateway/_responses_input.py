"""A Responses ``input`` read into the router's turns: messages, function calls, their outputs.

Items are read in order. An assistant message and the function calls after it
are one assistant turn (as a vendor returned them); a call's output is a tool
turn naming its function, and an output whose call is not in the input is
refused (no vendor can answer it). A call to a namespace tool's function names
the function as the provider was offered it (``_responses_tools``). Images in
outputs (a screenshot tool's) follow the run of outputs as one user turn, since
OpenAI's chat tool turns take text only (as through Anthropic Messages).

A reasoning item whose ``encrypted_content`` the gateway handed out
(``_encrypted_reasoning``) gives its signed blocks back to the assistant turn it
belongs to: the one that follows it, or the one it follows when a tool's output or a
user turn comes next; the provider that signed them gets them back, any other leaves
them out. Any other reasoning item (its text alone, or content OpenAI encrypted) is
left out, as the Messages door leaves out an unsigned thinking block: no vendor here
takes it back. An Anthropic or Bedrock provider whose tool loop then lacks its
thinking answers without thinking and says so (``x-rolecall-thinking: off``).
``item_reference`` items name stored items, which the gateway does not keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rolecall.gateway._chat_request import RequestInvalid
from rolecall.gateway._encrypted_reasoning import MARK, decode_blocks
from rolecall.gateway._responses_tools import flat_name
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

__all__ = ["FIX_STATEFUL", "read_input"]

FIX_STATEFUL = ": send the full conversation in 'input' (with store: false)"
_ROLES: dict[str, MessageRole] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}


def read_input(raw: Any) -> list[Message]:
    """``input`` (a string or items) as turns; raise :class:`RequestInvalid` naming the item."""
    return _Turns().read(raw)


class _Turns:
    """``input`` items read in order into turns: calls joined to their assistant turn."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.call_names: dict[str, str] = {}
        self.output_images: list[ImagePart] = []  # of the outputs read since the last turn
        self.reasoning: list[ReasoningBlock] = []  # read, not yet given to an assistant turn

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
            if kind == "reasoning":
                self.reasoning += _reasoning(where, item)
                continue
            assistant = kind == "function_call" or (
                kind == "message" and item.get("role") == "assistant"
            )
            if not assistant:
                self._reasoning_to_last()
            if kind != "function_call_output":
                self._images_turn()
            if kind == "message":
                self._add(_message(where, item))
            elif kind == "function_call":
                self._call(where, item)
            elif kind == "function_call_output":
                self._output(where, item)
            elif kind == "item_reference":
                raise RequestInvalid(
                    f"{where}: item references need stored items; the gateway keeps "
                    f"none{FIX_STATEFUL}",
                    where,
                )
            else:
                raise RequestInvalid(
                    f"{where}.type {kind!r} is not supported: send message, function_call "
                    "and function_call_output items",
                    where,
                )
        self._reasoning_to_last()
        self._images_turn()
        if not self.messages:
            raise RequestInvalid("'input' has no message or function call to answer", "input")
        return self.messages

    def _add(self, message: Message) -> None:
        """A turn; an assistant turn takes the reasoning read before it."""
        if message.role == "assistant" and self.reasoning:
            message = replace(message, reasoning=(*message.reasoning, *self.reasoning))
            self.reasoning = []
        self.messages.append(message)

    def _reasoning_to_last(self) -> None:
        """Reasoning read after an assistant turn's items, given to that turn (none other
        follows it before the next tool output or user turn)."""
        last = self.messages[-1] if self.messages else None
        if self.reasoning and last is not None and last.role == "assistant":
            self.messages[-1] = replace(last, reasoning=(*last.reasoning, *self.reasoning))
        self.reasoning = []

    def _images_turn(self) -> None:
        """The images of the outputs just read, as a user turn after them."""
        if self.output_images:
            self.messages.append(Message("user", "", tuple(self.output_images)))
            self.output_images = []

    def _call(self, where: str, item: Mapping[str, Any]) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        arguments = item.get("arguments", "{}")
        if not isinstance(call_id, str) or not call_id:
            raise RequestInvalid(f"{where}.call_id must be a non-empty string", where)
        if not isinstance(name, str) or not name:
            raise RequestInvalid(f"{where}.name must be a non-empty string", where)
        if not isinstance(arguments, str):
            raise RequestInvalid(f"{where}.arguments must be a JSON string", where)
        namespace = item.get("namespace")
        if isinstance(namespace, str) and namespace:  # as the provider was offered it
            name = flat_name(namespace, name)
        call = ToolCall(call_id, name, arguments)
        self.call_names[call_id] = name
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant" and not self.reasoning:
            # One turn: its text and its calls (reasoning read since begins another).
            self.messages[-1] = replace(last, tool_calls=(*last.tool_calls, call))
        else:
            self._add(Message("assistant", tool_calls=(call,)))

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
        texts: tuple[TextPart, ...] = ()
        if isinstance(output, list):
            parts = [_output_part(f"{where}.output[{i}]", p) for i, p in enumerate(output)]
            texts = tuple(part for part in parts if isinstance(part, TextPart))
            output = parts_text(texts)
            self.output_images += [part for part in parts if isinstance(part, ImagePart)]
        if not isinstance(output, str):
            raise RequestInvalid(
                f"{where}.output must be a string or input_text and input_image parts", where
            )
        self.messages.append(
            Message(
                "tool",
                output,
                parts=texts if len(texts) > 1 else (),  # several stay several
                tool_call_id=call_id,
                name=self.call_names[call_id],
            )
        )


def _reasoning(where: str, item: Mapping[str, Any]) -> tuple[ReasoningBlock, ...]:
    """The signed blocks a reasoning item carries; none for one the gateway did not write."""
    content = item.get("encrypted_content")
    if not isinstance(content, str) or not content.startswith(MARK):
        return ()
    blocks = decode_blocks(content)
    if blocks is None:
        raise RequestInvalid(
            f"{where}.encrypted_content is damaged: send the reasoning item back as the "
            "gateway gave it, or leave the item out",
            where,
        )
    return blocks


def _output_part(where: str, part: Any) -> ContentPart:
    if isinstance(part, dict) and part.get("type") in ("input_text", "input_image"):
        return _part(where, part)
    raise RequestInvalid(
        f"{where}: a function_call_output takes input_text and input_image parts only", where
    )


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
    text = parts_text(parts)
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return Message(role, text)
    if not any(isinstance(part, ImagePart) for part in parts):
        return Message(role, text, parts)
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
