"""Reading a ConverseStream: AWS event-stream frames, then Converse events into chunks.

The body is ``application/vnd.amazon.eventstream``: binary frames, each checked by its
two CRC32 sums and cut from the byte stream by botocore's ``EventStreamBuffer`` (the
``bedrock`` extra), whatever the chunk boundaries. A frame is an ``event`` (its
``:event-type`` and a JSON payload), an ``exception`` (``:exception-type``, e.g.
``throttlingException``, arriving after HTTP 200) or an ``error`` (``:error-code``).

Events, in order: ``messageStart``; per content block, ``contentBlockStart`` (only for
tool use: its id and name), ``contentBlockDelta`` (``text``, ``toolUse.input`` JSON
fragments, ``reasoningContent`` text, then its signature, or ``redactedContent`` bytes)
and ``contentBlockStop``;
``messageStop`` (``stopReason``); ``metadata`` (``usage``). A tool call's pieces are
tied together by the block index; payloads carry a padding field ``p`` to ignore. A
reasoning signature (or redacted bytes) is a chunk ending a signed reasoning block, whose
text is the reasoning streamed since the block before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall.errors import MissingExtra
from rolecall.providers._bedrock_body import PROTOCOL
from rolecall.providers.base import optional_text, token_count
from rolecall.types import Chunk, ReasoningBlock, ToolCallDelta, Usage

__all__ = [
    "FILTER_STOP_REASONS",
    "Frame",
    "FrameError",
    "StreamState",
    "finish_reason",
    "iter_frames",
    "usage_of",
]

FILTER_STOP_REASONS = frozenset({"content_filtered", "guardrail_intervened"})
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
}


class FrameError(Exception):
    """The bytes are not valid event-stream frames (a checksum or a length is wrong)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its ``:message-type``, the event or exception name, the payload."""

    message_type: str
    name: str
    payload: bytes


def botocore_eventstream() -> Any:
    """botocore's event-stream module; absent -> MissingExtra naming ``rolecall[bedrock]``."""
    try:
        from botocore import eventstream
    except ModuleNotFoundError:
        raise MissingExtra("bedrock", "botocore", "the Bedrock provider") from None
    return eventstream


async def iter_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[Frame]:
    """Frames from body chunks cut anywhere; a torn tail at the end is simply not yielded
    (the caller sees the stream end without its final event)."""
    eventstream = botocore_eventstream()
    buffer = eventstream.EventStreamBuffer()
    async for chunk in chunks:
        buffer.add_data(chunk)
        try:
            messages = list(buffer)
        except eventstream.ParserError as exc:
            raise FrameError(f"undecodable event-stream frame: {exc}") from None
        for message in messages:
            headers = message.headers
            kind = str(headers.get(":message-type", "event"))
            if kind == "exception":
                name = str(headers.get(":exception-type", ""))
            elif kind == "error":
                name = str(headers.get(":error-code", ""))
            else:
                name = str(headers.get(":event-type", ""))
            payload = bytes(message.payload)
            if kind == "error" and not payload:
                payload = str(headers.get(":error-message", "")).encode()
            yield Frame(kind, name, payload)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(usage: Mapping[str, Any]) -> Usage:
    """Converse's usage; ``inputTokens`` leaves out cache reads and writes, counted apart."""
    read = token_count(usage.get("cacheReadInputTokens"))
    written = token_count(usage.get("cacheWriteInputTokens"))
    return Usage(
        token_count(usage.get("inputTokens")) + read + written,
        token_count(usage.get("outputTokens")),
        read,
        written,
    )


def finish_reason(stop_reason: object) -> str | None:
    """Converse's ``stopReason`` in OpenAI's words."""
    if not isinstance(stop_reason, str):
        return None
    return _FINISH.get(stop_reason, stop_reason)


@dataclass(slots=True)
class StreamState:
    """What one stream has said so far; :meth:`take` turns an event into a chunk."""

    structured: bool
    tools: dict[int, int] = field(default_factory=dict)  # block index -> tool call number
    json_parts: list[str] = field(default_factory=list)
    usage_fields: dict[str, Any] = field(default_factory=dict)
    received: int = 0
    stop_reason: str | None = None

    @property
    def calls(self) -> int:
        return len(self.tools)

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def usage(self) -> Usage:
        return usage_of(self.usage_fields)

    def take(self, name: str, data: Mapping[str, Any]) -> Chunk | None:
        if name == "contentBlockDelta":
            return self._delta(data)
        if name == "contentBlockStart":
            return self._start(data)
        if name == "messageStop":
            reason = data.get("stopReason")
            self.stop_reason = reason if isinstance(reason, str) and reason else "end_turn"
        elif name == "metadata" and isinstance(data.get("usage"), Mapping):
            self.usage_fields = dict(data["usage"])
        return None

    def _start(self, data: Mapping[str, Any]) -> Chunk | None:
        start = data.get("start")
        use = start.get("toolUse") if isinstance(start, Mapping) else None
        if not isinstance(use, Mapping):
            return None
        number = self.tools[_int(data.get("contentBlockIndex"))] = len(self.tools)
        delta = ToolCallDelta(
            number, id=optional_text(use.get("toolUseId")), name=optional_text(use.get("name"))
        )
        return Chunk(tool_calls=(delta,))

    def _delta(self, data: Mapping[str, Any]) -> Chunk | None:
        delta = data.get("delta")
        if not isinstance(delta, Mapping):
            return None
        text = delta.get("text")
        if isinstance(text, str):
            if not text:
                return None
            self.received += len(text)
            if self.structured:
                self.json_parts.append(text)
            return Chunk(text=text)
        use = delta.get("toolUse")
        if isinstance(use, Mapping):
            piece = use.get("input")
            number = self.tools.get(_int(data.get("contentBlockIndex")))
            if number is None or not isinstance(piece, str) or not piece:
                return None
            return Chunk(tool_calls=(ToolCallDelta(number, arguments=piece),))
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, Mapping):
            return _reasoning(reasoning)
        return None  # citations and the like


def _reasoning(delta: Mapping[str, Any]) -> Chunk | None:
    text, signature = delta.get("text"), delta.get("signature")
    sealed = delta.get("redactedContent")
    if isinstance(text, str):
        return Chunk(reasoning=text) if text else None
    if isinstance(signature, str) and signature:
        return Chunk(reasoning_block=ReasoningBlock(PROTOCOL, signature=signature))
    if isinstance(sealed, str) and sealed:
        return Chunk(reasoning_block=ReasoningBlock(PROTOCOL, redacted=sealed))
    return None
