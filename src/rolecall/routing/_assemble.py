"""A streamed answer put back together: text, reasoning, tool calls, usage, finish reason.

Whole answers that may be raced are read as streams (only a first token tells a
live provider from a stalled one), and a stream's final reply needs the same
assembly, so both use this one accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rolecall.routing._surrogates import paired
from rolecall.types import Chunk, Completion, ReasoningBlock, ToolCall, Usage

__all__ = ["Assembly"]


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Assembly:
    """Every chunk of one answer, added in order; :meth:`completion` is the whole."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    blocks: list[ReasoningBlock] = field(default_factory=list)  # signed reasoning, in order
    block_start: int = 0  # the reasoning piece the next signed block's text starts at
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    usage: Usage | None = None
    finish: str | None = None
    stop_sequence: str | None = None
    model: str | None = None
    received: int = 0  # characters of text so far (named when a stream breaks)

    def add(self, chunk: Chunk) -> None:
        if chunk.text:
            self.text.append(chunk.text)
            self.received += len(chunk.text)
        if chunk.reasoning:
            self.reasoning.append(chunk.reasoning)
        if chunk.reasoning_block is not None:
            self._end_block(chunk.reasoning_block)
        for delta in chunk.tool_calls:
            call = self.calls.get(delta.index)
            if call is None:
                call = self.calls[delta.index] = _PartialCall()
            if delta.id:
                call.id = delta.id
            if delta.name:
                call.name += delta.name
            if delta.arguments:
                call.arguments.append(delta.arguments)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason:
            self.finish = chunk.finish_reason
            self.stop_sequence = chunk.stop_sequence
        if chunk.model:
            self.model = chunk.model

    def _end_block(self, block: ReasoningBlock) -> None:
        if not block.redacted:  # the text streamed since the block before is this one's
            block = replace(block, text="".join(self.reasoning[self.block_start :]))
            self.block_start = len(self.reasoning)
        self.blocks.append(block)

    def completion(self, default_model: str) -> Completion:
        calls = tuple(
            ToolCall(call.id or f"call_{index}", call.name, paired("".join(call.arguments)) or "{}")
            for index, call in sorted(self.calls.items())
        )
        return Completion(
            # A pair a chunk boundary split is one character again (JSON decodes each
            # chunk's escapes alone).
            text=paired("".join(self.text)),
            model=self.model or default_model,
            usage=self.usage or Usage(),
            finish_reason=self.finish,
            tool_calls=calls,
            reasoning=paired("".join(self.reasoning)) or None,
            reasoning_blocks=tuple(self.blocks),
            stop_sequence=self.stop_sequence,
        )
