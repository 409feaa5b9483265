"""OpenAI chat-completions wire shapes: parse a request, build replies, chunks and errors.

Pure functions over dicts: no I/O, no routing. The gateway maps an incoming
``POST /v1/chat/completions`` body to a :class:`ParsedRequest` (messages and
per-call params for the router) and a router :class:`~rolecall.types.Reply`
back to OpenAI's response shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rolecall._secrets import redact
from rolecall.errors import AllProvidersFailed, ErrorKind, NoProviderForRole, ProviderError
from rolecall.types import Message, Reply, Usage, normalize_messages

__all__ = [
    "ErrorReply",
    "ParsedRequest",
    "RequestInvalid",
    "chunk_body",
    "completion_body",
    "error_body",
    "error_for_exception",
    "finish_reason",
    "hide_upstreams",
    "model_list_body",
    "parse_chat_request",
    "upstream_hosts",
    "usage_body",
    "usage_chunk_body",
    "without_urls",
]


class RequestInvalid(Exception):
    """The request body does not fit OpenAI's shape (HTTP 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: Mapping[str, Any] | None = None
    stream: bool = False
    include_usage: bool = False


# Fields the gateway forwards to the router as per-call params, with their checks.
_RANGES: dict[str, tuple[float, float]] = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}
# OpenAI fields that change what is asked in ways the gateway cannot honour.
_UNSUPPORTED = ("tools", "functions")


def parse_chat_request(body: Any) -> ParsedRequest:
    """Check an OpenAI chat-completions body; raise :class:`RequestInvalid` naming the field."""
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("'model' is required: a role name or a provider id", "model")
    for name in _UNSUPPORTED:
        if body.get(name):
            raise RequestInvalid(
                f"'{name}' is not supported by the rolecall gateway; send plain messages", name
            )
    n = body.get("n")
    if n is not None and n != 1:
        raise RequestInvalid("only n=1 is supported", "n")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise RequestInvalid("'stream' must be true or false", "stream")
    return ParsedRequest(
        model=model,
        messages=_messages(body.get("messages")),
        params=_params(body),
        response_schema=_response_schema(body.get("response_format")),
        stream=stream,
        include_usage=stream and _include_usage(body.get("stream_options")),
    )


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise RequestInvalid("'messages' must be a non-empty array", "messages")
    items: list[Any] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RequestInvalid(f"messages[{index}] must be an object", f"messages[{index}]")
        if item.get("role") == "developer":  # newer OpenAI name for the system prompt
            item = {**item, "role": "system"}
        if item.get("content") is None:
            raise RequestInvalid(
                f"messages[{index}].content is required", f"messages[{index}].content"
            )
        items.append(item)
    try:
        return normalize_messages(items)
    except ValueError as exc:
        raise RequestInvalid(str(exc), "messages") from None


def _params(body: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value) or not low <= value <= high:
            raise RequestInvalid(f"'{name}' must be a number from {low:g} to {high:g}", name)
        params[name] = value
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise RequestInvalid(f"'{name}' must be a positive integer", name)
        params.setdefault("max_tokens", value)
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestInvalid("'stop' must be a string or an array of strings", "stop")
        if stop:
            params["stop"] = stop
    return params


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _response_schema(raw: Any) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestInvalid("'response_format' must be an object", "response_format")
    kind = raw.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = raw.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise RequestInvalid(
                "response_format.json_schema.schema must be a JSON Schema object",
                "response_format",
            )
        return schema
    raise RequestInvalid(
        "response_format.type must be text, json_object or json_schema", "response_format"
    )


def _include_usage(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("include_usage") is True


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
}


def finish_reason(raw: str | None) -> str:
    return _FINISH.get(raw, "stop") if raw else "stop"


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def completion_body(reply: Reply, completion_id: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply.text,
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": finish_reason(reply.finish_reason),
            }
        ],
        "usage": usage_body(reply.usage),
        "system_fingerprint": None,
    }


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


def model_list_body(roles: Sequence[str], providers: Sequence[str], created: int) -> dict[str, Any]:
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "rolecall-role"}
        for name in roles
    ]
    data += [
        {"id": name, "object": "model", "created": created, "owned_by": "rolecall-provider"}
        for name in providers
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


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape; the message is redacted and stripped of URLs whatever its source."""
    shown = without_urls(redact(message))
    return {"error": {"message": shown, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True, slots=True)
class ErrorReply:
    status: int
    body: dict[str, Any]
    retry_after: float | None = None


def error_for_exception(exc: Exception, upstreams: Sequence[str] = ()) -> ErrorReply | None:
    """The HTTP status and body for a router error, or None when it is not one.

    Provider messages lose every URL and every address in ``upstreams`` (see
    :func:`upstream_hosts`): a gateway client learns nothing of what is behind it.
    """
    if isinstance(exc, NoProviderForRole):
        return ErrorReply(404, error_body(exc.message, "invalid_request_error", "no_provider"))
    if isinstance(exc, AllProvidersFailed):
        return _all_failed(hide_upstreams(exc.message, upstreams), exc.errors)
    if isinstance(exc, ProviderError):
        if not exc.provider and exc.kind is ErrorKind.BAD_REQUEST:  # refused before any call
            return ErrorReply(400, error_body(exc.message, "invalid_request_error", "bad_request"))
        return _all_failed(hide_upstreams(exc.message, upstreams), [exc])
    return None


def _all_failed(message: str, errors: Sequence[ProviderError]) -> ErrorReply:
    kinds = {e.kind for e in errors}
    if kinds == {ErrorKind.RATE_LIMIT}:
        waits = [e.retry_after for e in errors if e.retry_after is not None]
        body = error_body(message, "rate_limit_error", "rate_limit_exceeded")
        return ErrorReply(429, body, min(waits) if waits else None)
    if kinds == {ErrorKind.OVERLOADED} or not kinds:
        # Nothing answered because everything is busy, or every provider is cooling down.
        return ErrorReply(503, error_body(message, "api_error", "overloaded"))
    return ErrorReply(502, error_body(message, "api_error", "all_providers_failed"))
