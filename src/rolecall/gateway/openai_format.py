"""OpenAI chat-completions wire shapes: parse a request, build replies, chunks and errors.

Pure functions over dicts: no I/O, no routing. The gateway maps an incoming
``POST /v1/chat/completions`` body to a :class:`ParsedRequest` (messages and
per-call params for the router; see ``_chat_request``) and a router
:class:`~rolecall.types.Reply` back to OpenAI's response shape: tool calls,
``reasoning_content`` (as DeepSeek and vLLM send it) and cached prompt tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rolecall._secrets import redact
from rolecall._text import visible
from rolecall.errors import (
    AllProvidersFailed,
    ErrorKind,
    NoProviderForRole,
    ProviderError,
    RolecallError,
    RouterClosed,
)
from rolecall.gateway._chat_request import ParsedRequest, RequestInvalid, parse_chat_request
from rolecall.types import Chunk, Reply, Usage

__all__ = [
    "ErrorReply",
    "ParsedRequest",
    "RequestInvalid",
    "chunk_body",
    "chunk_delta",
    "completion_body",
    "error_body",
    "error_for_exception",
    "finish_reason",
    "hide_upstreams",
    "model_list_body",
    "naming_field",
    "parse_chat_request",
    "refused_field",
    "retry_may_help",
    "upstream_hosts",
    "usage_body",
    "usage_chunk_body",
    "without_urls",
]


# Vendor stop reasons -> OpenAI's finish_reason values.
_FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "STOP": "stop",
    "length": "length",
    "max_tokens": "length",
    "MAX_TOKENS": "length",
    "content_filter": "content_filter",
    "SAFETY": "content_filter",
    "refusal": "content_filter",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
}


def finish_reason(raw: str | None, called_tools: bool = False) -> str:
    """OpenAI's finish_reason; ``tool_calls`` when the model called tools (Gemini says STOP)."""
    reason = _FINISH.get(raw, "stop") if raw else "stop"
    return "tool_calls" if called_tools and reason == "stop" else reason


def usage_body(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        # Both within prompt_tokens; cache writes as the openai SDK names them (what
        # pydantic-ai and LangChain read), counted apart since vendors bill them apart.
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
        },
    }
    if usage.reasoning_tokens:  # within completion_tokens, as OpenAI counts them
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def completion_body(reply: Reply, completion_id: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.text or not reply.tool_calls else None,
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = [call.to_dict() for call in reply.tool_calls]
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(reply.finish_reason, bool(reply.tool_calls)),
            }
        ],
        "usage": usage_body(reply.usage),
        "system_fingerprint": None,
    }


def chunk_delta(chunk: Chunk) -> dict[str, Any]:
    """A router chunk as an OpenAI stream delta: content, reasoning_content, tool_calls."""
    delta: dict[str, Any] = {}
    if chunk.reasoning:
        delta["reasoning_content"] = chunk.reasoning
    if chunk.text:
        delta["content"] = chunk.text
    if chunk.tool_calls:
        calls: list[dict[str, Any]] = []
        for piece in chunk.tool_calls:
            call: dict[str, Any] = {"index": piece.index}
            if piece.id:
                call["id"], call["type"] = piece.id, "function"
            function: dict[str, Any] = {"arguments": piece.arguments}
            if piece.name:
                function["name"] = piece.name
            call["function"] = function
            calls.append(call)
        delta["tool_calls"] = calls
    return delta


def chunk_body(
    completion_id: str,
    created: int,
    model: str,
    delta: Mapping[str, Any],
    finish: str | None = None,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk_body(completion_id: str, created: int, model: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [],
        "usage": usage_body(usage),
    }


def model_list_body(
    roles: Sequence[str],
    providers: Sequence[str],
    created: int,
    aliases: Sequence[str] = (),
) -> dict[str, Any]:
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "rolecall-role"}
        for name in roles
    ]
    data += [
        {"id": name, "object": "model", "created": created, "owned_by": "rolecall-provider"}
        for name in providers
    ]
    data += [
        {"id": name, "object": "model", "created": created, "owned_by": "rolecall-alias"}
        for name in aliases
    ]
    return {"object": "list", "data": data}


# Any absolute URL: a provider's base_url (maybe with credentials) or a vendor's own link.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]]*[^\s'\"<>()\[\].,;:!?]")
_URL_SHOWN = "<provider URL>"
_HOST_SHOWN = "<provider host>"


def without_urls(text: str) -> str:
    """``text`` with every URL replaced: a gateway client learns nothing of the upstreams."""
    return _URL.sub(_URL_SHOWN, text) if "://" in text else text


def upstream_hosts(base_urls: Iterable[str | None]) -> tuple[str, ...]:
    """``host:port`` and host of each configured base_url: what a client must not learn."""
    hosts: set[str] = set()
    for url in base_urls:
        try:
            parts = urlsplit(url or "")
            port = parts.port
        except ValueError:
            continue
        host = parts.hostname or ""
        if host:
            hosts.add(host)
            hosts.update({f"{host}:{port}", f"[{host}]:{port}"} if port else ())
    return tuple(sorted(hosts, key=len, reverse=True))  # host:port before its host


def hide_upstreams(text: str, hosts: Sequence[str]) -> str:
    """``text`` without URLs and without the upstreams' addresses (``cannot connect to H:P``)."""
    text = without_urls(text)
    for host in hosts:
        if host in text:
            text = text.replace(host, _HOST_SHOWN)
    return text


