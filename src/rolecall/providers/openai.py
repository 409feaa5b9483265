"""OpenAI Chat Completions, and servers that speak it (type ``openai-compatible``).

``openai-compatible`` covers Ollama (``/v1``), vLLM, llama.cpp's server, Groq, OpenRouter
and Gemini's OpenAI endpoint: it needs ``base_url``, sends ``max_tokens`` instead of
``max_completion_tokens`` and omits ``Authorization`` when no key is configured.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from rolecall.config.params import image_type_problem, sendable_params, vendor_limit_problem
from rolecall.config.registry import provider_type
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._errors import (
    error_head,
    google_rpc_kind,
    is_gemini_context_overflow,
    kind_for_status,
    retry_after_seconds,
)
from rolecall.providers._http import HTTPProvider
from rolecall.providers._openai_wire import (
    message_dict,
    reasoning_of,
    tool_call_deltas,
    tool_calls_of,
    unsupported_param,
    usage_of,
)
from rolecall.types import ChatRequest, Chunk, Completion, Usage

__all__ = [
    "OpenAIProvider",
    "classify_openai_error",
    "openai_body",
]


_RESERVED = frozenset({"model", "messages", "stream", "stream_options"})
# The fields extra_body may not replace: what the adapter itself must decide.
_OWN = frozenset({"model", "messages", "stream"})
_CONTEXT_LABELS = frozenset({"context_length_exceeded", "exceed_context_size_error"})
# Wordings of OpenAI, vLLM, OpenRouter, llama.cpp and Anthropic's compatible endpoint.
_CONTEXT_PHRASES = (
    "maximum context length",
    "context length exceeded",
    "exceeds the available context size",
    "exceeds the context window",
    "prompt is too long",
)
# In-stream error objects carry no HTTP status: classify them by type/code.
_LABEL_KINDS = {
    "invalid_api_key": ErrorKind.AUTH,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.PERMISSION,
    "model_not_found": ErrorKind.NOT_FOUND,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "server_error": ErrorKind.SERVER,
    "overloaded_error": ErrorKind.OVERLOADED,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
}
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]+")


def is_openai_context_overflow(err: Mapping[str, Any]) -> bool:
    labels = {str(err.get("code") or ""), str(err.get("type") or "")}
    if labels & _CONTEXT_LABELS:
        return True
    message = str(err.get("message") or "").lower()
    return any(p in message for p in _CONTEXT_PHRASES) or is_gemini_context_overflow(message)


def classify_openai_error(
    status: int | None,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str = "",
    now: float | None = None,
) -> ProviderError:
    """An OpenAI-style error (HTTP status, or None for one inside a stream) as a ProviderError."""
    err, status, _, text = error_head(status, body)

    def make(kind: ErrorKind, retry_after: float | None = None) -> ProviderError:
        return ProviderError(
            text, kind=kind, provider=provider, status=status, retry_after=retry_after
        )

    rpc = google_rpc_kind(err, headers, now)  # Gemini's OpenAI-compatible endpoint
    if rpc is not None:
        return make(*rpc)
    labels = {str(err.get("code") or ""), str(err.get("type") or "")}
    if "insufficient_quota" in labels:
        return make(ErrorKind.QUOTA)
    if status == 429 or (status is None and "rate_limit_exceeded" in labels):
        return make(ErrorKind.RATE_LIMIT, retry_after_seconds(headers, now))
    if (status is None or 400 <= status < 500) and is_openai_context_overflow(err):
        return make(ErrorKind.CONTEXT_LENGTH)
    if status is None:
        kind = next(
            (_LABEL_KINDS[label] for label in labels if label in _LABEL_KINDS), ErrorKind.SERVER
        )
        return make(kind)
    return make(kind_for_status(status))


def _schema_name(schema: Mapping[str, Any]) -> str:
    title = schema.get("title")
    name = _SCHEMA_NAME.sub("_", title)[:64] if isinstance(title, str) else ""
    return name or "response"


def openai_body(
    model: str,
    request: ChatRequest,
    *,
    max_tokens_field: str,
    stream: bool,
    protocol: str = "openai",
) -> dict[str, Any]:
    """The Chat Completions body; params ``protocol`` does not take are not sent (logged once).

    ``extra_body`` is merged in last, as given (it cannot replace model, messages or
    stream). A ``response_format`` of type ``json_schema`` in the params is sent as the
    caller wrote it (its ``strict`` kept); otherwise ``response_schema`` is sent with
    ``strict: false``, which takes any JSON Schema.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_dict(m) for m in request.messages],
    }
    extra: Any = None
    params = request.params
    for key, value in sendable_params(protocol, params).items() if params else ():
        if value is None or key in _RESERVED:
            continue
        if key == "extra_body":
            extra = value
            continue
        body[max_tokens_field if key == "max_tokens" else key] = value
    schema = request.response_schema
    if schema is not None and not _is_json_schema_format(body.get("response_format")):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(schema), "schema": dict(schema), "strict": False},
        }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if isinstance(extra, Mapping):
        body.update({k: v for k, v in extra.items() if k not in _OWN})
    return body


def _is_json_schema_format(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and value.get("type") == "json_schema"
        and isinstance(value.get("json_schema"), Mapping)
    )


