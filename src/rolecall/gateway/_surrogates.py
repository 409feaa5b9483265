"""A character outside the BMP that a provider's stream split between two chunks, put back.

JSON writes such a character as a pair of ``\\u`` escapes, and a server that slices
UTF-16 text may send the pair's halves in two chunks (``"a\\ud83d"``, then
``"\\ude00b"``). Read apart, each half is a lone surrogate: a client joining the
deltas of a stream (a Python SDK's ``text_stream``) gets two code points no encoder
takes, where the whole answer has the character. So a text or reasoning piece that
ends in a high surrogate keeps it for the next piece of its kind; one with no such
piece after it goes out alone, as it came.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from rolecall.types import Chunk

__all__ = ["joined_pairs"]


def _without_high_end(text: str) -> tuple[str, str]:
    """``text`` without a trailing high surrogate, and that surrogate ("" when none)."""
    if text and "\ud800" <= text[-1] <= "\udbff":
        return text[:-1], text[-1]
    return text, ""


async def joined_pairs(chunks: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
    """``chunks`` with each surrogate pair split across two of them joined in the second."""
    text_held = reasoning_held = ""
    async for chunk in chunks:
        # A held half whose kind this chunk does not continue goes out first, in order.
        if reasoning_held and not chunk.reasoning:
            yield Chunk(reasoning=reasoning_held)
            reasoning_held = ""
        if text_held and not chunk.text:
            yield Chunk(text=text_held)
            text_held = ""
        text, text_held = _without_high_end(text_held + chunk.text)
        reasoning, reasoning_held = _without_high_end(reasoning_held + chunk.reasoning)
        if text != chunk.text or reasoning != chunk.reasoning:
            chunk = replace(chunk, text=text, reasoning=reasoning)
        yield chunk
    if reasoning_held:
        yield Chunk(reasoning=reasoning_held)
    if text_held:
        yield Chunk(text=text_held)
