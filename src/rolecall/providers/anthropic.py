"""Anthropic Messages API (``POST {base}/v1/messages``).

The request body is built in ``_anthropic_body`` (system prompt, content blocks, tools,
thinking) and streams are read in ``_anthropic_stream``. Structured output uses one
forced tool, ``respond``, whose input is returned as JSON text (a server that ignores
the tool and answers in text must answer with the JSON itself); any other ``tool_use``
block is a tool call. ``thinking`` blocks are the reply's reasoning, kept apart from
its text, and kept whole with their signatures (``redacted_thinking`` blocks with their
data) so that a later turn can send them back. Finish reasons use OpenAI's words
(``stop``, ``length``, ``tool_calls``) so every adapter reports them alike; a stop
sequence that ended the answer is ``stop`` with that sequence (``stop_sequence``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from rolecall.config.registry import provider_type
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._anthropic_body import (
    DEFAULT_MAX_TOKENS,
    PROTOCOL,
    RESPOND_TOOL,
    anthropic_body,
    response_schema,
)
from rolecall.providers._anthropic_stream import StreamState as _StreamState
from rolecall.providers._anthropic_stream import finish_reason as _finish
from rolecall.providers._anthropic_stream import matched_stop
from rolecall.providers._anthropic_stream import usage_of as _usage
from rolecall.providers._errors import (
    error_object,
    kind_for_status,
    retry_after_seconds,
    rfc3339_seconds,
    vendor_message,
)
from rolecall.providers._http import HTTPProvider
from rolecall.providers.base import optional_text
from rolecall.types import ChatRequest, Chunk, Completion, ReasoningBlock, ToolCall

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_TOKENS",
    "RESPOND_TOOL",
    "AnthropicProvider",
    "anthropic_body",
    "anthropic_reset_seconds",
    "classify_anthropic_error",
]

API_VERSION = "2023-06-01"
_MODEL_PAGES = 10

_TYPE_KINDS = {
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "billing_error": ErrorKind.QUOTA,
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    "overloaded_error": ErrorKind.OVERLOADED,
    "api_error": ErrorKind.SERVER,
    "timeout_error": ErrorKind.TIMEOUT,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "request_too_large": ErrorKind.BAD_REQUEST,
}
_QUOTA_PHRASES = (
    "credit balance is too low",
    "reached your specified api usage limits",
    "spend limit",
    "spend_limit_reached",
)
_CONTEXT_PHRASES = ("prompt is too long", "exceed context limit")
_RATE_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
_DATED = re.compile(r"-\d{8}$")


def anthropic_reset_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """Wait from ``anthropic-ratelimit-*-reset`` (RFC 3339).

    The relevant limits are those whose ``-remaining`` is 0; every one of them must reset,
    so the latest of those counts. With no exhausted limit named, the soonest reset.
    """
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    moment = time.time() if now is None else now
    exhausted: list[float] = []
    waits: list[float] = []
    for name in _RATE_LIMITS:
        reset = lowered.get(f"anthropic-ratelimit-{name}-reset")
        wait = rfc3339_seconds(reset, moment) if reset else None
        if wait is None:
            continue
        waits.append(wait)
        if lowered.get(f"anthropic-ratelimit-{name}-remaining", "").strip() == "0":
            exhausted.append(wait)
    if exhausted:
        return max(exhausted)
    return min(waits) if waits else None


def classify_anthropic_error(
    status: int | None,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str = "",
    now: float | None = None,
) -> ProviderError:
    """An Anthropic error (HTTP status, or None for a stream ``error`` event) as a ProviderError."""
    err = error_object(body)
    error_type = str(err.get("type") or "")
    details = err.get("details")
    error_code = str(details.get("error_code") or "") if isinstance(details, dict) else ""
    message = vendor_message(err, body)
    text = f"HTTP {status}: {message}" if status is not None else message

    def make(kind: ErrorKind, retry_after: float | None = None) -> ProviderError:
        return ProviderError(
            text, kind=kind, provider=provider, status=status, retry_after=retry_after
        )

    low = f"{message} {error_type} {error_code}".lower()
    if error_type == "billing_error" or any(p in low for p in _QUOTA_PHRASES):
        return make(ErrorKind.QUOTA)
    if any(p in low for p in _CONTEXT_PHRASES):
        return make(ErrorKind.CONTEXT_LENGTH)
    if error_type == "overloaded_error":
        return make(ErrorKind.OVERLOADED)
    if status == 429 or (status is None and error_type == "rate_limit_error"):
        wait = retry_after_seconds(headers, now)
        if wait is None:
            wait = anthropic_reset_seconds(headers, now)
        return make(ErrorKind.RATE_LIMIT, wait)
    if status is None:
        return make(_TYPE_KINDS.get(error_type, ErrorKind.SERVER))
    return make(kind_for_status(status))


def _texts(blocks: list[dict[str, Any]], kind: str, field: str) -> list[str]:
    return [b[field] for b in blocks if b.get("type") == kind and isinstance(b.get(field), str)]


def _reasoning_blocks(blocks: list[dict[str, Any]]) -> tuple[ReasoningBlock, ...]:
    """The thinking and redacted thinking blocks, as they must be sent back."""
    out: list[ReasoningBlock] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "thinking" and isinstance(block.get("thinking"), str):
            signature = block.get("signature")
            text, signed = block["thinking"], signature if isinstance(signature, str) else ""
            out.append(ReasoningBlock(PROTOCOL, text, signature=signed))
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            out.append(ReasoningBlock(PROTOCOL, redacted=block["data"]))
    return tuple(out)


def _tool_call(block: Mapping[str, Any]) -> ToolCall:
    return ToolCall(
        optional_text(block.get("id")) or "",
        optional_text(block.get("name")) or "",
        json.dumps(block.get("input") or {}, ensure_ascii=False),
    )


def _answer_finish(finish: str | None, answered: bool) -> str | None:
    # The forced ``respond`` tool is the answer itself, not a tool call for the caller.
    return "stop" if answered and finish == "tool_calls" else finish


def model_listed(model: str, ids: list[str]) -> bool:
    """Whether ``model`` or the alias it is (``x-latest``, ``x`` for ``x-20250101``) is listed."""
    if model in ids:
        return True
    base = model.removesuffix("-latest").removesuffix("-0")
    return any(i.startswith(base) and _DATED.fullmatch(i[len(base) :]) for i in ids)


class AnthropicProvider(HTTPProvider):
    """``type: anthropic``."""

    classify = staticmethod(classify_anthropic_error)

    def __init__(self, provider_id: str, config: ProviderConfig) -> None:
        super().__init__(provider_id, config, provider_type(config.type).default_base_url)
        self._messages_url = f"{self.base_url}/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        key = self.config.api_key
        if key:
            headers["x-api-key"] = key.get()
        return headers

    def _refused(self) -> ProviderError:
        return self.error(
            "the model refused to answer (stop_reason refusal)", ErrorKind.CONTENT_FILTER
        )

    async def complete(self, request: ChatRequest) -> Completion:
        body = anthropic_body(self.model, request, stream=False, provider=self.id)
        data = await self.request_json("POST", self._messages_url, body)
        content = data.get("content") if isinstance(data, dict) else None
        if not isinstance(content, list):
            raise self.error("answer has no content list", ErrorKind.BAD_RESPONSE)
        if data.get("stop_reason") == "refusal":
            raise self._refused()
        structured = response_schema(request) is not None
        blocks = [b for b in content if isinstance(b, dict)]
        text = "".join(_texts(blocks, "text", "text"))
        reasoning = "".join(_texts(blocks, "thinking", "thinking"))
        calls: list[ToolCall] = []
        finish = _finish(data.get("stop_reason"))
        for block in blocks:
            if block.get("type") != "tool_use":
                continue
            if not isinstance(block.get("input"), dict):
                raise self.error(
                    f"tool call '{block.get('name')}' has no input object", ErrorKind.BAD_RESPONSE
                )
            if structured and block.get("name") == RESPOND_TOOL:
                text = json.dumps(block["input"], ensure_ascii=False)
                finish = _answer_finish(finish, answered=True)
            else:
                calls.append(_tool_call(block))
        if structured and text and not calls:
            self.check_json_text(text)  # a server that ignored the tool answers with the JSON
        if not text and not calls:
            raise self.empty_answer()
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        model = data.get("model")
        return Completion(
            text=text,
            model=model if isinstance(model, str) and model else self.model,
            usage=_usage(usage),
            finish_reason=finish,
            tool_calls=tuple(calls),
            reasoning=reasoning or None,
            reasoning_blocks=_reasoning_blocks(blocks),
            stop_sequence=matched_stop(data.get("stop_reason"), data.get("stop_sequence")),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        state = _StreamState(structured=response_schema(request) is not None)
        body = anthropic_body(self.model, request, stream=True, provider=self.id)
        async with self.open_stream(self._messages_url, body) as events:
            async for event in events:
                if event.event == "ping":
                    continue
                data = self.event_json(event)
                if not isinstance(data, dict):
                    raise self.error("stream event is not an object", ErrorKind.BAD_RESPONSE)
                name = event.event if event.event != "message" else str(data.get("type") or "")
                if name == "error" or data.get("type") == "error":
                    raise self.http_error(None, data, {})
                if name == "message_delta":
                    delta = data.get("delta")
                    if isinstance(delta, dict) and delta.get("stop_reason") == "refusal":
                        raise self._refused()
                if name == "message_stop":
                    state.done = True
                    break
                chunk = state.take(name, data)
                if chunk is not None:
                    yield chunk
        if not state.done:
            raise self.cut_short(state.received)
        if not state.received and not state.calls:
            raise self.empty_answer()
        if state.structured and state.json_parts:
            self.check_json_text("".join(state.json_parts))
        yield Chunk(
            usage=state.usage(),
            finish_reason=_answer_finish(state.finish, state.answered_by_tool),
            model=state.model or self.model,
            stop_sequence=state.stop_sequence,
        )

    async def check_credentials(self) -> None:
        """``GET {base}/v1/models`` (free) and confirm the model or its alias is listed."""
        ids: list[str] = []
        params: dict[str, Any] = {"limit": 1000}
        for _ in range(_MODEL_PAGES):
            data = await self.request_json("GET", f"{self.base_url}/v1/models", params=params)
            listed = data.get("data") if isinstance(data, dict) else None
            if not isinstance(listed, list):
                raise self.error("model list has no 'data' array", ErrorKind.BAD_RESPONSE)
            ids.extend(str(m.get("id")) for m in listed if isinstance(m, dict))
            if model_listed(self.model, ids):
                return
            if not data.get("has_more") or not data.get("last_id"):
                break
            params = {"limit": 1000, "after_id": data["last_id"]}
        raise self.not_listed(f"{self.base_url}/v1/models", ids)
