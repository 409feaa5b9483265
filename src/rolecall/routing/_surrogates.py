"""A character outside the BMP that a provider's stream split between two chunks, put back.

JSON writes such a character as a pair of ``\\u`` escapes, and a server that slices
UTF-16 text may send the pair's halves in two chunks (``"a\\ud83d"``, then
``"\\ude00b"``). Read apart, each half is a lone surrogate: a reader joining the deltas
(a terminal, an SDK's ``text_stream`` behind the gateway) gets two code points no
encoder takes, where the whole answer has the character. So a text or reasoning piece
that ends in a high surrogate keeps it for the next piece of its kind; one with no such
piece after it goes out alone, in order.
"""

from __future__ import annotations

import re
from dataclasses import replace

from rolecall.types import Chunk

__all__ = ["PairJoiner", "paired"]

_SPLIT_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _ends_high(text: str) -> bool:
    return bool(text) and "\ud800" <= text[-1] <= "\udbff"


def _one_character(pair: re.Match[str]) -> str:
    found = pair.group()
    return chr(0x10000 + ((ord(found[0]) - 0xD800) << 10) + (ord(found[1]) - 0xDC00))


def paired(text: str) -> str:
    """``text`` with each pair of surrogates made the one character it encodes (a whole
    answer put together from chunks that split a pair)."""
    return _SPLIT_PAIR.sub(_one_character, text)


def _joined(held: str, text: str) -> str:
    """``held`` (a high surrogate, or "") before ``text``, the pair made one character: a
    str keeps two surrogates as two code points, where JSON's decoder makes them one."""
    if held and text and "\udc00" <= text[0] <= "\udfff":
        return paired(held + text[0]) + text[1:]
    return held + text


def _without_high_end(text: str) -> tuple[str, str]:
    """``text`` without a trailing high surrogate, and that surrogate ("" when none)."""
    if _ends_high(text):
        return text[:-1], text[-1]
    return text, ""


class PairJoiner:
    """The chunks of one stream with each surrogate pair split across two joined in the second."""

    __slots__ = ("_reasoning", "_text")

    def __init__(self) -> None:
        self._text = self._reasoning = ""

    def feed(self, chunk: Chunk) -> tuple[Chunk, ...]:
        """What to send for ``chunk``: itself, almost always."""
        if not (
            self._text or self._reasoning or _ends_high(chunk.text) or _ends_high(chunk.reasoning)
        ):
            return (chunk,)
        out: list[Chunk] = []
        # A held half whose kind this chunk does not continue goes out first, in order.
        if self._reasoning and not chunk.reasoning:
            out.append(Chunk(reasoning=self._reasoning))
            self._reasoning = ""
        if self._text and not chunk.text:
            out.append(Chunk(text=self._text))
            self._text = ""
        text, self._text = _without_high_end(_joined(self._text, chunk.text))
        reasoning, self._reasoning = _without_high_end(_joined(self._reasoning, chunk.reasoning))
        if text != chunk.text or reasoning != chunk.reasoning:
            chunk = replace(chunk, text=text, reasoning=reasoning)
        out.append(chunk)
        return tuple(out)

    def rest(self) -> tuple[Chunk, ...]:
        """The halves still held when the stream ends."""
        out = []
        if self._reasoning:
            out.append(Chunk(reasoning=self._reasoning))
        if self._text:
            out.append(Chunk(text=self._text))
        self._text = self._reasoning = ""
        return tuple(out)
