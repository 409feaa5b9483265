"""The items of a Responses output, as dicts: a message, a function call, a reasoning item.

Shared by the whole response and its stream events (``responses_format``). A reasoning
item holds the thinking as ``reasoning_text`` content, or as its ``summary`` when the
client asked for one, and carries the signed reasoning in ``encrypted_content`` when
the client asked for that (``_encrypted_reasoning``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rolecall.gateway._encrypted_reasoning import encode_blocks
from rolecall.types import ReasoningBlock

__all__ = [
    "call_item",
    "carrying",
    "fill_reasoning",
    "in_namespace",
    "message_item",
    "reasoning_item",
    "summary_part",
    "text_part",
]


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def in_namespace(item: dict[str, Any], namespaced: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """A call to a namespace tool's function, named as the client declared it."""
    split = namespaced.get(item["name"])
    if split is not None:
        item["namespace"], item["name"] = split
    return item


def reasoning_item(
    item_id: str, text: str | None, status: str, summarize: bool = False
) -> dict[str, Any]:
    """A reasoning item holding ``text`` as its content, or as its summary (``summarize``)."""
    item = {"id": item_id, "type": "reasoning", "status": status, "summary": []}
    fill_reasoning(item, text, summarize)
    return item


def fill_reasoning(item: dict[str, Any], text: str | None, summarize: bool) -> None:
    if summarize:
        item["summary"] = [] if text is None else [summary_part(text)]
    else:
        item["content"] = [] if text is None else [{"type": "reasoning_text", "text": text}]


def summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def carrying(item: dict[str, Any], blocks: Sequence[ReasoningBlock]) -> dict[str, Any]:
    """A reasoning item with the signed blocks it stands for as its ``encrypted_content``."""
    if blocks:
        item["encrypted_content"] = encode_blocks(blocks)
    return item