def failure_message(exc: RolecallError, hosts: Sequence[str]) -> str:
    """What a client is told of a router failure (a stream's error event too): the router's
    message without upstreams, or that the gateway is shutting down when its stop ended it."""
    if isinstance(exc, RouterClosed):
        return _SHUTTING_DOWN
    return hide_upstreams(exc.message, hosts)


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape; the message is redacted and stripped of URLs whatever its source,
    and its control characters (but line breaks) escaped: it may quote a client or a vendor."""
    shown = visible(without_urls(redact(message)), newlines=True)
    return {"error": {"message": shown, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True, slots=True)
class ErrorReply:
    status: int
    body: dict[str, Any]
    retry_after: float | None = None


_SHUTTING_DOWN = (
    "the gateway is shutting down and ended this request before its answer; "
    "send it again (once the gateway is back, or to another one)"
)


def error_for_exception(
    exc: Exception, upstreams: Sequence[str] = (), fields: Mapping[str, str] | None = None
) -> ErrorReply | None:
    """The HTTP status and body for a router error, or None when it is not one.

    Provider messages lose every URL and every address in ``upstreams`` (see
    :func:`upstream_hosts`): a gateway client learns nothing of what is behind it. A
    request refused for a call parameter no provider takes names it in ``param`` as the
    client wrote it: ``fields`` maps the router's names to the door's (see
    :func:`refused_field`).
    """
    if isinstance(exc, NoProviderForRole):
        return ErrorReply(404, error_body(exc.message, "invalid_request_error", "no_provider"))
    if isinstance(exc, RouterClosed):  # the gateway stopped with the request in flight
        return ErrorReply(503, error_body(_SHUTTING_DOWN, "api_error", "shutting_down"))
    if isinstance(exc, AllProvidersFailed):
        return _all_failed(hide_upstreams(exc.message, upstreams), exc.errors, fields)
    if isinstance(exc, ProviderError):
        if not exc.provider and exc.kind is ErrorKind.BAD_REQUEST:  # refused before any call
            return ErrorReply(400, error_body(exc.message, "invalid_request_error", "bad_request"))
        return _all_failed(hide_upstreams(exc.message, upstreams), [exc], fields)
    return None


def refused_field(
    errors: Sequence[ProviderError], fields: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """(the router's name, the client's field) of the first call parameter a provider
    was not called for, or None. ``fields`` maps a router name to the field a door's
    client wrote (the Responses API's ``text.verbosity`` is the router's ``verbosity``);
    a name it does not map is the client's own."""
    for error in errors:
        if error.kind is ErrorKind.UNSUPPORTED and error.params:
            name = error.params[0]
            return name, (fields or {}).get(name, name)
    return None


def naming_field(message: str, refused: tuple[str, str] | None) -> str:
    """``message``, led by the client's field when the router's messages call it otherwise."""
    if refused is None or refused[0] == refused[1]:
        return message
    return f"{refused[1]} (passed on as '{refused[0]}'): {message}"


# Failures the request causes wherever it is sent; OpenAI's codes for the one kind.
_REQUEST_FAULTS = {
    ErrorKind.UNSUPPORTED: "unsupported",  # asks what no provider can do (n > 1...)
    ErrorKind.BAD_REQUEST: "bad_request",
    ErrorKind.CONTEXT_LENGTH: "context_length_exceeded",
    ErrorKind.CONTENT_FILTER: "content_filter",
}


def _all_failed(
    message: str, errors: Sequence[ProviderError], fields: Mapping[str, str] | None
) -> ErrorReply:
    kinds = {e.kind for e in errors}
    if kinds and kinds <= _REQUEST_FAULTS.keys():
        # Every provider refused the request itself: the client's to change, not to retry
        # (clients retry a 5xx).
        code = _REQUEST_FAULTS[kinds.pop()] if len(kinds) == 1 else "bad_request"
        refused = refused_field(errors, fields)
        param = refused[1] if refused else None
        body = error_body(naming_field(message, refused), "invalid_request_error", code, param)
        return ErrorReply(400, body)
    if kinds == {ErrorKind.RATE_LIMIT}:
        waits = [e.retry_after for e in errors if e.retry_after is not None]
        body = error_body(message, "rate_limit_error", "rate_limit_exceeded")
        return ErrorReply(429, body, min(waits) if waits else None)
    if kinds == {ErrorKind.OVERLOADED} or not kinds:
        # Nothing answered because everything is busy, or every provider is cooling down.
        return ErrorReply(503, error_body(message, "api_error", "overloaded"))
    resets = [e.retry_after for e in errors]
    if all(reset is not None for reset in resets) and all(k.counts_against_provider for k in kinds):
        # Every provider is known to be back later (an open circuit says when): a 503 with
        # Retry-After, which clients wait out, rather than a 502 they retry at once.
        body = error_body(message, "api_error", "all_providers_failed")
        return ErrorReply(503, body, min(r for r in resets if r is not None))
    return ErrorReply(502, error_body(message, "api_error", "all_providers_failed"))


def _passes(kind: ErrorKind) -> bool:
    """A failure that passes: a client's retry may meet a provider that answers (a stall
    too: the provider was slow, not wrong)."""
    return kind.retryable or kind is ErrorKind.STALLED


def retry_may_help(exc: Exception) -> bool:
    """Whether a client's retry of the request may be answered (the ``x-should-retry`` header
    the vendors' SDKs obey): some provider failed for a reason that passes, or every provider
    is cooling down. Not when each one refused the request itself or cannot answer until the
    config changes (a bad key, no quota, no such model): the SDKs would retry a 5xx for nothing."""
    if isinstance(exc, AllProvidersFailed):
        return not exc.errors or any(_passes(error.kind) for error in exc.errors)
    return isinstance(exc, RouterClosed) or (isinstance(exc, ProviderError) and _passes(exc.kind))
