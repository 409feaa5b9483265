"""Anthropic Messages wire shapes: replies, stream events, errors and a token estimate.

Pure functions over dicts: no I/O, no routing. A router
:class:`~rolecall.types.Reply` becomes Anthropic's message object (content blocks
``thinking``, ``text``, ``tool_use``; ``stop_reason``; usage with the cache counts
apart from ``input_tokens``, as Anthropic counts them), and a router stream becomes
Anthropic's event sequence (:class:`MessageEvents`): ``message_start``, then per
content block ``content_block_start`` / ``content_block_delta`` /
``content_block_stop``, then ``message_delta`` (stop reason, usage) and
``message_stop``. Router errors keep the classification of
:func:`rolecall.gateway.openai_format.error_for_exception` and take Anthropic's
statuses and error types.

A stop sequence that ended the answer is ``stop_reason: stop_sequence`` with that
sequence in ``stop_sequence`` when the provider said which (Anthropic's does); OpenAI and
Gemini say only that the answer stopped, whether at a stop sequence or not, so their
answers show ``end_turn`` and no sequence rather than a guess.

Signed reasoning keeps its signature (``redacted_thinking`` its data), so a client
sends it back and the vendor that signed it takes it: an Anthropic provider's as is,
another protocol's (Bedrock's, or Gemini's function call signature) with that
protocol's name in front (``bedrock:...``, ``gemini:...``,
:func:`wire_signature`), which the door reads back (``_messages_content``). Reasoning
a vendor does not sign goes out with an empty signature. Gemini 3 signs each function
call, asked to think or not: a block that carries only such a signature (no thought
text) goes out only when the client asked for thinking, as Anthropic's API sends no
thinking block otherwise; without it the follow-up's call goes with Google's stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rolecall._json import dumps
from rolecall._secrets import redact
from rolecall._text import visible
from rolecall.errors import ErrorKind, ProviderError, RolecallError
from rolecall.gateway import openai_format
from rolecall.gateway._stream_hold import HeldBlock, HeldCall, HeldText, Holding
from rolecall.types import Chunk, Message, ReasoningBlock, Reply, ToolCallDelta, Usage

__all__ = [
    "ERROR_TYPES",
    "AnthropicError",
    "MessageEvents",
    "error_body",
    "error_for_exception",
    "error_from_openai",
    "estimate_input_tokens",
    "message_body",
    "sse",
    "stop_reason",
    "stream_error_body",
    "tool_input",
    "usage_body",
    "wire_signature",
]

# The protocol whose signatures the Messages door hands out as they are.
NATIVE_PROTOCOL = "anthropic"
# Protocols whose signature signs a function call, sent whether or not thinking was asked.
CALL_SIGNING = ("gemini",)

# Anthropic's error type for each HTTP status it uses.
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# The gateway's own statuses that Anthropic spells otherwise.
_STATUS = {502: 500, 503: 529}

# Internal finish reasons (OpenAI's words, or a vendor's own) -> Anthropic's stop_reason.
_STOP = {
    "stop": "end_turn",
    "end_turn": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "tool_calls": "tool_use",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
    "stop_sequence": "stop_sequence",
    "pause_turn": "pause_turn",
}


def stop_reason(
    finish: str | None, called_tools: bool = False, stop_sequence: str | None = None
) -> str:
    """Anthropic's ``stop_reason``; ``tool_use`` when the model called tools,
    ``stop_sequence`` when the provider named the stop sequence that ended the answer."""
    reason = _STOP.get(finish or "", "end_turn")
    if reason == "end_turn" and stop_sequence is not None:
        return "stop_sequence"
    return "tool_use" if called_tools and reason == "end_turn" else reason


def usage_body(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage: ``input_tokens`` excludes the tokens read from or written to cache;
    the thinking tokens, within ``output_tokens``, are counted apart when known."""
    cached, created = usage.cached_input_tokens, usage.cache_creation_input_tokens
    body: dict[str, Any] = {
        "input_tokens": max(usage.input_tokens - cached - created, 0),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
    }
    if usage.reasoning_tokens:
        body["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return body


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON text as the object Anthropic's ``input`` is.

    Text that is not a JSON object (a model's malformed arguments) is kept whole under
    ``arguments`` rather than lost.
    """
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def _tool_id(call_id: str | None, message_id: str, index: int) -> str:
    return call_id or f"toolu_{message_id.removeprefix('msg_')}_{index}"


def wire_signature(protocol: str, opaque: str) -> str:
    """A signature (or redacted data) as the client gets it: tagged unless it is Anthropic's."""
    return opaque if protocol == NATIVE_PROTOCOL else f"{protocol}:{opaque}"


def thinking_block(block: ReasoningBlock) -> dict[str, Any]:
    """A signed reasoning block as Anthropic's ``thinking`` or ``redacted_thinking`` block."""
    if block.redacted:
        return {"type": "redacted_thinking", "data": wire_signature(block.protocol, block.redacted)}
    signature = wire_signature(block.protocol, block.signature)
    return {"type": "thinking", "thinking": block.text, "signature": signature}


def signature_only(block: ReasoningBlock) -> bool:
    """Whether ``block`` only carries a function call's signature: no thought text."""
    return block.protocol in CALL_SIGNING and not block.text and not block.redacted


def message_body(reply: Reply, message_id: str, *, thinking: bool = True) -> dict[str, Any]:
    """The whole answer as Anthropic's message object; ``thinking``: whether the client
    asked for it (a call's signature-only block is left out if not)."""
    content: list[dict[str, Any]] = []
    blocks = [b for b in reply.reasoning_blocks if thinking or not signature_only(b)]
    if blocks:
        content.extend(thinking_block(block) for block in blocks)
    elif reply.reasoning:
        content.append({"type": "thinking", "thinking": reply.reasoning, "signature": ""})
    if reply.text or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    for index, call in enumerate(reply.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": _tool_id(call.id, message_id, index),
                "name": call.name,
                "input": tool_input(call.arguments),
            }
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": stop_reason(
            reply.finish_reason, bool(reply.tool_calls), reply.stop_sequence
        ),
        "stop_sequence": reply.stop_sequence,
        "usage": usage_body(reply.usage),
    }


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    """One named server-sent event, as Anthropic sends every event."""
    # dumps: a lone surrogate (a provider's text can hold its escape) goes out as its escape.
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


