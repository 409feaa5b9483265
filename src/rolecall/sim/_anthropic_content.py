"""Anthropic content blocks in the sim: request checks, and tool_use, thinking and cache usage.

The checks are the API's own rules, so a client that breaks one gets the 400 it
would get from Anthropic: a ``tool_result`` must answer a ``tool_use`` of the turn
before, every ``tool_use`` needs its result in the next turn, image sources are
base64 (with a supported media type) or url, and thinking needs a budget of at least
1024 below ``max_tokens``, with no ``temperature`` other than 1, no ``top_k`` and no
forced tool. With thinking on, the assistant turn whose tool calls the last turn
answers must start with its thinking block, and a thinking block's signature must be
one this sim issued for that text (:func:`sign`): a client that drops or rewrites
earlier thinking gets Anthropic's 400.

Without a responder saying otherwise, the fake model calls a tool when it is offered
tools (``auto``/``any``) and the last turn is not a tool result, with the smallest
input its schema allows; thinks when ``thinking`` is enabled; ends its text before the
first of the request's ``stop_sequences`` it holds, naming that sequence; and reports
the prompt up to the last ``cache_control`` mark as written to the cache the first time
it sees that prefix and read from it afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

from rolecall.sim._common import Answer, Ctx, count_words, minimal_instance, new_id, texts_of
from rolecall.types import ToolCall

__all__ = [
    "NO_THINKING_FIRST",
    "REDACT_MARK",
    "THINKING_TEXT",
    "check_request",
    "content_blocks",
    "enrich",
    "redacted_data",
    "sign",
    "thinking_before",
    "thinking_block",
    "tool_id",
    "tool_input_pieces",
]

_BLOCKS = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)
_MEDIA = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_CHOICES = frozenset({"auto", "any", "tool", "none"})
THINKING_TEXT = "The user asks a question; answer it plainly."
_SIGNING_KEY = b"rolecall-sim-thinking"
REDACT_MARK = "[redacted]"
_REDACTED = "REDACTED:"  # a redacted block's data: this prefix, then the thinking in base64
NO_THINKING_FIRST = (
    "Expected `thinking` or `redacted_thinking`, but found `{found}`. When `thinking` is "
    "enabled, a final `assistant` message must start with a thinking block (preceeding the "
    "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
    "blocks from previous turns. To avoid this requirement, disable `thinking`. Please "
    "consult our documentation at https://docs.claude.com/en/docs/build-with-claude/"
    "extended-thinking"
)


def sign(thinking: str) -> str:
    """The signature the sim gives a thinking block: opaque, and checked when sent back."""
    digest = hmac.new(_SIGNING_KEY, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def redacted_data(thinking: str) -> str:
    """A ``redacted_thinking`` block's data for ``thinking`` (opaque to clients)."""
    payload = base64.b64encode(thinking.encode()).decode()
    return base64.b64encode((_REDACTED + payload).encode()).decode() + sign(payload)[:16]


def tool_id() -> str:
    return new_id("toolu_")[:30]


# Checks --------------------------------------------------------------------------------
def check_request(body: dict[str, Any]) -> str | None:
    """The invalid_request_error message for a body the API would refuse, else None."""
    return (
        _check_sampling(body)
        or _check_thinking(body)
        or _check_tools(body)
        or _check_messages(body["messages"])
        or _check_thinking_turns(body)
    )


def _check_sampling(body: dict[str, Any]) -> str | None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if isinstance(value, int | float) and not 0 <= value <= 1:
            return f"{name}: range: 0..1"
    return None


def _thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _check_thinking(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, dict) or thinking.get("type") not in (
        "enabled",
        "disabled",
        "adaptive",
    ):
        return "thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled'"
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    if not _thinking_on(body):
        return None
    if body.get("temperature") not in (None, 1, 1.0):
        return "`temperature` may only be set to 1 when thinking is enabled"
    if body.get("top_k") is not None:
        return "`top_k` may not be set when thinking is enabled"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def _check_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                return f"tools.{i}.name: Field required"
            if not isinstance(tool.get("input_schema"), dict):
                return f"tools.{i}.custom.input_schema: Field required"
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and set(metadata) - {"user_id"}:
        key = sorted(set(metadata) - {"user_id"})[0]
        return f"metadata.{key}: Extra inputs are not permitted"
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in _CHOICES:
        return "tool_choice: Input tag does not match any of the expected tags"
    if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
        return "tool_choice.tool.name: Field required"
    extra = set(choice) - {"type", "name", "disable_parallel_tool_use"}
    if extra:
        return f"tool_choice.{choice['type']}.{sorted(extra)[0]}: Extra inputs are not permitted"
    return None


