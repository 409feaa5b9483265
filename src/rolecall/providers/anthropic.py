"""Anthropic Messages API (``POST {base}/v1/messages``).

System messages become the top-level ``system`` field; ``max_tokens`` is required by the
API and defaults to 4096; ``temperature`` is clamped to Anthropic's 0..1 range so a role
tuned for another vendor (0..2) still works here. Structured output uses one forced
tool, ``respond``, whose input is returned as JSON text (a server that ignores the tool
and answers in text must answer with the JSON itself). Finish reasons use OpenAI's
words (``stop``, ``length``) so every adapter reports them alike.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from rolecall.config.params import sendable_params
from rolecall.config.schema import ProviderConfig
from rolecall.config.vendors import DEFAULT_BASE_URLS
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._errors import (
    error_object,
    kind_for_status,
    retry_after_seconds,
    rfc3339_seconds,
    vendor_message,
)
from rolecall.providers._http import HTTPProvider
from rolecall.types import ChatRequest, Chunk, Completion, Usage

__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "RESPOND_TOOL",
    "AnthropicProvider",
    "anthropic_body",
    "anthropic_reset_seconds",
    "classify_anthropic_error",
]

DEFAULT_BASE_URL = DEFAULT_BASE_URLS["anthropic"]
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
RESPOND_TOOL = "respond"
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
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop", "max_tokens": "length"}
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


def anthropic_body(model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The Messages API body; params other than the known ones are not sent (logged once)."""
    params = sendable_params("anthropic", request.params)
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ],
    }
    if system:
        body["system"] = system
    temperature = params.get("temperature")
    if isinstance(temperature, int | float):
        body["temperature"] = min(max(float(temperature), 0.0), 1.0)
    for key in ("top_p", "top_k"):
        if params.get(key) is not None:
            body[key] = params[key]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.response_schema is not None:
        body["tools"] = [
            {
                "name": RESPOND_TOOL,
                "description": "Give the answer as this tool's input.",
                "input_schema": dict(request.response_schema),
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": RESPOND_TOOL}
    if stream:
        body["stream"] = True
    return body


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _input_tokens(usage: Mapping[str, Any]) -> int:
    # Cached prompt tokens are reported apart; the prompt's size is their sum.
    return (
        _int(usage.get("input_tokens"))
        + _int(usage.get("cache_creation_input_tokens"))
        + _int(usage.get("cache_read_input_tokens"))
    )


def _finish(stop_reason: object) -> str | None:
    if not isinstance(stop_reason, str):
        return None
    return _FINISH.get(stop_reason, stop_reason)


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
        super().__init__(provider_id, config, DEFAULT_BASE_URL)
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
        body = anthropic_body(self.model, request, stream=False)
        data = await self.request_json("POST", self._messages_url, body)
        content = data.get("content") if isinstance(data, dict) else None
        if not isinstance(content, list):
            raise self.error("answer has no content list", ErrorKind.BAD_RESPONSE)
        if data.get("stop_reason") == "refusal":
            raise self._refused()
        blocks = [b for b in content if isinstance(b, dict)]
        text = "".join(
            b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)
        )
        if request.response_schema is not None:
            call = next(
                (
                    b
                    for b in blocks
                    if b.get("type") == "tool_use" and b.get("name") == RESPOND_TOOL
                ),
                None,
            )
            if call is not None:
                if not isinstance(call.get("input"), dict):
                    raise self.error(
                        f"'{RESPOND_TOOL}' tool call has no input object", ErrorKind.BAD_RESPONSE
                    )
                text = json.dumps(call["input"], ensure_ascii=False)
            elif text:  # a server that ignored the tool: its text must be the JSON
                self.check_json_text(text)
        if not text:
            raise self.empty_answer()
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        model = data.get("model")
        return Completion(
            text=text,
            model=model if isinstance(model, str) and model else self.model,
            usage=Usage(_input_tokens(usage), _int(usage.get("output_tokens"))),
            finish_reason=_finish(data.get("stop_reason")),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        structured = request.response_schema is not None
        parts: list[str] = []
        received = 0
        input_tokens = output_tokens = 0
        finish: str | None = None
        model: str | None = None
        done = False
        body = anthropic_body(self.model, request, stream=True)
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
                if name == "content_block_delta":
                    delta = data.get("delta") or {}
                    kind = delta.get("type")
                    if kind == "text_delta":
                        piece = delta.get("text")
                    elif structured and kind == "input_json_delta":
                        piece = delta.get("partial_json")
                    else:
                        continue
                    if isinstance(piece, str) and piece:
                        received += len(piece)
                        if structured:
                            parts.append(piece)
                        yield Chunk(text=piece)
                elif name == "message_start":
                    message = data.get("message") or {}
                    model = message.get("model") or model
                    usage = message.get("usage") or {}
                    input_tokens = _input_tokens(usage)
                    output_tokens = _int(usage.get("output_tokens"))
                elif name == "message_delta":
                    stop_reason = (data.get("delta") or {}).get("stop_reason")
                    if stop_reason == "refusal":
                        raise self._refused()
                    finish = _finish(stop_reason) or finish
                    usage = data.get("usage") or {}
                    if isinstance(usage.get("output_tokens"), int):
                        output_tokens = usage["output_tokens"]  # cumulative
                    if isinstance(usage.get("input_tokens"), int):
                        input_tokens = max(input_tokens, _input_tokens(usage))
                elif name == "message_stop":
                    done = True
                    break
        if not done:
            raise self.cut_short(received)
        if not received:
            raise self.empty_answer()
        if structured:
            self.check_json_text("".join(parts))
        yield Chunk(
            usage=Usage(input_tokens, output_tokens),
            finish_reason=finish,
            model=model or self.model,
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
