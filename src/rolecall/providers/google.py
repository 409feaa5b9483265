"""Google Gemini API (``POST {base}/v1beta/models/{model}:generateContent``).

System messages become ``systemInstruction``; assistant turns use role ``model``. The
key travels in ``x-goog-api-key``, never in the URL, where it would leak into error
text. Structured output uses ``responseJsonSchema`` (standard JSON Schema, documented
as an alternative to the OpenAPI-subset ``responseSchema``). Output tokens include
thinking tokens, which are billed as output. Finish reasons use OpenAI's words
(``stop``, ``length``, ``tool_calls``: Gemini says STOP when it calls functions).

The request body is built in ``_gemini_body``. In replies, ``functionCall`` parts
become tool calls (Gemini's ``id`` when it sends one, else ``call_<n>`` numbered
within the reply), parts marked ``thought`` are reasoning kept apart from the
text, and ``cachedContentTokenCount`` is the cached share of the prompt. The
``thoughtSignature`` of a reply's first ``functionCall`` part (Gemini 3 signs its calls and
wants the signature back) is kept as the reply's reasoning block, protocol ``gemini``, with
the reply's thought text; in a stream it ends the reasoning with the call's chunk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
from rolecall.providers._gemini_body import PROTOCOL, gemini_body
from rolecall.providers._http import HTTPProvider
from rolecall.providers.base import token_count
from rolecall.types import (
    ChatRequest,
    Chunk,
    Completion,
    ReasoningBlock,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "API_VERSION",
    "FILTER_FINISH_REASONS",
    "GoogleProvider",
    "classify_gemini_error",
    "gemini_body",
]

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


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    return Usage(
        token_count(value.get("promptTokenCount")),
        token_count(value.get("candidatesTokenCount"))
        + token_count(value.get("thoughtsTokenCount")),
        cached_input_tokens=token_count(value.get("cachedContentTokenCount")),
        reasoning_tokens=token_count(value.get("thoughtsTokenCount")),
    )


@dataclass(slots=True)
class _Content:
    """One candidate's parts, sorted: answer text, thought text, function calls."""

    text: str = ""
    reasoning: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    signature: str = ""  # the first call's thoughtSignature

    def blocks(self) -> tuple[ReasoningBlock, ...]:
        if not self.signature:
            return ()
        return (ReasoningBlock(PROTOCOL, self.reasoning, signature=self.signature),)


def _candidate_content(candidate: Mapping[str, Any], first_call: int = 0) -> _Content:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    out = _Content()
    if not isinstance(parts, list):
        return out
    texts: list[str] = []
    thoughts: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall")
        if isinstance(call, dict):
            signature = part.get("thoughtSignature")
            if not out.calls and not first_call and isinstance(signature, str):
                out.signature = signature
            out.calls.append(_tool_call(call, first_call + len(out.calls)))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    out.text, out.reasoning = "".join(texts), "".join(thoughts)
    return out


def _tool_call(call: Mapping[str, Any], number: int) -> ToolCall:
    call_id = call.get("id")
    name = call.get("name")
    args = call.get("args")
    return ToolCall(
        call_id if isinstance(call_id, str) and call_id else f"call_{number}",
        name if isinstance(name, str) else "",
        json.dumps(args if isinstance(args, dict) else {}, ensure_ascii=False),
    )


def _finish(finish: object, calls: bool) -> str | None:
    if not isinstance(finish, str) or not finish:
        return "tool_calls" if calls else None
    if calls and finish == "STOP":
        return "tool_calls"
    return _FINISH.get(finish, finish.lower())


class GoogleProvider(HTTPProvider):
    """``type: google`` (Gemini API)."""

    classify = staticmethod(classify_gemini_error)
    # The Gemini API (v1beta) has the VALIDATED function calling mode a strict tool asks for.
    validated_mode = True

    def __init__(self, provider_id: str, config: ProviderConfig) -> None:
        super().__init__(provider_id, config, provider_type(config.type).default_base_url)
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
        body = gemini_body(request, provider=self.id, validated=self.validated_mode)
        data = await self.request_json("POST", f"{self._model_url}:generateContent", body)
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
        if isinstance(finish, str) and finish in FILTER_FINISH_REASONS:
            raise self._filtered(str(finish))
        content = _candidate_content(candidate)
        if not content.text and not content.calls:
            raise self.empty_answer()
        if request.response_schema is not None and not content.calls:
            self.check_json_text(content.text)
        model = data.get("modelVersion")
        return Completion(
            text=content.text,
            model=model if isinstance(model, str) and model else self.model,
            usage=_usage(data.get("usageMetadata")) or Usage(),
            finish_reason=_finish(finish, bool(content.calls)),
            tool_calls=tuple(content.calls),
            reasoning=content.reasoning or None,
            reasoning_blocks=content.blocks(),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        body = gemini_body(request, provider=self.id, validated=self.validated_mode)
        parts: list[str] | None = [] if request.response_schema is not None else None
        received = 0
        calls = 0
        finish: str | None = None
        usage: Usage | None = None
        model: str | None = None
        url = f"{self._model_url}:streamGenerateContent?alt=sse"
        async with self.open_stream(url, body) as events:
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
                version = data.get("modelVersion")
                model = version if isinstance(version, str) and version else model
                candidates = data.get("candidates") or []
                if not isinstance(candidates, list):
                    raise self.error(
                        "stream chunk's candidates is not a list", ErrorKind.BAD_RESPONSE
                    )
                candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
                content = _candidate_content(candidate, first_call=calls)
                received += len(content.text)
                if parts is not None and content.text:
                    parts.append(content.text)
                signed = content.signature
                chunk = Chunk(
                    text=content.text,
                    reasoning=content.reasoning,
                    reasoning_block=ReasoningBlock(PROTOCOL, signature=signed) if signed else None,
                    tool_calls=tuple(
                        ToolCallDelta(calls + n, call.id, call.name, call.arguments)
                        for n, call in enumerate(content.calls)
                    ),
                )
                calls += len(content.calls)
                if chunk.has_content:
                    yield chunk
                reason = candidate.get("finishReason")
                if isinstance(reason, str) and reason:
                    if reason in FILTER_FINISH_REASONS:
                        raise self._filtered(reason)
                    finish = reason
        # Gemini streams have no terminator: the last chunk carries finishReason.
        if finish is None:
            raise self.cut_short(received)
        if not received and not calls:
            raise self.empty_answer()
        if parts is not None and not calls:
            self.check_json_text("".join(parts))
        yield Chunk(
            usage=usage or Usage(),
            finish_reason=_finish(finish, calls > 0),
            model=model or self.model,
        )

    async def check_credentials(self) -> None:
        """``GET {base}/v1beta/models/{model}`` (free); 404 means the model does not exist."""
        data = await self.request_json("GET", self._model_url)
        if not isinstance(data, dict):
            raise self.error("model lookup answered without a model", ErrorKind.BAD_RESPONSE)
