"""Signed reasoning carried through a Responses client as a reasoning item's ``encrypted_content``.

OpenAI's clients without stored state (Codex CLI, the openai SDK with ``store: false``)
ask for ``include: ["reasoning.encrypted_content"]`` and send each reasoning item back
as it came. The gateway keeps nothing between requests, so the item carries the
reasoning blocks themselves (each with the protocol that signed it, its text and its
signature or redacted data) as JSON in URL-safe base64 behind a version mark: opaque
to the client, as OpenAI's is, and read back into the assistant turn it belongs to,
so the vendor that signed them gets them back (Anthropic's thinking, Bedrock's
reasoning, Gemini's call signatures). It is not encrypted: it holds nothing the
response does not show already.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from rolecall.types import ReasoningBlock

__all__ = ["MARK", "decode_blocks", "encode_blocks"]

MARK = "rolecall.1:"  # what sets the gateway's content apart from OpenAI's


def encode_blocks(blocks: Sequence[ReasoningBlock]) -> str:
    rows = [[block.protocol, block.text, block.signature, block.redacted] for block in blocks]
    packed = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()
    return MARK + base64.urlsafe_b64encode(packed).decode()


def decode_blocks(content: str) -> tuple[ReasoningBlock, ...] | None:
    """The blocks ``content`` carries; None when it is not what :func:`encode_blocks` wrote."""
    if not content.startswith(MARK):
        return None
    try:
        rows = json.loads(base64.urlsafe_b64decode(content[len(MARK) :]))
    except (binascii.Error, ValueError, RecursionError):  # cut, altered, or nested past reading
        return None
    if not isinstance(rows, list):
        return None
    blocks: list[ReasoningBlock] = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 4 and all(isinstance(v, str) for v in row)):
            return None
        blocks.append(ReasoningBlock(row[0], row[1], signature=row[2], redacted=row[3]))
    return tuple(blocks)