PING = b'event: ping\ndata: {"type":"ping"}\n\n'


class MessageEvents:
    """Router chunks as Anthropic's event sequence, one content block at a time.

    Reasoning and text open their own block; a chunk of another kind closes the open
    one. A tool call is held from its first piece to the end of the stream: only then
    are its name (OpenAI's chunks may bring it in pieces) and arguments known whole (an
    OpenAI-compatible server may interleave two calls' pieces), and known to be a JSON
    object or not (kept under ``arguments`` if not, as :func:`tool_input` keeps them in
    a whole answer). Its block is sent whole then, its input in one ``input_json_delta``;
    what came after it began (later calls, text, thinking) is held too
    (:class:`~rolecall.gateway._stream_hold.Holding`) and sent after it, each block
    whole, in the order it began. Meanwhile each chunk held sends a ``ping`` (which the
    SDKs skip), so the stream does not fall silent for as long as the model writes a
    long input; and a stream that fails meanwhile has no block left open.

    When the client did not ask for thinking (``thinking`` false), a call's signature
    that would open a thinking block of its own is left out (:func:`signature_only`).
    """

    def __init__(self, message_id: str, model: str, *, thinking: bool = True) -> None:
        self.message_id = message_id
        self.model = model
        self._thinking = thinking
        self._blocks = 0  # blocks opened so far: the next block's index
        self._open: str | None = None  # the open block's kind
        self._open_index = -1
        self._holding: Holding | None = None  # set once a tool call's block is open

    def start(self) -> bytes:
        """``message_start``. Its usage counts no input tokens: the router reports usage
        with a stream's last chunk (OpenAI's ``include_usage`` counts come only then), so
        the real counts are in ``message_delta``, which Anthropic's SDK takes."""
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_body(Usage()),
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def add(self, chunk: Chunk) -> list[bytes]:
        """The events for one chunk (none for a chunk without content, or one held)."""
        if self._holding is not None:  # a ping, as Anthropic sends: the stream is alive
            self._holding.add(chunk)
            return [PING] if chunk.has_content else []
        out: list[bytes] = []
        if chunk.reasoning:
            out += self._stream_text("reasoning", chunk.reasoning)
        if chunk.reasoning_block is not None:
            out += self._end_thinking(chunk.reasoning_block)
        if chunk.text:
            out += self._stream_text("text", chunk.text)
        if chunk.tool_calls:
            first, *rest = chunk.tool_calls
            out += self._close()
            self._holding = Holding(first)
            self._holding.add(Chunk(tool_calls=tuple(rest)))
            out.append(PING)
        return out

    def finish(self, reply: Reply) -> list[bytes]:
        """Close the open block (and send what was held), then ``message_delta`` and
        ``message_stop``."""
        out: list[bytes] = []
        holding, self._holding = self._holding, None
        if holding is not None:
            for held in (holding.live, *holding.later):
                if isinstance(held, HeldBlock):  # ends the thinking held just before it
                    out += self._end_thinking(held.block)
                elif isinstance(held, HeldText):
                    out += self._stream_text(held.kind, "".join(held.pieces))
                else:
                    out += self._into("tool_use", self._tool_block(held.joined))
                    out += self._tool_input(held)
                    out += self._close()
        out += self._close()
        if self._blocks == 0:  # an empty answer still has one (empty) text block
            out += self._into("text", {"type": "text", "text": ""})
            out += self._close()
        delta = {
            "stop_reason": stop_reason(
                reply.finish_reason, bool(reply.tool_calls), reply.stop_sequence
            ),
            "stop_sequence": reply.stop_sequence,
        }
        out.append(
            sse(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": usage_body(reply.usage)},
            )
        )
        out.append(sse("message_stop", {"type": "message_stop"}))
        return out

    def _stream_text(self, kind: str, text: str) -> list[bytes]:
        if kind == "reasoning":
            block = {"type": "thinking", "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": text}
        else:
            block, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": text}
        return [*self._into(kind, block), self._delta(delta)]

    def _end_thinking(self, block: ReasoningBlock) -> list[bytes]:
        """A thinking block's signature (the block opened if its text was empty), or a
        redacted block whole; either way the block is closed. A call's signature alone is
        left out when the client did not ask for thinking."""
        if not (self._thinking or self._open == "reasoning" or not signature_only(block)):
            return []
        if block.redacted:
            out = self._into("redacted", thinking_block(block))
        else:
            out = self._into("reasoning", {"type": "thinking", "thinking": "", "signature": ""})
            signature = wire_signature(block.protocol, block.signature)
            out.append(self._delta({"type": "signature_delta", "signature": signature}))
        return out + self._close()

    def _tool_block(self, piece: ToolCallDelta) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": _tool_id(piece.id, self.message_id, piece.index),
            "name": piece.name or "",
            "input": {},
        }

    def _tool_input(self, call: HeldCall) -> list[bytes]:
        """The open tool block's input, whole: what a whole answer's ``input`` is."""
        arguments = "".join(call.arguments)
        if not arguments.strip():
            return []  # the block's start already says {}
        value = json.dumps(tool_input(arguments), ensure_ascii=False, separators=(",", ":"))
        return [self._delta({"type": "input_json_delta", "partial_json": value})]

    def _into(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        """Events that make a ``kind`` block the open one (none when a text or thinking
        block is open already; a tool call always gets a block of its own)."""
        if self._open == kind and kind != "tool_use":
            return []
        out = self._close()
        self._open, self._open_index = kind, self._blocks
        self._blocks += 1
        start = {"type": "content_block_start", "index": self._open_index, "content_block": block}
        out.append(sse("content_block_start", start))
        return out

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        stop = {"type": "content_block_stop", "index": self._open_index}
        return [sse("content_block_stop", stop)]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        body = {"type": "content_block_delta", "index": self._open_index, "delta": delta}
        return sse("content_block_delta", body)


# Errors --------------------------------------------------------------------------------
def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error shape for ``status``; the message is redacted, stripped of URLs and
    its control characters (but line breaks) escaped."""
    shown = visible(openai_format.without_urls(redact(message)), newlines=True)
    error_type = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": error_type, "message": shown}}


@dataclass(frozen=True, slots=True)
class AnthropicError:
    status: int
    body: dict[str, Any]
    retry_after: float | None = None


def error_from_openai(status: int, body: Mapping[str, Any]) -> AnthropicError:
    """An error body the gateway built (``{error: {message}}``, OpenAI's or Anthropic's shape:
    body limits, unknown model) restated with Anthropic's status and type."""
    status = _STATUS.get(status, status)
    error = body.get("error")
    message = error.get("message") if isinstance(error, Mapping) else None
    return AnthropicError(status, error_body(status, str(message or "request failed")))


def error_for_exception(
    exc: RolecallError, upstreams: Sequence[str] = (), fields: Mapping[str, str] | None = None
) -> AnthropicError:
    """The status and body for a router error, classified as the chat door does (Anthropic's
    shape has no ``param``: a parameter no provider takes is named in the message, by the
    client's field, see :func:`openai_format.refused_field`)."""
    mapped = openai_format.error_for_exception(exc, upstreams, fields)
    if mapped is None:  # a request the router refused before any call (UnknownParameter)
        return AnthropicError(400, error_body(400, exc.message))
    restated = error_from_openai(mapped.status, mapped.body)
    return AnthropicError(restated.status, restated.body, mapped.retry_after)


def stream_error_body(exc: Exception, upstreams: Sequence[str] = ()) -> dict[str, Any]:
    """The ``error`` event that ends a stream which failed after sending content."""
    if not isinstance(exc, RolecallError):
        return error_body(500, "internal gateway error; see the gateway log")
    message = openai_format.failure_message(exc, upstreams)
    status = _STREAM_STATUS.get(exc.kind, 500) if isinstance(exc, ProviderError) else 500
    return error_body(status, message)


_STREAM_STATUS = {ErrorKind.OVERLOADED: 529, ErrorKind.RATE_LIMIT: 429}


# Token estimate --------------------------------------------------------------------------
# About four characters of English or code per token, as the vendors' rules of thumb say;
# an image is counted as Anthropic's ~1.15 megapixel image (1600 tokens) whatever its size.
CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD = 4


class Counted(Protocol):
    """A parsed request whose input is counted: a Messages or a Responses request."""

    @property
    def messages(self) -> Sequence[Message]: ...
    @property
    def params(self) -> Mapping[str, Any]: ...


def estimate_input_tokens(request: Counted) -> int:
    """An estimate of the input tokens of ``request``: no tokenizer, no provider call."""
    chars = 0
    images = 0
    for message in request.messages:
        chars += len(message.content)  # the text of every text part, joined
        images += len(message.images)
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments)
    tools = request.params.get("tools")
    if tools:
        chars += len(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
    overhead = MESSAGE_OVERHEAD * len(request.messages)
    return -(-chars // CHARS_PER_TOKEN) + overhead + IMAGE_TOKENS * images