class OpenAIProvider(HTTPProvider):
    """``type: openai`` and ``type: openai-compatible``."""

    classify = staticmethod(classify_openai_error)

    def __init__(self, provider_id: str, config: ProviderConfig) -> None:
        self.compatible = config.type == "openai-compatible"
        super().__init__(provider_id, config, provider_type(config.type).default_base_url)
        self._chat_url = f"{self.base_url}/chat/completions"
        self._max_tokens_field = "max_tokens" if self.compatible else "max_completion_tokens"

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"Authorization": f"Bearer {key.get()}"} if key else {}

    def body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        problem = unsupported_param(request.params)
        if problem is not None:
            raise self.error(problem, ErrorKind.UNSUPPORTED)
        if not self.compatible:  # OpenAI's own limits; compatible servers differ
            refused = vendor_limit_problem("openai", request.params) or image_type_problem(
                "openai", request.messages
            )
            if refused is not None:
                raise self.error(
                    f"OpenAI would refuse the request: {refused[1]}", ErrorKind.UNSUPPORTED
                )
        return openai_body(
            self.model,
            request,
            max_tokens_field=self._max_tokens_field,
            stream=stream,
            protocol=self.config.type,
        )

    def _filtered(self, what: str) -> ProviderError:
        return self.error(
            f"answer withheld by the content filter ({what})", ErrorKind.CONTENT_FILTER
        )

    async def complete(self, request: ChatRequest) -> Completion:
        data = await self.request_json("POST", self._chat_url, self.body(request, stream=False))
        try:
            choice = data["choices"][0]
            message = choice["message"]
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self.error("answer has no choices[0].message", ErrorKind.BAD_RESPONSE) from None
        if not isinstance(message, dict):
            raise self.error("answer has no choices[0].message", ErrorKind.BAD_RESPONSE)
        if finish == "content_filter":
            raise self._filtered("finish_reason content_filter")
        if message.get("refusal"):
            raise self._filtered("refusal")
        text = message.get("content")
        text = text if isinstance(text, str) else ""
        calls = tool_calls_of(message)
        if not text and not calls:
            raise self.empty_answer()
        if request.response_schema is not None and not calls:
            self.check_json_text(text)
        model = data.get("model")
        return Completion(
            text=text,
            model=model if isinstance(model, str) and model else self.model,
            usage=usage_of(data.get("usage")) or Usage(),
            finish_reason=finish if isinstance(finish, str) else None,
            tool_calls=calls,
            reasoning=reasoning_of(message) or None,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        parts: list[str] | None = [] if request.response_schema is not None else None
        received = 0
        answered = False  # text or a tool call: reasoning alone is no answer
        finish: str | None = None
        usage: Usage | None = None
        model: str | None = None
        done = False
        async with self.open_stream(self._chat_url, self.body(request, stream=True)) as events:
            async for event in events:
                if event.data == "[DONE]":
                    done = True
                    break
                data = self.event_json(event)
                if not isinstance(data, dict):
                    raise self.error("stream chunk is not an object", ErrorKind.BAD_RESPONSE)
                if data.get("error"):
                    raise self.http_error(None, data, {})
                named = data.get("model")
                model = named if isinstance(named, str) and named else model
                usage = usage_of(data.get("usage")) or usage
                choices = data.get("choices") or []
                if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
                    raise self.error(
                        "stream chunk's choices is not a list of objects", ErrorKind.BAD_RESPONSE
                    )
                for choice in choices:
                    delta = choice.get("delta")
                    chunk = self._delta_chunk(delta if isinstance(delta, dict) else {})
                    if chunk is not None:
                        received += len(chunk.text)
                        answered = answered or bool(chunk.text or chunk.tool_calls)
                        if parts is not None:
                            parts.append(chunk.text)
                        yield chunk
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
                        if finish == "content_filter":
                            raise self._filtered("finish_reason content_filter")
        if not done and finish is None:
            raise self.cut_short(received)
        if not answered:
            raise self.empty_answer()
        if parts is not None and finish != "tool_calls":
            self.check_json_text("".join(parts))
        yield Chunk(usage=usage or Usage(), finish_reason=finish, model=model or self.model)

    def _delta_chunk(self, delta: Mapping[str, Any]) -> Chunk | None:
        """A choice's delta as a Chunk (text, reasoning, tool-call pieces), None when bare."""
        if delta.get("refusal"):
            raise self._filtered("refusal")
        piece = delta.get("content")
        chunk = Chunk(
            text=piece if isinstance(piece, str) else "",
            tool_calls=tool_call_deltas(delta),
            reasoning=reasoning_of(delta),
        )
        return chunk if chunk.has_content else None

    async def check_credentials(self) -> None:
        """``GET {base}/models`` (free) and confirm the model is listed."""
        data = await self.request_json("GET", f"{self.base_url}/models")
        listed = data.get("data") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise self.error("model list has no 'data' array", ErrorKind.BAD_RESPONSE)
        entries = [m for m in listed if isinstance(m, dict)]
        # llama.cpp's server answers under any model name with whatever it loaded.
        if any(m.get("owned_by") == "llamacpp" for m in entries):
            return
        ids = [str(m.get("id")) for m in entries]
        if self.model in ids or f"{self.model}:latest" in ids:  # Ollama tags
            return
        raise self.not_listed(f"{self.base_url}/models", ids)
