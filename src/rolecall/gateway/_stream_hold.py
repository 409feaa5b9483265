"""What a streamed answer says once a tool call has begun, held for the end of the stream.

Anthropic's and OpenAI's Responses events describe one block (item) at a time: a
block is started, receives its deltas, and is stopped before the next one starts.
The router's chunks do not promise that order: an OpenAI-compatible server may
interleave two tool calls' argument pieces (call 0, call 1, call 0 again), and a
call is only known to be whole when the stream ends. So the doors hold the first
call until then (the Responses door keeps its item open, streaming its arguments; the
Messages door sends its block whole, as its name may come in pieces too), and hold
what comes after it (later calls, text, thinking) to send each whole, in the order it
began, once that call is done. A reasoning block that ends meanwhile (Claude's interleaved
thinking, between two calls) is held in its place, signature and all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rolecall.types import Chunk, ReasoningBlock, ToolCallDelta

__all__ = ["HeldBlock", "HeldCall", "HeldText", "Holding"]


@dataclass(slots=True)
class HeldCall:
    index: int
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    @property
    def joined(self) -> ToolCallDelta:
        """The whole call as one piece."""
        return ToolCallDelta(self.index, self.id, self.name or None, "".join(self.arguments))


@dataclass(slots=True)
class HeldText:
    kind: str  # "text" or "reasoning"
    pieces: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HeldBlock:
    """The end of a reasoning block: its signature (its text is the reasoning held since
    the block before), or a redacted block whole."""

    block: ReasoningBlock


class Holding:
    """The open tool call (``live``) and what arrived after it began (``later``)."""

    def __init__(self, first: ToolCallDelta) -> None:
        self.live = HeldCall(first.index, first.id, first.name or "", [first.arguments])
        self.later: list[HeldCall | HeldText | HeldBlock] = []
        self._calls = {first.index: self.live}

    def add(self, chunk: Chunk) -> list[ToolCallDelta]:
        """Hold ``chunk``'s content; the pieces of the live call are also returned, for a
        door that streams them as they come."""
        if chunk.reasoning:
            self._text("reasoning", chunk.reasoning)
        if chunk.reasoning_block is not None:
            self.later.append(HeldBlock(chunk.reasoning_block))
        if chunk.text:
            self._text("text", chunk.text)
        live: list[ToolCallDelta] = []
        for piece in chunk.tool_calls:
            call = self._calls.get(piece.index)
            if call is None:
                call = self._calls[piece.index] = HeldCall(piece.index)
                self.later.append(call)
            call.id = call.id or piece.id
            call.name += piece.name or ""
            call.arguments.append(piece.arguments)
            if call is self.live:
                live.append(piece)
        return live

    def _text(self, kind: str, text: str) -> None:
        last = self.later[-1] if self.later else None
        if isinstance(last, HeldText) and last.kind == kind:
            last.pieces.append(text)
        else:
            self.later.append(HeldText(kind, [text]))
