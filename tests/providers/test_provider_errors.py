"""Error classification per vendor: one row per PROVIDERS.md condition, real vendor shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from rolecall._secrets import Secret
from rolecall.errors import ErrorKind
from rolecall.providers.anthropic import anthropic_reset_seconds, classify_anthropic_error
from rolecall.providers.google import classify_gemini_error
from rolecall.providers.openai import classify_openai_error

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NOW_TS = NOW.timestamp()
KEY = "sk-classify-secret-0123456789"
Secret(KEY)  # registers the value with redact()


def _iso(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def openai_err(message: str, type_: str | None, code: str | None, param: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def anthropic_err(type_: str, message: str, error_code: str | None = None) -> str:
    error: dict[str, Any] = {"type": type_, "message": message}
    if error_code:
        error["details"] = {"error_code": error_code}
    return json.dumps({"type": "error", "error": error, "request_id": "req_011CZ"})


def google_err(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def quota_failure(quota_id: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/"
                "generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"},
                "quotaValue": "50",
            }
        ],
    }


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


PROXY_HTML = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

# (id, status, body, headers, kind, retry_after)
OPENAI_ROWS: list[tuple[str, int | None, object, dict[str, str], ErrorKind, float | None]] = [
    (
        "401-bad-key",
        401,
        openai_err(
            f"Incorrect API key provided: {KEY}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        {},
        ErrorKind.AUTH,
        None,
    ),
    (
        "403-region",
        403,
        openai_err(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        {},
        ErrorKind.PERMISSION,
        None,
    ),
    (
        "404-model",
        404,
        openai_err(
            "The model `gpt-9` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        {},
        ErrorKind.NOT_FOUND,
        None,
    ),
    (
        "429-insufficient-quota",
        429,
        openai_err(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        {"retry-after": "20"},
        ErrorKind.QUOTA,
        None,
    ),
    (
        "429-retry-after-seconds",
        429,
        openai_err(
            "Rate limit reached for gpt-4.1 on requests per min (RPM): Limit 500.",
            "requests",
            "rate_limit_exceeded",
        ),
        {"retry-after": "20", "x-ratelimit-reset-requests": "20s"},
        ErrorKind.RATE_LIMIT,
        20.0,
    ),
    (
        "429-retry-after-ms-wins",
        429,
        openai_err("Rate limit reached", "tokens", "rate_limit_exceeded"),
        {"retry-after-ms": "1500", "retry-after": "2"},
        ErrorKind.RATE_LIMIT,
        1.5,
    ),
    (
        "429-retry-after-http-date",
        429,
        openai_err("Rate limit reached", "requests", "rate_limit_exceeded"),
        {"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)},
        ErrorKind.RATE_LIMIT,
        30.0,
    ),
    (
        "429-no-hint",
        429,
        openai_err("Rate limit reached", "requests", "rate_limit_exceeded"),
        {},
        ErrorKind.RATE_LIMIT,
        None,
    ),
    (
        "503-overloaded",
        503,
        openai_err(
            "The engine is currently overloaded, please try again later", "server_error", None
        ),
        {},
        ErrorKind.OVERLOADED,
        None,
    ),
    (
        "500-server",
        500,
        openai_err("The server had an error while processing your request.", "server_error", None),
        {},
        ErrorKind.SERVER,
        None,
    ),
    ("502-proxy-html", 502, PROXY_HTML, {}, ErrorKind.SERVER, None),
    ("504-gateway", 504, "", {}, ErrorKind.SERVER, None),
    ("408-timeout", 408, "", {}, ErrorKind.TIMEOUT, None),
    (
        "400-context-length",
        400,
        openai_err(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130512 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        {},
        ErrorKind.CONTEXT_LENGTH,
        None,
    ),
    (
        "400-llama-cpp-context",
        400,
        json.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5120,
                    "n_ctx": 4096,
                }
            }
        ),
        {},
        ErrorKind.CONTEXT_LENGTH,
        None,
    ),
    (
        "400-vllm-bare-object-context",
        400,
        json.dumps(
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5000 tokens (4000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        ),
        {},
        ErrorKind.CONTEXT_LENGTH,
        None,
    ),
    (
        "400-bad-request",
        400,
        openai_err(
            "Invalid value for 'temperature': expected a number between 0 and 2.",
            "invalid_request_error",
            "invalid_value",
            "temperature",
        ),
        {},
        ErrorKind.BAD_REQUEST,
        None,
    ),
    ("422-unprocessable", 422, '{"detail": "invalid body"}', {}, ErrorKind.BAD_REQUEST, None),
    (
        "402-openrouter-credits",
        402,
        json.dumps({"error": {"code": 402, "message": "Insufficient credits."}}),
        {},
        ErrorKind.QUOTA,
        None,
    ),
    (
        "gemini-compat-array-bad-key",
        400,
        json.dumps(
            [
                google_err(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    error_info("API_KEY_INVALID"),
                )
            ]
        ),
        {},
        ErrorKind.AUTH,
        None,
    ),
    (
        "gemini-compat-array-rate-limit",
        429,
        json.dumps(
            [
                google_err(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "You exceeded your current quota.",
                    quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                    retry_info("7s"),
                )
            ]
        ),
        {},
        ErrorKind.RATE_LIMIT,
        7.0,
    ),
    (
        "gemini-compat-array-daily-quota",
        429,
        json.dumps(
            [
                google_err(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "You exceeded your current quota.",
                    quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                    retry_info("41s"),
                )
            ]
        ),
        {},
        ErrorKind.QUOTA,
        None,
    ),
    (
        "in-stream-server-error",
        None,
        {"error": {"message": "The server had an error.", "type": "server_error"}},
        {},
        ErrorKind.SERVER,
        None,
    ),
    (
        "in-stream-llama-cpp-context",
        None,
        {"error": {"code": 400, "message": "ctx", "type": "exceed_context_size_error"}},
        {},
        ErrorKind.CONTEXT_LENGTH,
        None,
    ),
]

ANTHROPIC_ROWS: list[tuple[str, int | None, object, dict[str, str], ErrorKind, float | None]] = [
    (
        "401-bad-key",
        401,
        anthropic_err("authentication_error", "invalid x-api-key"),
        {},
        ErrorKind.AUTH,
        None,
    ),
    (
        "403-permission",
        403,
        anthropic_err("permission_error", "Your API key does not have permission to use this."),
        {},
        ErrorKind.PERMISSION,
        None,
    ),
    (
        "404-model",
        404,
        anthropic_err("not_found_error", "model: claude-9-opus"),
        {},
        ErrorKind.NOT_FOUND,
        None,
    ),
    (
        "400-credit-balance",
        400,
        anthropic_err(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans "
            "& Billing to upgrade or purchase credits.",
        ),
        {},
        ErrorKind.QUOTA,
        None,
    ),
    (
        "429-enforced-spend-limit",
        429,
        anthropic_err(
            "rate_limit_error",
            "You have reached your organization's usage threshold.",
            "enforced_spend_limit_reached",
        ),
        {"retry-after": "3600"},
        ErrorKind.QUOTA,
        None,
    ),
    (
        "429-retry-after",
        429,
        anthropic_err(
            "rate_limit_error",
            "This request would exceed your organization's rate limit of 50 requests per minute.",
        ),
        {"retry-after": "12", "anthropic-ratelimit-requests-reset": _iso(40)},
        ErrorKind.RATE_LIMIT,
        12.0,
    ),
    (
        "429-reset-headers-exhausted-limit",
        429,
        anthropic_err("rate_limit_error", "Number of request tokens has exceeded your limit."),
        {
            "anthropic-ratelimit-requests-remaining": "12",
            "anthropic-ratelimit-requests-reset": _iso(5),
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": _iso(30),
        },
        ErrorKind.RATE_LIMIT,
        30.0,
    ),
    (
        "429-reset-headers-soonest",
        429,
        anthropic_err("rate_limit_error", "Rate limited"),
        {
            "anthropic-ratelimit-requests-reset": _iso(8),
            "anthropic-ratelimit-tokens-reset": _iso(3),
        },
        ErrorKind.RATE_LIMIT,
        3.0,
    ),
    (
        "529-overloaded",
        529,
        anthropic_err("overloaded_error", "Overloaded"),
        {},
        ErrorKind.OVERLOADED,
        None,
    ),
    (
        "500-api-error",
        500,
        anthropic_err("api_error", "Internal server error"),
        {},
        ErrorKind.SERVER,
        None,
    ),
    ("502-proxy-html", 502, PROXY_HTML, {}, ErrorKind.SERVER, None),
    (
        "504-timeout-error",
        504,
        anthropic_err("timeout_error", "Request timed out"),
        {},
        ErrorKind.SERVER,
        None,
    ),
    ("408-timeout", 408, "", {}, ErrorKind.TIMEOUT, None),
    (
        "400-prompt-too-long",
        400,
        anthropic_err(
            "invalid_request_error", "prompt is too long: 215734 tokens > 200000 maximum"
        ),
        {},
        ErrorKind.CONTEXT_LENGTH,
        None,
    ),
    (
        "400-context-limit",
        400,
        anthropic_err(
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, "
            "decrease input length or `max_tokens` and try again",
        ),
        {},
        ErrorKind.CONTEXT_LENGTH,
        None,
    ),
    (
        "400-bad-request",
        400,
        anthropic_err("invalid_request_error", "messages: roles must alternate"),
        {},
        ErrorKind.BAD_REQUEST,
        None,
    ),
    (
        "413-too-large",
        413,
        anthropic_err("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        {},
        ErrorKind.BAD_REQUEST,
        None,
    ),
    (
        "stream-event-overloaded",
        None,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {},
        ErrorKind.OVERLOADED,
        None,
    ),
    (
        "stream-event-api-error",
        None,
        {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}},
        {},
        ErrorKind.SERVER,
        None,
    ),
    (
        "stream-event-rate-limit",
        None,
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}},
        {},
        ErrorKind.RATE_LIMIT,
        None,
    ),
]

GEMINI_ROWS: list[tuple[str, int | None, object, dict[str, str], ErrorKind, float | None]] = [
    (
        "400-api-key-invalid",
        400,
        google_err(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            error_info("API_KEY_INVALID"),
        ),
        {},
        ErrorKind.AUTH,
        None,
    ),
    (
        "401-unauthenticated",
        401,
        google_err(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
        {},
        ErrorKind.AUTH,
        None,
    ),
    (
        "403-permission-denied",
        403,
        google_err(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
        {},
        ErrorKind.PERMISSION,
        None,
    ),
    (
        "400-failed-precondition-region",
        400,
        google_err(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        {},
        ErrorKind.PERMISSION,
        None,
    ),
    (
        "404-model",
        404,
        google_err(
            404,
            "NOT_FOUND",
            "models/gemini-9 is not found for API version v1beta, or is not supported for "
            "generateContent.",
        ),
        {},
        ErrorKind.NOT_FOUND,
        None,
    ),
    (
        "429-per-day-quota",
        429,
        google_err(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
            retry_info("52s"),
        ),
        {},
        ErrorKind.QUOTA,
        None,
    ),
    (
        "429-per-minute-retry-delay",
        429,
        google_err(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
            retry_info("7s"),
        ),
        {},
        ErrorKind.RATE_LIMIT,
        7.0,
    ),
    (
        "429-fractional-retry-delay",
        429,
        google_err(429, "RESOURCE_EXHAUSTED", "Resource exhausted.", retry_info("1.5s")),
        {},
        ErrorKind.RATE_LIMIT,
        1.5,
    ),
    (
        "429-header-fallback",
        429,
        google_err(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted."),
        {"retry-after": "4"},
        ErrorKind.RATE_LIMIT,
        4.0,
    ),
    (
        "503-unavailable",
        503,
        google_err(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        {},
        ErrorKind.OVERLOADED,
        None,
    ),
    (
        "500-internal",
        500,
        google_err(500, "INTERNAL", "An internal error has occurred."),
        {},
        ErrorKind.SERVER,
        None,
    ),
    ("502-proxy-html", 502, PROXY_HTML, {}, ErrorKind.SERVER, None),
    (
        "504-deadline",
        504,
        google_err(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
        {},
        ErrorKind.SERVER,
        None,
    ),
    ("408-timeout", 408, "", {}, ErrorKind.TIMEOUT, None),
    (
        "400-input-token-count",
        400,
        google_err(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1250000) exceeds the maximum number of tokens allowed "
            "(1048576).",
        ),
        {},
        ErrorKind.CONTEXT_LENGTH,
        None,
    ),
    (
        "400-bad-request",
        400,
        google_err(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config'.",
        ),
        {},
        ErrorKind.BAD_REQUEST,
        None,
    ),
    (
        "in-stream-unavailable",
        None,
        google_err(503, "UNAVAILABLE", "The model is overloaded."),
        {},
        ErrorKind.OVERLOADED,
        None,
    ),
]


def _check(error: Any, status: int | None, kind: ErrorKind, retry_after: float | None) -> None:
    assert error.kind is kind, error
    assert error.provider == "p1"
    if status is not None:
        assert error.status == status
    if retry_after is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(retry_after, abs=0.01)
    assert error.retryable is kind.retryable
    assert KEY not in str(error) and KEY not in repr(error)
    assert "\n" not in error.message and len(error.message) < 400


def _gemini(status: int | None, body: object, headers: dict[str, str], **kw: Any) -> Any:
    # Gemini errors arrive as text, often a JSON array: classify the raw text.
    raw = json.dumps(body) if isinstance(body, dict) else body
    return classify_gemini_error(status, raw, headers, **kw)


_CLASSIFIERS = {
    "openai": (classify_openai_error, OPENAI_ROWS),
    "anthropic": (classify_anthropic_error, ANTHROPIC_ROWS),
    "gemini": (_gemini, GEMINI_ROWS),
}
_ALL_ROWS = [(vendor, *row) for vendor, (_, rows) in _CLASSIFIERS.items() for row in rows]


@pytest.mark.parametrize(
    ("vendor", "name", "status", "body", "headers", "kind", "wait"),
    _ALL_ROWS,
    ids=[f"{row[0]}-{row[1]}" for row in _ALL_ROWS],
)
def test_classification(
    vendor: str,
    name: str,
    status: int | None,
    body: object,
    headers: dict[str, str],
    kind: ErrorKind,
    wait: float | None,
) -> None:
    classify = _CLASSIFIERS[vendor][0]
    error = classify(status, body, headers, provider="p1", now=NOW_TS)
    _check(error, status, kind, wait)


def test_vendor_message_is_kept_and_status_named() -> None:
    error = classify_anthropic_error(
        529, anthropic_err("overloaded_error", "Overloaded"), {}, provider="claude"
    )
    assert str(error) == "HTTP 529: Overloaded"


@pytest.mark.parametrize(
    "classify", [classify_openai_error, classify_anthropic_error, classify_gemini_error]
)
def test_echoed_key_is_redacted_even_when_the_message_is_cut(classify: Any) -> None:
    # The key straddles the clipping point: redaction must happen before cutting.
    message = "x" * 290 + f" key={KEY} was rejected"
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    error = classify(401, body, {}, provider="p1")
    assert error.kind is ErrorKind.AUTH
    assert KEY[:10] not in str(error) and KEY[:10] not in repr(error)


def test_anthropic_reset_ignores_unparsable_and_naive_times() -> None:
    headers = {
        "anthropic-ratelimit-requests-reset": "soon",
        "anthropic-ratelimit-tokens-reset": "2026-03-01T12:00:10",  # no offset: ignored
        "anthropic-ratelimit-output-tokens-reset": _iso(9),
    }
    assert anthropic_reset_seconds(headers, NOW_TS) == pytest.approx(9.0)
    assert anthropic_reset_seconds({}, NOW_TS) is None
