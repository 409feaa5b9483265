"""Pieces every protocol shares: request context, answers, token counts, JSON helpers."""

from __future__ import annotations

import json
import math
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim.faults import Fault
from rolecall.types import ToolCall

__all__ = [
    "SIM_CALL_ID_PREFIX",
    "Answer",
    "Ctx",
    "Dialect",
    "Route",
    "count_words",
    "dumps",
    "go_duration",
    "json_response",
    "minimal_instance",
    "new_id",
    "retry_after_header",
    "rfc3339_in",
    "split_pieces",
    "texts_of",
    "tool_calls_of",
]


@dataclass(frozen=True, slots=True)
class Route:
    """What a request path asks for."""

    action: Literal["chat", "models", "model", "count"]  # count: a free token count
    model: str | None = None  # from the path (Gemini, model get)
    stream: bool = False  # from the path (Gemini :streamGenerateContent)
    scope: str = ""  # from the path: Vertex's ``projects/P/locations/L``


@dataclass(slots=True)
class Ctx:
    """One chat request, as the renderers need it."""

    model: str
    key: str | None
    stream: bool
    body: dict[str, Any]
    input_tokens: int
    scope: str = ""  # the route's scope (Vertex project and location), for error texts
    request_id: str = field(default_factory=lambda: new_id(""))
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(slots=True)
class Answer:
    """What the fake model says, before the vendor's wrapping."""

    text: str
    input_tokens: int
    output_tokens: int
    filtered: bool = False  # content filter / refusal
    truncated: bool = False  # cut off at the output token limit
    variant: str | None = None
    # Scripted by a responder: functions the model calls, its thinking, prompt-cache counts.
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None  # thinking text, for requests that ask for it
    cached_input_tokens: int = 0  # of input_tokens, read from the prompt cache
    cache_creation_input_tokens: int = 0  # of input_tokens, written to the prompt cache
    # OpenAI-compatible servers only (vLLM does): stream the calls' argument pieces in turn.
    interleave_tool_calls: bool = False
    # Anthropic only (interleaved thinking): the thinking written before each call after the
    # first, one signed block each.
    thinking_between_calls: tuple[str, ...] = ()
    stop_sequence: str | None = None  # the request's stop sequence the text was cut at


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(
    status: int,
    obj: Any,
    headers: Sequence[tuple[str, str]] = (),
    content_type: str = "application/json",
) -> Rendered:
    return status, [("content-type", content_type), *headers], dumps(obj)


_WORD = re.compile(r"\S+")
_PIECE = re.compile(r"\s*\S+")


def count_words(texts: Sequence[str]) -> int:
    """Token count stand-in: whitespace-separated words, at least 1 for a non-empty prompt."""
    return sum(len(_WORD.findall(text)) for text in texts)


def split_pieces(text: str) -> list[str]:
    """Stream pieces, one word each with its leading space; joining them gives ``text`` back."""
    pieces = _PIECE.findall(text)
    if not pieces:
        return [text] if text else []
    tail = text[len("".join(pieces)) :]
    if tail:
        pieces[-1] += tail
    return pieces


def texts_of(value: Any) -> list[str]:
    """The text in a message content: a string, a part with ``text``, or a list of those."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        text = value.get("text")
        return [text] if isinstance(text, str) else []
    if isinstance(value, list):
        return [text for item in value for text in texts_of(item)]
    return []


def go_duration(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` format: ``20ms``, ``7s``, ``1m30s``, ``6m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    secs = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{secs}s" if minutes else f"{secs}s"


def seconds_text(seconds: float) -> str:
    """``7`` for 7.0, ``0.25`` for 0.25: what ``float()`` parses back exactly."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}".rstrip("0")


def retry_after_header(seconds: float, variant: str | None) -> str:
    """``retry-after`` as seconds, or as an HTTP date for the ``http_date`` variant."""
    if variant == "http_date":
        when = datetime.now(UTC) + timedelta(seconds=math.ceil(seconds))
        return format_datetime(when, usegmt=True)
    return seconds_text(seconds)


def rfc3339_in(seconds: float) -> str:
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key_suffix(fault: Fault | None, key: str | None) -> str:
    """Vendors echo the key in some error texts; ``echo_key`` makes every error do it."""
    return f" (API key: {key})" if fault is not None and fault.echo_key and key else ""