def _check_messages(messages: list[Any]) -> str | None:
    pending: set[str] = set()  # tool_use ids the next turn must answer
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{n}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        for b, block in enumerate(blocks):
            problem = _check_block(block)
            if problem:
                return f"messages.{n}.content.{b}.{problem}"
        results = {
            str(block.get("tool_use_id"))
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "tool_result"
        }
        unexpected = results - pending
        if unexpected:
            return (
                f"messages.{n}.content.0: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {sorted(unexpected)[0]}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )
        if pending - results:
            return (
                f"messages.{n}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {sorted(pending - results)[0]}. Each `tool_use` block "
                "must have a corresponding `tool_result` block in the next message."
            )
        pending = {
            str(block.get("id"))
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "tool_use"
        }
    return None


def _check_thinking_turns(body: dict[str, Any]) -> str | None:
    """Signatures of thinking blocks, and the thinking that must lead a tool loop's turn."""
    messages = body["messages"]
    for n, message in enumerate(messages):
        content = message.get("content")
        for b, block in enumerate(content if isinstance(content, list) else []):
            if block.get("type") == "thinking" and not _signed(block):
                return f"messages.{n}.content.{b}: Invalid `signature` in `thinking` block"
            if block.get("type") == "redacted_thinking" and not _sealed(block.get("data")):
                return f"messages.{n}.content.{b}: Invalid `data` in `redacted_thinking` block"
    if not _thinking_on(body) or len(messages) < 2 or not _answers_tools(messages[-1]):
        return None
    n = len(messages) - 2
    content = messages[n].get("content")
    first = content[0] if isinstance(content, list) and content else {"type": "text"}
    if first.get("type") in ("thinking", "redacted_thinking"):
        return None
    return f"messages.{n}.content.0.type: " + NO_THINKING_FIRST.format(found=first["type"])


def _answers_tools(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def _signed(block: dict[str, Any]) -> bool:
    signature, thinking = block.get("signature"), block.get("thinking")
    if not isinstance(signature, str) or not isinstance(thinking, str):
        return False
    return hmac.compare_digest(signature, sign(thinking))


def _sealed(data: Any) -> bool:
    if not isinstance(data, str) or len(data) < 16:
        return False
    try:
        inner = base64.b64decode(data[:-16], validate=True).decode()
    except ValueError:
        return False
    payload = inner.removeprefix(_REDACTED)
    return inner.startswith(_REDACTED) and hmac.compare_digest(data[-16:], sign(payload)[:16])


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _image_type(data: str) -> str | None:
    """The image type the data's first bytes show, as Anthropic checks it; None if unknown."""
    try:
        head = base64.b64decode(data[:16], validate=True)
    except ValueError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _check_block(block: Any) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in _BLOCKS:
        return "type: Input tag does not match any of the expected tags"
    kind = block["type"]
    if kind == "image":
        source = block.get("source")
        if not isinstance(source, dict):
            return "image.source: Field required"
        if source.get("type") == "base64":
            if source.get("media_type") not in _MEDIA:
                return "image.source.base64.media_type: Input should be 'image/jpeg', " + (
                    "'image/png', 'image/gif' or 'image/webp'"
                )
            if not isinstance(source.get("data"), str) or not source["data"]:
                return "image.source.base64.data: Field required"
            found = _image_type(source["data"])
            if found is not None and found != source["media_type"]:
                return (
                    f"image.source.base64: The image was specified using the "
                    f"{source['media_type']} media type, but the image appears to be a "
                    f"{found} image"
                )
        elif source.get("type") == "url":
            if not str(source.get("url", "")).startswith(("https://", "http://")):
                return "image.source.url.url: Field required"
        else:
            return "image.source: Input tag does not match any of the expected tags"
    if kind == "tool_use" and not isinstance(block.get("input"), dict):
        return "tool_use.input: Input should be a valid dictionary"
    if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        return "tool_result.tool_use_id: Field required"
    return None


# The fake model ------------------------------------------------------------------------
def enrich(ctx: Ctx, answer: Answer, seen_prefixes: set[str]) -> Answer:
    """Tool calls, thinking and cache counts the request calls for (see the module doc)."""
    body = ctx.body
    changes: dict[str, Any] = {}
    if not answer.tool_calls and not answer.filtered:
        call = _default_call(body)
        if call is not None:
            words = count_words([call.arguments])
            changes.update(tool_calls=(call,), text="", output_tokens=max(words, 1))
    if answer.reasoning is None and _thinking_on(body):
        changes["reasoning"] = THINKING_TEXT
    if not answer.cached_input_tokens and not answer.cache_creation_input_tokens:
        changes.update(_cache_counts(body, answer.input_tokens, seen_prefixes))
    changes.update(_stopped(body, changes.get("text", answer.text)))
    return replace(answer, **changes) if changes else answer


def _stopped(body: dict[str, Any], text: str) -> dict[str, Any]:
    """The text cut before the first stop sequence in it, and that sequence; {} if none."""
    sequences = [s for s in body.get("stop_sequences") or () if isinstance(s, str) and s]
    found = [(text.find(s), s) for s in sequences if s in text]
    if not found:
        return {}
    at, sequence = min(found)
    cut = text[:at]
    return {"text": cut, "output_tokens": count_words([cut]), "stop_sequence": sequence}


def _default_call(body: dict[str, Any]) -> ToolCall | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or choice.get("type") in ("none", "tool"):
        return None  # a forced tool is structured output: the answer text is its input
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages else None
    if isinstance(last, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last
    ):
        return None  # the tool has answered: the model answers in text
    tool = tools[0]
    arguments = minimal_instance(tool.get("input_schema") or {})
    return ToolCall(tool_id(), tool["name"], json.dumps(arguments))


def _marked_prefix(body: dict[str, Any]) -> list[str] | None:
    """The prompt's texts up to and including the last cache_control mark, or None."""
    texts: list[str] = []
    marked: int | None = None
    for tool in body.get("tools") or []:
        texts.append(json.dumps(tool, sort_keys=True))
        if isinstance(tool, dict) and tool.get("cache_control"):
            marked = len(texts)
    system = body.get("system")
    blocks: list[Any] = list(system) if isinstance(system, list) else [system]
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        blocks.extend(content if isinstance(content, list) else [content])
    for block in blocks:
        texts.extend(texts_of(block) or [json.dumps(block, sort_keys=True)])
        if isinstance(block, dict) and block.get("cache_control"):
            marked = len(texts)
    return None if marked is None else texts[:marked]


def _cache_counts(body: dict[str, Any], input_tokens: int, seen: set[str]) -> dict[str, int]:
    prefix = _marked_prefix(body)
    if prefix is None:
        return {}
    tokens = min(max(count_words(prefix), 1), input_tokens)
    digest = hashlib.sha256("\n".join(prefix).encode()).hexdigest()
    if digest in seen:
        return {"cached_input_tokens": tokens}
    seen.add(digest)
    return {"cache_creation_input_tokens": tokens}


# Rendering -----------------------------------------------------------------------------
def thinking_block(reasoning: str) -> dict[str, Any]:
    """A thinking block, signed; redacted (``redacted_thinking``) when the scripted thinking
    starts with ``[redacted]``, as Anthropic's safety systems redact some thinking."""
    if reasoning.startswith(REDACT_MARK):
        return {"type": "redacted_thinking", "data": redacted_data(reasoning)}
    return {"type": "thinking", "thinking": reasoning, "signature": sign(reasoning)}


def content_blocks(answer: Answer, text: str | None, ids: list[str]) -> list[dict[str, Any]]:
    """A whole answer's blocks: thinking, then text, then tool_use (ids one per call)."""
    blocks: list[dict[str, Any]] = []
    if answer.reasoning:
        blocks.append(thinking_block(answer.reasoning))
    if text:
        blocks.append({"type": "text", "text": text})
    for number, (call, call_id) in enumerate(zip(answer.tool_calls, ids, strict=True)):
        blocks += [thinking_block(thought) for thought in thinking_before(answer, number)]
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": call.name,
                "input": json.loads(call.arguments or "{}"),
            }
        )
    return blocks


def thinking_before(answer: Answer, number: int) -> list[str]:
    """The interleaved thinking the model writes just before its call ``number`` (none
    before the first: the answer's own thinking is)."""
    between = answer.thinking_between_calls
    return [between[number - 1]] if 0 < number <= len(between) else []


def tool_input_pieces(arguments: dict[str, Any]) -> list[str]:
    """A tool input as ``input_json_delta`` fragments (an empty one first, as the API does)."""
    text = json.dumps(arguments, ensure_ascii=False)
    middle = max(len(text) // 2, 1)
    return ["", text[:middle], text[middle:]] if len(text) > 1 else ["", text]
