"""Value types shared by every layer: messages, requests, replies, usage, attempts.

The OpenAI chat format is the lingua franca: a message's content is text or parts
(text, images), an assistant turn may carry tool calls, a ``tool`` turn answers one
by its id, and tools themselves travel in the call's params (``tools``,
``tool_choice``, ``parallel_tool_calls``) in OpenAI's function format. Each adapter
translates both ways; nothing a caller sends is dropped without a word.

Reasoning that a vendor signs (Anthropic's thinking blocks, Bedrock's reasoning
content for Claude) comes back as :class:`ReasoningBlock` values tagged with the wire
protocol that wrote them; an assistant turn carries them in ``reasoning`` and only an
adapter of that protocol sends them back (a signature binds them to their vendor).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from rolecall.errors import ErrorKind

__all__ = [
    "Attempt",
    "ChatRequest",
    "Chunk",
    "Completion",
    "ContentPart",
    "ImagePart",
    "Message",
    "MessageDict",
    "Outcome",
    "ReasoningBlock",
    "Reply",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "normalize_messages",
    "parts_text",
]

MessageRole = Literal["system", "user", "assistant", "tool"]
Outcome = Literal["ok", "retry", "handover", "cancelled"]


class MessageDict(TypedDict):
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text inside a message's parts; ``cache_control`` is Anthropic's prompt-caching mark."""

    text: str
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image as the caller gave it: a ``data:`` URL, or an ``https:`` URL.

    rolecall never fetches a URL itself: a vendor that takes only inline images is
    sent ``data:`` URLs, and an ``https:`` image is an error for it.
    """

    url: str
    detail: str | None = None

    @property
    def inline(self) -> tuple[str, str] | None:
        """``(media_type, base64 data)`` of a ``data:...;base64,`` URL, else None."""
        if not self.url.startswith("data:"):
            return None
        head, comma, data = self.url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not comma or encoding != "base64" or not media_type:
            return None
        return media_type, data

    @property
    def inline_problem(self) -> str | None:
        """Why this ``data:`` URL holds no image any vendor reads (no media type or base64
        marker, no data, a character outside base64 at either end of it), else None; None
        for an ``https:`` URL. Only the ends are read: a 5 MB image costs what a small one does."""
        if not self.url.startswith("data:"):
            return None
        inline = self.inline
        if inline is None:
            return "is a data: URL without a media type and base64 data"
        data = inline[1]
        if not data.strip():
            return "is a data: URL that has no image data"
        for char in data[:_BASE64_ENDS] + data[-_BASE64_ENDS:]:
            if char not in _BASE64:
                return f"is a data: URL whose data is not base64 (it holds {char!r})"
        return None


# Standard and URL-safe base64, with the line breaks of wrapped (MIME) base64.
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\r\n")
_BASE64_ENDS = 64  # characters looked at at each end of an image's data


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model asked to call: ``arguments`` is JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: ``index`` ties the pieces of one call together."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ReasoningBlock:
    """A block of reasoning as its vendor must get it back: its text and opaque signature,
    or a redacted block's opaque data. ``protocol`` names the wire protocol that wrote it
    (``anthropic``, ``bedrock``): no other protocol takes it."""

    protocol: str
    text: str = ""
    signature: str = ""
    redacted: str = ""  # the data of a redacted block (its text is withheld by the vendor)


def parts_text(parts: Iterable[ContentPart]) -> str:
    """The text of ``parts`` as one string, for a vendor that takes no parts: a line
    break between them (as llama.cpp's server joins them), never run together."""
    return "\n".join(part.text for part in parts if isinstance(part, TextPart))


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. ``content`` is its text; ``parts`` is set when it was given as parts
    (several, an image, a cache mark), and then ``content`` is :func:`parts_text`."""

    role: MessageRole
    content: str = ""
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: the call it answers
    # A tool turn: the function's name, when the caller gave it; any other turn: the
    # participant's name (OpenAI's ``name``, which only OpenAI's protocol carries).
    name: str | None = None
    reasoning: tuple[ReasoningBlock, ...] = ()  # an assistant turn: its signed reasoning

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(part for part in self.parts if isinstance(part, ImagePart))


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. ``input_tokens`` counts every input token, cached ones included;
    ``cached_input_tokens`` are those read from the vendor's prompt cache and
    ``cache_creation_input_tokens`` those written to it (both priced apart).
    ``output_tokens`` counts every output token, thinking included; ``reasoning_tokens``
    are those the model spent thinking, when the vendor counts them apart."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        out = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cached_input_tokens:
            out["cached_input_tokens"] = self.cached_input_tokens
        if self.cache_creation_input_tokens:
            out["cache_creation_input_tokens"] = self.cache_creation_input_tokens
        if self.reasoning_tokens:
            out["reasoning_tokens"] = self.reasoning_tokens
        return out


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What an adapter sends: messages plus merged parameters (temperature, max_tokens...)."""

    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    # A JSON Schema the answer must match (structured output), or None for free text.
    response_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """An adapter's answer to one call."""

    text: str
    model: str
    usage: Usage = Usage()
    finish_reason: str | None = None  # "stop", "length", "tool_calls", "content_filter"
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None  # thinking text the vendor returned apart from the answer
    reasoning_blocks: tuple[ReasoningBlock, ...] = ()  # that thinking as it must go back
    # The caller's stop sequence that ended the answer (finish_reason "stop"), when the
    # vendor says which (Anthropic does; OpenAI and Gemini do not).
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a stream; the last chunk carries usage and finish reason."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    reasoning: str = ""
    # Ends a reasoning block: its signature (its text is the reasoning streamed since the
    # block before), or a redacted block whole.
    reasoning_block: ReasoningBlock | None = None
    stop_sequence: str | None = None  # with the finish reason: see Completion

    @property
    def has_content(self) -> bool:
        """Text, reasoning or a tool call: what proves a provider is answering."""
        return bool(self.text or self.reasoning or self.tool_calls or self.reasoning_block)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one provider, as recorded in replies, events and the run log."""

    provider: str
    attempt: int
    outcome: Outcome
    error_kind: ErrorKind | None
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "error_kind": self.error_kind.value if self.error_kind else None,
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """The router's answer: text plus who produced it and how."""

    text: str
    role: str
    provider: str
    model: str
    usage: Usage
    latency_ms: float
    attempts: tuple[Attempt, ...]
    finish_reason: str | None = None
    cost_usd: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    reasoning_blocks: tuple[ReasoningBlock, ...] = ()
    stop_sequence: str | None = None  # see Completion

    def to_dict(self) -> dict[str, Any]:
        out = {
            "text": self.text,
            "role": self.role,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "latency_ms": round(self.latency_ms, 3),
            "attempts": [a.to_dict() for a in self.attempts],
            "finish_reason": self.finish_reason,
            "cost_usd": self.cost_usd,
        }
        if self.tool_calls:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.reasoning:
            out["reasoning"] = self.reasoning
        return out


# Tuples, not sets: a role that is an object or a list compares unequal instead of raising.
_ROLES = ("system", "user", "assistant", "tool")
_PLAIN_ROLES = ("system", "user", "assistant")  # no tool_call_id, name or parts
# The keys of OpenAI's chat message that rolecall carries; any other is refused, naming it.
_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
# Fields of a reply's own message, which a client sends back as history (openai's SDK
# dumps them all): taken, and not sent on, as no vendor takes them back. Those that ask
# something only when set (audio, the deprecated function_call) must be null.
_REPLY_FIELDS = ("refusal", "annotations", "reasoning_content", "reasoning")
_NULL_REPLY_FIELDS = ("audio", "function_call")


def normalize_messages(
    messages: Sequence[Message | Mapping[str, Any]] | str,
) -> tuple[Message, ...]:
    """Accept a prompt string, dicts in OpenAI's chat shape, or :class:`Message` objects.

    Raises ValueError naming the message and field for anything it cannot carry
    (not a list of messages, an unknown role or content part type, a ``data:`` URL
    without a media type, a tool turn without its call id...).
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    if type(messages) is tuple:  # normalized already (a router called from a door): as is
        for item in messages:
            if type(item) is not Message:
                break
        else:
            return messages
    if isinstance(messages, bytes | bytearray | Mapping) or not isinstance(messages, Iterable):
        raise ValueError(
            f"messages must be a prompt string or a list of messages, not "
            f"{type(messages).__name__}: pass [{{'role': 'user', 'content': '...'}}]"
        )
    return tuple(
        item if isinstance(item, Message) else _message(index, item)
        for index, item in enumerate(messages)
    )


def _message(index: int, item: Mapping[str, Any]) -> Message:
    try:
        role = item.get("role")
    except AttributeError:  # not a mapping: a pydantic model, a bare string, None...
        dump = getattr(item, "model_dump", None)
        if callable(dump):  # openai's ChatCompletionMessage from a reply, sent back as is
            dumped = dump(exclude_none=True)
            if isinstance(dumped, Mapping):
                return _message(index, dumped)
        raise ValueError(
            f"messages[{index}] must be a message object {{'role': ..., 'content': ...}}, "
            f"not {type(item).__name__}"
        ) from None
    content = item.get("content")
    if type(content) is str and role in _PLAIN_ROLES and len(item) == 2:
        return Message(role, content)  # the common turn, all its checks passed at once
    where = f"messages[{index}]"
    _check_keys(where, item)
    if role == "developer":  # OpenAI's newer name for the system turn
        role = "system"
    if role not in _ROLES:
        raise ValueError(f"{where}.role must be system, user, assistant or tool")
    tool_calls = _tool_calls(where, item.get("tool_calls"))
    parts: tuple[ContentPart, ...] = ()
    if isinstance(content, list):
        parts = tuple(_part(f"{where}.content[{i}]", part) for i, part in enumerate(content))
        text = parts_text(parts)
        if len(parts) == 1 and isinstance(parts[0], TextPart) and not parts[0].cache_control:
            parts = ()  # one plain text part: the text alone says it all
    elif content is None and (tool_calls or role == "assistant"):
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        raise ValueError(f"{where}.content must be a string or a list of content parts")
    tool_call_id = item.get("tool_call_id")
    if role == "tool" and not (isinstance(tool_call_id, str) and tool_call_id):
        raise ValueError(f"{where}.tool_call_id is required in a tool message")
    if tool_calls and role != "assistant":
        raise ValueError(f"{where}.tool_calls is only allowed in an assistant message")
    if parts and role not in ("user", "system") and any(isinstance(p, ImagePart) for p in parts):
        raise ValueError(f"{where}: images are only allowed in user messages")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{where}.name must be a string")
    return Message(
        role,
        text,
        parts=parts,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id if role == "tool" else None,
        name=name or None,
    )


def _check_keys(where: str, item: Mapping[str, Any]) -> None:
    """Refuse a key rolecall would not send on: a typo or a field it lacks, named."""
    for key in item:
        if key in _KEYS:
            continue
        if key in _REPLY_FIELDS and item.get("role") == "assistant":
            continue
        if key in _NULL_REPLY_FIELDS and item[key] is None:
            continue
        if key in _NULL_REPLY_FIELDS:
            raise ValueError(
                f"{where}.{key} cannot be sent: "
                + (
                    "OpenAI's deprecated function call; send it as tool_calls"
                    if key == "function_call"
                    else "audio turns are not supported; send the turn's text as content"
                )
            )
        shown = repr(key)[:60]
        close = difflib.get_close_matches(str(key), (*_KEYS, *_REPLY_FIELDS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(
            f"{where}: unknown key {shown}{hint}; a message takes "
            f"{', '.join(_KEYS)}: leave the key out or fix its name"
        )


def _part(where: str, part: Any) -> ContentPart:
    if not isinstance(part, Mapping):
        raise ValueError(f"{where} must be an object with a type")
    kind = part.get("type")
    if kind == "text" or (kind is None and "text" in part):
        text = part.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{where}.text must be a string")
        cache = part.get("cache_control")
        return TextPart(text, cache if isinstance(cache, Mapping) else None)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str) or not url.startswith(("data:", "https:", "http:")):
            raise ValueError(f"{where}.image_url.url must be a data: or https: URL")
        detail = image.get("detail") if isinstance(image, Mapping) else None
        found = ImagePart(url, detail if isinstance(detail, str) else None)
        if url.startswith("data:") and found.inline is None:
            raise ValueError(
                f"{where}.image_url.url is a data: URL without a media type and base64 data: "
                "write it as data:image/png;base64,<data>"
            )
        return found
    raise ValueError(f"{where}.type {kind!r} is not supported: send text and image_url parts")


def _tool_calls(where: str, raw: Any) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{where}.tool_calls must be a list")
    calls: list[ToolCall] = []
    for i, call in enumerate(raw):
        spot = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        call_id = call.get("id") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(call_id, str):
            raise ValueError(f"{spot} must have an id and a function {{name, arguments}}")
        name, arguments = function.get("name"), function.get("arguments", "{}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{spot}.function.name must be a non-empty string")
        if not isinstance(arguments, str):  # an object: send it as the JSON text it stands for
            try:
                arguments = json.dumps(arguments, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{spot}.function.arguments must be JSON text or a JSON object"
                ) from None
        calls.append(ToolCall(call_id, name, arguments))
    return tuple(calls)
