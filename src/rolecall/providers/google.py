"""Google Gemini API (``POST {base}/v1beta/models/{model}:generateContent``).

System messages become ``systemInstruction``; assistant turns use role ``model``. The
key travels in ``x-goog-api-key``, never in the URL, where it would leak into error
text. Structured output uses ``responseJsonSchema`` (standard JSON Schema, documented
as an alternative to the OpenAPI-subset ``responseSchema``). Output tokens include
thinking tokens, which are billed as output. Finish reasons use OpenAI's words
(``stop``, ``length``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from rolecall.config.params import sendable_params
from rolecall.config.schema import ProviderConfig
from rolecall.config.vendors import DEFAULT_BASE_URLS
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._errors import (
    error_head,
    google_rpc_kind,
    is_gemini_context_overflow,
    kind_for_status,
    retry_after_seconds,
)
from rolecall.providers._http import HTTPProvider
from rolecall.types import ChatRequest, Chunk, Completion, Usage

__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "FILTER_FINISH_REASONS",
    "GoogleProvider",
    "classify_gemini_error",
    "gemini_body",
]

DEFAULT_BASE_URL = DEFAULT_BASE_URLS["google"]
API_VERSION = "v1beta"
# Finish reasons meaning the answer was withheld by a policy filter (another model may answer).
FILTER_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_GENERATION_KEYS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
    "seed": "seed",
}


def classify_gemini_error(
    status: int | None,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str = "",
    now: float | None = None,
) -> ProviderError:
    """A Gemini (google.rpc) error, from HTTP or inside a stream, as a ProviderError."""
    err, status, message, text = error_head(status, body)

    def make(kind: ErrorKind, retry_after: float | None = None) -> ProviderError:
        return ProviderError(
            text, kind=kind, provider=provider, status=status, retry_after=retry_after
        )

    low = message.lower()
    if status == 400 and ("api key not valid" in low or "api key expired" in low):
        return make(ErrorKind.AUTH)
    rpc = google_rpc_kind(err, headers, now)
    if rpc is not None:
        return make(*rpc)
    if status == 429:
        return make(ErrorKind.RATE_LIMIT, retry_after_seconds(headers, now))
    if (status is None or status == 400) and is_gemini_context_overflow(message):
        return make(ErrorKind.CONTEXT_LENGTH)
    return make(kind_for_status(status))


def gemini_body(request: ChatRequest) -> dict[str, Any]:
    """The generateContent body; params other than the known ones are not sent (logged once)."""
    params = sendable_params("google", request.params)
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    body: dict[str, Any] = {
        "contents": [
            {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
            for m in request.messages
            if m.role != "system"
        ]
    }
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    generation: dict[str, Any] = {}
    for key, name in _GENERATION_KEYS.items():
        if params.get(key) is not None:
            generation[name] = params[key]
    stop = params.get("stop")
    if stop:
        generation["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.response_schema is not None:
        generation["responseMimeType"] = "application/json"
        generation["responseJsonSchema"] = dict(request.response_schema)
    if generation:
        body["generationConfig"] = generation
    return body


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    return Usage(
        _int(value.get("promptTokenCount")),
        _int(value.get("candidatesTokenCount")) + _int(value.get("thoughtsTokenCount")),
    )


def _candidate_text(candidate: Mapping[str, Any]) -> str:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )


class GoogleProvider(HTTPProvider):
    """``type: google`` (Gemini API)."""

    classify = staticmethod(classify_gemini_error)

    def __init__(self, provider_id: str, config: ProviderConfig) -> None:
        super().__init__(provider_id, config, DEFAULT_BASE_URL)
        name = quote(self.model.removeprefix("models/"), safe="-._~")
        self._model_url = f"{self.base_url}/{API_VERSION}/models/{name}"

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"x-goog-api-key": key.get()} if key else {}

    def _blocked(self, data: Mapping[str, Any]) -> ProviderError | None:
        feedback = data.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            return self.error(
                f"prompt blocked by the content filter ({reason})", ErrorKind.CONTENT_FILTER
            )
        return None

    def _filtered(self, finish: str) -> ProviderError:
        return self.error(
            f"answer withheld by the content filter (finishReason {finish})",
            ErrorKind.CONTENT_FILTER,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        data = await self.request_json(
            "POST", f"{self._model_url}:generateContent", gemini_body(request)
        )
        if not isinstance(data, dict):
            raise self.error("answer is not an object", ErrorKind.BAD_RESPONSE)
        blocked = self._blocked(data)
        if blocked is not None:
            raise blocked
        candidates = data.get("candidates")
        if (
            not isinstance(candidates, list)
            or not candidates
            or not isinstance(candidates[0], dict)
        ):
            raise self.error("answer has no candidates", ErrorKind.BAD_RESPONSE)
        candidate = candidates[0]
        finish = candidate.get("finishReason")
        if finish in FILTER_FINISH_REASONS:
            raise self._filtered(str(finish))
        text = _candidate_text(candidate)
        if not text:
            raise self.empty_answer()
        if request.response_schema is not None:
            self.check_json_text(text)
        model = data.get("modelVersion")
        return Completion(
            text=text,
            model=model if isinstance(model, str) and model else self.model,
            usage=_usage(data.get("usageMetadata")) or Usage(),
            finish_reason=_FINISH.get(finish, finish.lower()) if isinstance(finish, str) else None,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        parts: list[str] | None = [] if request.response_schema is not None else None
        received = 0
        finish: str | None = None
        usage: Usage | None = None
        model: str | None = None
        url = f"{self._model_url}:streamGenerateContent?alt=sse"
        async with self.open_stream(url, gemini_body(request)) as events:
            async for event in events:
                data = self.event_json(event)
                if not isinstance(data, dict):
                    raise self.error("stream chunk is not an object", ErrorKind.BAD_RESPONSE)
                if data.get("error"):
                    raise self.http_error(None, data, {})
                blocked = self._blocked(data)
                if blocked is not None:
                    raise blocked
                usage = _usage(data.get("usageMetadata")) or usage
                model = data.get("modelVersion") or model
                candidates = data.get("candidates") or ()
                candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
                piece = _candidate_text(candidate)
                if piece:
                    received += len(piece)
                    if parts is not None:
                        parts.append(piece)
                    yield Chunk(text=piece)
                reason = candidate.get("finishReason")
                if isinstance(reason, str) and reason:
                    if reason in FILTER_FINISH_REASONS:
                        raise self._filtered(reason)
                    finish = reason
        # Gemini streams have no terminator: the last chunk carries finishReason.
        if finish is None:
            raise self.cut_short(received)
        if not received:
            raise self.empty_answer()
        if parts is not None:
            self.check_json_text("".join(parts))
        yield Chunk(
            usage=usage or Usage(),
            finish_reason=_FINISH.get(finish, finish.lower()),
            model=model or self.model,
        )

    async def check_credentials(self) -> None:
        """``GET {base}/v1beta/models/{model}`` (free); 404 means the model does not exist."""
        data = await self.request_json("GET", self._model_url)
        if not isinstance(data, dict):
            raise self.error("model lookup answered without a model", ErrorKind.BAD_RESPONSE)
