"""Reading an Anthropic Messages event stream into chunks, and the reply's usage and finish.

A stream is a sequence of content blocks, each opened by ``content_block_start``
and filled by ``content_block_delta`` events: ``text_delta`` (answer text),
``thinking_delta`` (reasoning, kept apart; its ``signature_delta`` ends the block's
reasoning with a chunk carrying the signature, and a ``redacted_thinking`` block
comes whole as such a chunk), ``input_json_delta`` (a ``tool_use``
block's input, in fragments). A tool call's pieces are tied together by its number
among the answer's tool calls (0, 1, ...), not by the block's index, which counts the
text and thinking blocks too. With structured output the forced ``respond`` tool's input
is the answer text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall.providers._anthropic_body import PROTOCOL, RESPOND_TOOL
from rolecall.providers.base import optional_text, token_count
from rolecall.types import Chunk, ReasoningBlock, ToolCallDelta, Usage

__all__ = ["StreamState", "finish_reason", "input_tokens", "matched_stop", "usage_of"]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _object(value: object) -> Mapping[str, Any]:
    """A JSON object, or an empty one for anything else: a field of the wrong shape reads
    as absent instead of failing on ``.get``."""
    return value if isinstance(value, dict) else {}


def input_tokens(usage: Mapping[str, Any]) -> int:
    """Every prompt token: Anthropic reports cache reads and writes apart from the rest."""
    return (
        token_count(usage.get("input_tokens"))
        + token_count(usage.get("cache_creation_input_tokens"))
        + token_count(usage.get("cache_read_input_tokens"))
    )


def usage_of(usage: Mapping[str, Any]) -> Usage:
    details = usage.get("output_tokens_details")
    # A stream's counts are kept flat (StreamState._add_usage).
    thinking = (details if isinstance(details, Mapping) else usage).get("thinking_tokens")
    return Usage(
        input_tokens(usage),
        token_count(usage.get("output_tokens")),
        token_count(usage.get("cache_read_input_tokens")),
        token_count(usage.get("cache_creation_input_tokens")),
        token_count(thinking),
    )


def finish_reason(stop_reason: object) -> str | None:
    """Anthropic's ``stop_reason`` in OpenAI's words."""
    if not isinstance(stop_reason, str):
        return None
    return _FINISH.get(stop_reason, stop_reason)


def matched_stop(stop_reason: object, stop_sequence: object) -> str | None:
    """The stop sequence that ended the answer, when Anthropic says one did."""
    if stop_reason == "stop_sequence" and isinstance(stop_sequence, str):
        return stop_sequence
    return None


@dataclass(slots=True)
class StreamState:
    """What one stream has said so far; :meth:`take` turns an event into a chunk."""

    structured: bool
    blocks: dict[int, str] = field(default_factory=dict)  # index -> text/thinking/tool/respond
    tools: dict[int, int] = field(default_factory=dict)  # block index -> tool call number
    usage_fields: dict[str, int] = field(default_factory=dict)
    json_parts: list[str] = field(default_factory=list)
    received: int = 0
    calls: int = 0
    finish: str | None = None
    stop_sequence: str | None = None
    model: str | None = None
    answered_by_tool: bool = False
    done: bool = False

    def usage(self) -> Usage:
        return usage_of(self.usage_fields)

    def _add_usage(self, usage: Any) -> None:
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                if key == "output_tokens_details" and isinstance(value, Mapping):
                    key, value = "thinking_tokens", value.get("thinking_tokens")
                if isinstance(value, int) and not isinstance(value, bool):
                    self.usage_fields[key] = value  # message_delta's counts are cumulative

    def take(self, name: str, data: Mapping[str, Any]) -> Chunk | None:
        if name == "content_block_start":
            return self._start(data)
        if name == "content_block_delta":
            return self._delta(data)
        if name == "message_start":
            message = _object(data.get("message"))
            model = message.get("model")
            self.model = model if isinstance(model, str) and model else self.model
            self._add_usage(message.get("usage"))
        elif name == "message_delta":
            delta = _object(data.get("delta"))
            stop_reason = delta.get("stop_reason")
            self.finish = finish_reason(stop_reason) or self.finish
            self.stop_sequence = matched_stop(stop_reason, delta.get("stop_sequence"))
            self._add_usage(data.get("usage"))
        return None

    def _start(self, data: Mapping[str, Any]) -> Chunk | None:
        index = _int(data.get("index"))
        block = _object(data.get("content_block"))
        kind = block.get("type")
        if kind != "tool_use":
            self.blocks[index] = str(kind)
            sealed = block.get("data")
            if kind == "redacted_thinking" and isinstance(sealed, str):
                return Chunk(reasoning_block=ReasoningBlock(PROTOCOL, redacted=sealed))
            return None
        if self.structured and block.get("name") in (RESPOND_TOOL, None):
            self.blocks[index] = "respond"
            self.answered_by_tool = True
            return None
        self.blocks[index] = "tool"
        number = self.tools[index] = self.calls
        self.calls += 1
        delta = ToolCallDelta(
            number, id=optional_text(block.get("id")), name=optional_text(block.get("name"))
        )
        return Chunk(tool_calls=(delta,))

    def _delta(self, data: Mapping[str, Any]) -> Chunk | None:
        index = _int(data.get("index"))
        delta = _object(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            piece = delta.get("text")
            if not isinstance(piece, str) or not piece:
                return None
            self.received += len(piece)
            if self.structured:
                self.json_parts.append(piece)
            return Chunk(text=piece)
        if kind == "thinking_delta":
            piece = delta.get("thinking")
            return Chunk(reasoning=piece) if isinstance(piece, str) and piece else None
        if kind == "signature_delta":
            signature = delta.get("signature")
            if not isinstance(signature, str) or not signature:
                return None
            return Chunk(reasoning_block=ReasoningBlock(PROTOCOL, signature=signature))
        if kind != "input_json_delta":
            return None  # citations_delta and the like
        piece = delta.get("partial_json")
        if not isinstance(piece, str) or not piece:
            return None
        number = self.tools.get(index)
        if number is not None:
            return Chunk(tool_calls=(ToolCallDelta(number, arguments=piece),))
        if self.structured:
            self.received += len(piece)
            self.json_parts.append(piece)
            return Chunk(text=piece)
        return None