def minimal_instance(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value valid for simple JSON Schemas (required properties only)."""
    if not isinstance(schema, dict) or depth > 20:
        return {}
    defs = (
        defs if defs is not None else {**schema.get("definitions", {}), **schema.get("$defs", {})}
    )
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return minimal_instance(defs.get(name, {}), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for combo in ("anyOf", "oneOf", "allOf"):
        if schema.get(combo):
            return minimal_instance(schema[combo][0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind).lower() if kind is not None else ("object" if "properties" in schema else "")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            name: minimal_instance(props.get(name, {}), defs, depth + 1)
            for name in schema.get("required", [])
        }
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [minimal_instance(schema.get("items", {}), defs, depth + 1) for _ in range(count)]
    if kind == "string":
        return "sim".ljust(int(schema.get("minLength") or 0), "m")
    if kind in ("integer", "number"):
        low = float(schema.get("minimum", schema.get("exclusiveMinimum")) or 0)
        value = low + 1 if "exclusiveMinimum" in schema else low
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return {}


class Dialect(ABC):
    """How one vendor's API looks on the wire."""

    name: str
    sse_sep: bytes = b"\n\n"
    # What a streamed answer is sent as (Bedrock: binary AWS event-stream frames).
    stream_content_type: str = "text/event-stream; charset=utf-8"

    @abstractmethod
    def base_url(self, root: str) -> str: ...

    @abstractmethod
    def route(self, method: str, path: str) -> Route | None: ...

    @abstractmethod
    def api_key(self, request: HttpRequest) -> str | None: ...

    def check_key(
        self, request: HttpRequest, key: str | None, expected: str | None
    ) -> Rendered | None:
        """The vendor's refusal when ``key`` (from :meth:`api_key`) is not ``expected``;
        a vendor that signs requests (Bedrock) checks the signature instead."""
        if expected is None:
            return None
        if key is None:
            return self.missing_key()
        return None if key == expected else self.invalid_key(key)

    def check_headers(self, request: HttpRequest) -> Rendered | None:
        """A vendor-required header that is missing (Anthropic's version)."""
        return None

    @abstractmethod
    def check_body(self, body: dict[str, Any], route: Route) -> Rendered | None:
        """A required field that is missing, as the vendor reports it."""

    def model_of(self, body: dict[str, Any], route: Route) -> str:
        """The requested model; OpenAI and Anthropic name it in the body."""
        return str(body.get("model") or "")

    def is_stream(self, body: dict[str, Any], route: Route) -> bool:
        """Whether the request streams; OpenAI and Anthropic say so in the body."""
        return body.get("stream") is True

    @abstractmethod
    def prompt_texts(self, body: dict[str, Any]) -> list[str]: ...

    def enrich(self, ctx: Ctx, answer: Answer) -> Answer:
        """What the vendor's model adds on its own: tool calls, thinking, cache counts."""
        return answer

    @abstractmethod
    def schema_of(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON schema the request asks the answer to follow ({} for plain JSON mode)."""

    # Errors ------------------------------------------------------------------------------
    @abstractmethod
    def error(self, fault: Fault, ctx: Ctx) -> Rendered:
        """Every HTTP error kind, rendered as the vendor sends it."""

    @abstractmethod
    def missing_key(self) -> Rendered: ...

    @abstractmethod
    def invalid_key(self, key: str) -> Rendered: ...

    @abstractmethod
    def invalid_json(self) -> Rendered: ...

    @abstractmethod
    def unknown_route(self, method: str, path: str) -> Rendered: ...

    @abstractmethod
    def model_not_found(self, model: str) -> Rendered: ...

    # Answers -----------------------------------------------------------------------------
    @abstractmethod
    def answer(self, ctx: Ctx, answer: Answer) -> dict[str, Any]: ...

    @abstractmethod
    def stream_head(self, ctx: Ctx, answer: Answer) -> list[bytes]: ...

    @abstractmethod
    def stream_piece(self, ctx: Ctx, answer: Answer, piece: str, sent: int) -> bytes: ...

    @abstractmethod
    def stream_tail(self, ctx: Ctx, answer: Answer) -> list[bytes]: ...

    def filtered_error(self, fault: Fault, ctx: Ctx) -> Rendered | None:
        """A ``content_filter`` fault the vendor refuses with an HTTP error (Azure's filtered
        prompt), or None when it answers 200 with its filtered marker."""
        return None

    def stream_error_event(self, ctx: Ctx) -> bytes | None:
        """An in-stream error event, or None when the vendor just drops the connection."""
        return None

    def keepalive_event(self) -> bytes | None:
        """What the vendor sends to keep a quiet stream open (an SSE comment line), or None."""
        return b": keep-alive\n\n"

    @abstractmethod
    def malformed_event(self, ctx: Ctx) -> bytes: ...

    def malformed_body(self, ctx: Ctx) -> bytes:
        return b'{"id": "' + ctx.request_id.encode() + b'", "choices": [{"index": 0, "mess'

    # Model endpoints ---------------------------------------------------------------------
    @abstractmethod
    def models_list(self, models: Sequence[str]) -> dict[str, Any]: ...

    @abstractmethod
    def model_info(self, model: str) -> dict[str, Any]: ...

    def count_tokens(self, ctx: Ctx) -> dict[str, Any]:
        """The answer of a free token count (Gemini's ``:countTokens``), for ``count`` routes."""
        raise NotImplementedError(f"{self.name} has no token count endpoint")

    def headers(self, ctx: Ctx | None) -> list[tuple[str, str]]:
        """Headers the vendor puts on every response."""
        return []

    def sse(self, obj: Any, event: str | None = None) -> bytes:
        data = b"data: " + dumps(obj) + self.sse_sep
        return b"event: " + event.encode() + b"\n" + data if event else data


BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def bad_gateway() -> Rendered:
    """What a vendor's edge proxy sends on 502: an HTML page, not the API's JSON."""
    return 502, [("content-type", "text/html")], BAD_GATEWAY_HTML


def array_error(fault: Fault, ctx: Ctx) -> Rendered:
    """Gemini's OpenAI-compatible endpoint: the error object wrapped in a JSON array."""
    status = fault.status or 429
    if status == 429:
        inner = {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota)."
            + key_suffix(fault, ctx.key),
            "status": "RESOURCE_EXHAUSTED",
        }
    else:
        inner = {
            "code": status,
            "message": "Request contains an invalid argument." + key_suffix(fault, ctx.key),
            "status": "INVALID_ARGUMENT" if status == 400 else "UNKNOWN",
        }
    return json_response(status, [{"error": inner}])


# Ids the sim makes up for calls a responder gave none (Gemini then sends no id).
SIM_CALL_ID_PREFIX = "call_sim_"


def tool_calls_of(raw: Any) -> tuple[ToolCall, ...]:
    """A responder's ``tool_calls``: ToolCalls, or dicts ``{id?, name, arguments}`` whose
    arguments are JSON text or an object; ids default to ``call_sim_N``."""
    if not isinstance(raw, list | tuple):
        return ()
    calls: list[ToolCall] = []
    for index, item in enumerate(raw):
        if isinstance(item, ToolCall):
            calls.append(item)
            continue
        if not isinstance(item, dict):
            continue
        arguments = item.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, separators=(",", ":"))
        call_id = str(item.get("id") or f"{SIM_CALL_ID_PREFIX}{index}")
        calls.append(ToolCall(call_id, str(item.get("name", "")), arguments))
    return tuple(calls)


def answer_extras(result: dict[str, Any]) -> dict[str, Any]:
    """A responder dict's optional ``tool_calls``, ``reasoning``, cache counts,
    ``interleave_tool_calls`` and ``thinking_between_calls``, as :class:`Answer` fields
    (``cached_tokens`` is taken for ``cached_input_tokens``)."""
    extras: dict[str, Any] = {"tool_calls": tool_calls_of(result.get("tool_calls"))}
    if isinstance(result.get("reasoning"), str):
        extras["reasoning"] = result["reasoning"]
    cached = result.get("cached_input_tokens", result.get("cached_tokens"))
    if cached is not None:
        extras["cached_input_tokens"] = int(cached)
    if "cache_creation_input_tokens" in result:
        extras["cache_creation_input_tokens"] = int(result["cache_creation_input_tokens"])
    if result.get("interleave_tool_calls") is True:
        extras["interleave_tool_calls"] = True
    between = result.get("thinking_between_calls")
    if isinstance(between, list):
        extras["thinking_between_calls"] = tuple(str(thought) for thought in between)
    return extras
