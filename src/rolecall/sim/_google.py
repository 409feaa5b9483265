"""Google Gemini (Generative Language API, v1beta) on the wire.

Function-call parts and the thought signatures of Gemini 3 and later are in
``_gemini_calls``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rolecall.sim._common import (
    Answer,
    Ctx,
    Dialect,
    Route,
    array_error,
    bad_gateway,
    count_words,
    json_response,
    key_suffix,
    seconds_text,
    texts_of,
)
from rolecall.sim._gemini_calls import call_parts, signs_calls, unsigned_call
from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim.faults import Fault

__all__ = ["CONTEXT_WINDOW", "GoogleDialect", "gemini_error", "verb_route"]

CONTEXT_WINDOW = 1048576
_VERSIONS = ("/v1beta/models", "/v1/models")
_RPC = "type.googleapis.com/google.rpc."
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
# A prepaid billing account at zero: every key on it stops until it is topped up.
_PREPAY_DEPLETED = (
    "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects "
    "to manage your project and billing. Learn more at "
    "https://ai.google.dev/gemini-api/docs/billing#prepay."
)
_EXHAUSTED = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
]


def gemini_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> Rendered:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return json_response(code, {"error": error}, content_type="application/json; charset=UTF-8")


def _quota_failure(model: str, quota_id: str, value: str) -> dict[str, Any]:
    return {
        "@type": _RPC + "QuotaFailure",
        "violations": [
            {
                "quotaMetric": _QUOTA_METRIC,
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": value,
            }
        ],
    }


_HELP: dict[str, Any] = {
    "@type": _RPC + "Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def _retry_info(seconds: float) -> dict[str, Any]:
    return {"@type": _RPC + "RetryInfo", "retryDelay": seconds_text(seconds) + "s"}


class GoogleDialect(Dialect):
    name = "google"
    sse_sep = b"\r\n\r\n"

    def base_url(self, root: str) -> str:
        return root

    def route(self, method: str, path: str) -> Route | None:
        prefix = next((p for p in _VERSIONS if path == p or path.startswith(p + "/")), None)
        if prefix is None:
            return None
        rest = path[len(prefix) + 1 :]
        if method == "GET":
            if not rest:
                return Route("models")
            return Route("model", model=rest) if ":" not in rest else None
        model, _, verb = rest.rpartition(":")
        return verb_route(method, model, verb)

    def api_key(self, request: HttpRequest) -> str | None:
        return request.headers.get("x-goog-api-key", "").strip() or request.query.get("key") or None

    def check_body(self, body: dict[str, Any], route: Route) -> Rendered | None:
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                "* GenerateContentRequest.contents: contents is not specified\n",
            )
        for index, content in enumerate(body["contents"]):
            parts = content.get("parts") if isinstance(content, dict) else None
            for number, part in enumerate(parts if isinstance(parts, list) else ()):
                problem = _part_problem(part) if isinstance(part, dict) else "must be an object"
                if problem:
                    where = f"contents[{index}].parts[{number}]"
                    return gemini_error(
                        400, "INVALID_ARGUMENT", f"* GenerateContentRequest.{where}{problem}\n"
                    )
        problem = _config_problem(body) or _thinking_problem(body, route.model or "")
        if problem:
            return gemini_error(400, "INVALID_ARGUMENT", problem)
        if signs_calls(route.model or ""):
            return unsigned_call(body["contents"])
        return None

    def model_of(self, body: dict[str, Any], route: Route) -> str:
        return route.model or ""

    def is_stream(self, body: dict[str, Any], route: Route) -> bool:
        return route.stream

    def prompt_texts(self, body: dict[str, Any]) -> list[str]:
        system = body.get("systemInstruction", body.get("system_instruction"))
        texts = texts_of(system.get("parts")) if isinstance(system, dict) else []
        contents = body.get("contents")
        if isinstance(contents, list):
            texts += [t for c in contents if isinstance(c, dict) for t in texts_of(c.get("parts"))]
        return texts

    def schema_of(self, body: dict[str, Any]) -> dict[str, Any] | None:
        config = body.get("generationConfig", body.get("generation_config"))
        if not isinstance(config, dict):
            return None
        for name in (
            "responseJsonSchema",
            "response_json_schema",
            "responseSchema",
            "response_schema",
        ):
            if isinstance(config.get(name), dict):
                return dict(config[name])
        mime = config.get("responseMimeType", config.get("response_mime_type"))
        return {} if mime == "application/json" else None

    # Errors ------------------------------------------------------------------------------
    def error(self, fault: Fault, ctx: Ctx) -> Rendered:
        kind, model = fault.kind, ctx.model
        echo = key_suffix(fault, ctx.key)
        if kind == "auth":
            return self._invalid_key(echo)
        if kind == "permission":
            if fault.echo_key and ctx.key:
                message = f"Permission denied: Consumer 'api_key:{ctx.key}' has been suspended."
            else:
                message = "The caller does not have permission"
            return gemini_error(403, "PERMISSION_DENIED", message)
        if kind == "region":
            return gemini_error(
                400, "FAILED_PRECONDITION", "User location is not supported for the API use." + echo
            )
        if kind == "not_found":
            return self.model_not_found(model, echo)
        if kind == "quota" and fault.variant == "prepay":
            return gemini_error(429, "RESOURCE_EXHAUSTED", _PREPAY_DEPLETED + echo)
        if kind in ("quota", "rate_limit"):
            per_day = kind == "quota"
            quota_id = (
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
                if per_day
                else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
            )
            details = [_quota_failure(model, quota_id, "250" if per_day else "10"), _HELP]
            wait = (
                fault.retry_after if fault.retry_after is not None else (None if per_day else 1.0)
            )
            message = _EXHAUSTED
            if wait is not None:
                details.append(_retry_info(wait))
                message += f" Please retry in {seconds_text(wait)}s."
            return gemini_error(429, "RESOURCE_EXHAUSTED", message + echo, details)
        if kind == "overloaded":
            extra = [_retry_info(fault.retry_after)] if fault.retry_after is not None else None
            return gemini_error(
                503, "UNAVAILABLE", "The model is overloaded. Please try again later." + echo, extra
            )
        if kind == "server":
            status = fault.status or 500
            if status == 502:
                return bad_gateway()
            if status == 503:
                return gemini_error(
                    503, "UNAVAILABLE", "The service is currently unavailable." + echo
                )
            if status == 504:
                return gemini_error(
                    504,
                    "DEADLINE_EXCEEDED",
                    "Deadline expired before operation could complete." + echo,
                )
            return gemini_error(
                status,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting" + echo,
            )
        if kind == "context_length":
            tokens = CONTEXT_WINDOW + max(ctx.input_tokens, 1)
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
                f"({CONTEXT_WINDOW}).{echo}",
            )
        if kind == "openai_array_error":
            return array_error(fault, ctx)
        message = (
            "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': "
            "Cannot find field."
        )
        violation = {"field": "generation_config", "description": message}
        details = [{"@type": _RPC + "BadRequest", "fieldViolations": [violation]}]
        return gemini_error(fault.status or 400, "INVALID_ARGUMENT", message + echo, details)

    def _invalid_key(self, echo: str = "") -> Rendered:
        message = "API key not valid. Please pass a valid API key."
        details: list[dict[str, Any]] = [
            {
                "@type": _RPC + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": _RPC + "LocalizedMessage", "locale": "en-US", "message": message},
        ]
        return gemini_error(400, "INVALID_ARGUMENT", message + echo, details)

    def missing_key(self) -> Rendered:
        return gemini_error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )

    def invalid_key(self, key: str) -> Rendered:
        return self._invalid_key()

    def invalid_json(self) -> Rendered:
        return gemini_error(
            400,
            "INVALID_ARGUMENT",
            'Invalid JSON payload received. Unexpected token.\n{"contents": [\n ^',
        )

    def unknown_route(self, method: str, path: str) -> Rendered:
        return gemini_error(404, "NOT_FOUND", f"Method not found: {method} {path}")

    def model_not_found(self, model: str, echo: str = "") -> Rendered:
        return gemini_error(
            404,
            "NOT_FOUND",
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            f"supported methods.{echo}",
        )

    # Answers -----------------------------------------------------------------------------
    def _usage(self, answer: Answer, output_tokens: int, thoughts: str = "") -> dict[str, Any]:
        input_tokens = answer.input_tokens
        usage: dict[str, Any] = {"promptTokenCount": input_tokens}
        if output_tokens:  # Gemini leaves the field out when it is zero
            usage["candidatesTokenCount"] = output_tokens
        thought_tokens = count_words([thoughts])
        if thought_tokens:
            usage["thoughtsTokenCount"] = thought_tokens
        if answer.cached_input_tokens:
            usage["cachedContentTokenCount"] = answer.cached_input_tokens
        usage["totalTokenCount"] = input_tokens + output_tokens + thought_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": input_tokens}]
        return usage

    def _body(
        self,
        ctx: Ctx,
        candidate: dict[str, Any] | None,
        output_tokens: int,
        answer: Answer,
        thoughts: str = "",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if candidate is not None:
            body["candidates"] = [{**candidate, "index": 0}]
        else:
            body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS}
        body["usageMetadata"] = self._usage(answer, output_tokens, thoughts)
        body["modelVersion"] = ctx.model
        body["responseId"] = ctx.request_id
        return body

    def _final_candidate(
        self, answer: Answer, parts: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        if answer.filtered:
            if answer.variant == "prompt":
                return None
            reason = "PROHIBITED_CONTENT" if answer.variant == "prohibited" else "SAFETY"
            return {"finishReason": reason, "safetyRatings": _SAFETY_RATINGS}
        content: dict[str, Any] = {"role": "model"}
        if answer.variant != "no_parts":
            content["parts"] = parts
        # Gemini says STOP when it calls functions too.
        return {"content": content, "finishReason": "MAX_TOKENS" if answer.truncated else "STOP"}

    def answer(self, ctx: Ctx, answer: Answer) -> dict[str, Any]:
        thoughts = _thoughts(ctx, answer)
        parts = [{"text": thoughts, "thought": True}] if thoughts else []
        if answer.text or not answer.tool_calls:
            parts.append({"text": answer.text})
        parts += call_parts(answer, signs_calls(ctx.model))
        candidate = self._final_candidate(answer, parts)
        return self._body(ctx, candidate, answer.output_tokens, answer, thoughts)

    def stream_head(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        thoughts = "" if answer.filtered else _thoughts(ctx, answer)
        if not thoughts:
            return []
        candidate = {"content": {"parts": [{"text": thoughts, "thought": True}], "role": "model"}}
        return [self.sse(self._body(ctx, candidate, 0, answer, thoughts))]

    def stream_piece(self, ctx: Ctx, answer: Answer, piece: str, sent: int) -> bytes:
        candidate = {"content": {"parts": [{"text": piece}], "role": "model"}}
        return self.sse(self._body(ctx, candidate, sent + 1, answer, _thoughts(ctx, answer)))

    def stream_tail(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        thoughts = _thoughts(ctx, answer)
        events = [  # whole functionCall parts, one per chunk
            self.sse(
                self._body(
                    ctx, {"content": {"parts": [part], "role": "model"}}, 0, answer, thoughts
                )
            )
            for part in ([] if answer.filtered else call_parts(answer, signs_calls(ctx.model)))
        ]
        candidate = self._final_candidate(answer, [{"text": ""}])
        events.append(self.sse(self._body(ctx, candidate, answer.output_tokens, answer, thoughts)))
        return events

    def malformed_event(self, ctx: Ctx) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": \r\n\r\n'

    def malformed_body(self, ctx: Ctx) -> bytes:
        return b'{"candidates": [{"content": {"parts": [{"te'

    # Model endpoints ---------------------------------------------------------------------
    def models_list(self, models: Sequence[str]) -> dict[str, Any]:
        return {"models": [self.model_info(m) for m in models]}

    def count_tokens(self, ctx: Ctx) -> dict[str, Any]:
        tokens = ctx.input_tokens
        return {
            "totalTokens": tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
        }

    def model_info(self, model: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model,
            "description": "A simulated model.",
            "inputTokenLimit": CONTEXT_WINDOW,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
            "temperature": 1.0,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2.0,
        }


def verb_route(method: str, model: str, verb: str, scope: str = "") -> Route | None:
    """``POST {model}:generateContent``, ``:streamGenerateContent`` or ``:countTokens``."""
    if method != "POST" or not model:
        return None
    if verb in ("generateContent", "streamGenerateContent"):
        return Route("chat", model=model, stream=verb == "streamGenerateContent", scope=scope)
    if verb == "countTokens":
        return Route("count", model=model, scope=scope)
    return None


def _thoughts(ctx: Ctx, answer: Answer) -> str:
    """Thought text, sent only when ``thinkingConfig.includeThoughts`` asks for it."""
    config = ctx.body.get("generationConfig", ctx.body.get("generation_config"))
    thinking = (
        config.get("thinkingConfig", config.get("thinking_config"))
        if isinstance(config, dict)
        else None
    )
    if not isinstance(thinking, dict):
        return ""
    wanted = thinking.get("includeThoughts", thinking.get("include_thoughts"))
    return (answer.reasoning or "Thinking it over.") if wanted is True else ""


def _field(part: dict[str, Any], camel: str, snake: str) -> Any:
    return part.get(camel, part.get(snake))


# The image types Gemini reads (other inline types are documents, audio or video).
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
_STOP_LIMIT = 5
_CALLING_MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})


def _config_problem(body: dict[str, Any]) -> str:
    """What Gemini would reject in generationConfig or toolConfig."""
    config = body.get("generationConfig", body.get("generation_config"))
    stop = _field(config, "stopSequences", "stop_sequences") if isinstance(config, dict) else None
    if isinstance(stop, list) and len(stop) > _STOP_LIMIT:
        return (
            "* GenerateContentRequest.generation_config.stop_sequences: "
            f"at most {_STOP_LIMIT} stop sequences are allowed, got {len(stop)}\n"
        )
    tool_config = body.get("toolConfig", body.get("tool_config"))
    calling = (
        _field(tool_config, "functionCallingConfig", "function_calling_config")
        if isinstance(tool_config, dict)
        else None
    )
    mode = calling.get("mode") if isinstance(calling, dict) else None
    if mode is not None and mode not in _CALLING_MODES:
        return (
            "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/"
            f'google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "{mode}"'
        )
    return ""


# Gemini models that cannot turn thinking off.
_ALWAYS_THINKING = re.compile(r"^(?:models/)?gemini-(?:2\.5|3\.1)-pro(?![\w.])")


def _thinking_problem(body: dict[str, Any], model: str) -> str:
    """What Gemini says of a thinking budget of 0 for a model that always thinks."""
    config = body.get("generationConfig", body.get("generation_config"))
    thinking = (
        _field(config, "thinkingConfig", "thinking_config") if isinstance(config, dict) else None
    )
    budget = (
        _field(thinking, "thinkingBudget", "thinking_budget")
        if isinstance(thinking, dict)
        else None
    )
    if budget == 0 and _ALWAYS_THINKING.match(model):
        return "Budget 0 is invalid. This model only works in thinking mode."
    return ""


def _part_problem(part: dict[str, Any]) -> str:
    """What Gemini would reject in one part (it takes camelCase and proto snake_case)."""
    response = _field(part, "functionResponse", "function_response")
    if response is not None:
        if not isinstance(response, dict) or not response.get("name"):
            return ".function_response.name: Name cannot be empty."
        if not isinstance(response.get("response"), dict):
            return ".function_response.response: must be an object (google.protobuf.Struct)."
    call = _field(part, "functionCall", "function_call")
    if call is not None:
        if not isinstance(call, dict) or not call.get("name"):
            return ".function_call.name: Name cannot be empty."
        if not isinstance(call.get("args", {}), dict):
            return ".function_call.args: must be an object (google.protobuf.Struct)."
    inline = _field(part, "inlineData", "inline_data")
    if inline is not None and not (
        isinstance(inline, dict)
        and _field(inline, "mimeType", "mime_type")
        and isinstance(inline.get("data"), str)
    ):
        return ".inline_data: mime_type and data are required."
    mime = str(_field(inline, "mimeType", "mime_type") or "") if inline is not None else ""
    if mime.startswith("image/") and mime not in _IMAGE_TYPES:
        return f".inline_data.mime_type: Unsupported MIME type: {mime}"
    return ""
