"""Pure helpers for turning a vendor's failure into a :class:`ProviderError`.

- :func:`error_object`: the error from a body (JSON object, or Gemini's OpenAI-compatible
  ``[{"error": ...}]`` array), :func:`is_error_report` (a 2xx body that is one),
  :func:`vendor_message`, :func:`clip` (redacted, short).
- :func:`retry_after_seconds` (``retry-after-ms``, ``retry-after`` seconds or HTTP date),
  :func:`rfc3339_seconds`, :func:`google_duration` (``"7s"``).
- :func:`kind_for_status`, :func:`google_rpc_kind` (google.rpc bodies, used by Gemini and
  by OpenAI-compatible endpoints that proxy it), :func:`transport_error`.

The vendor classifiers (``classify_*_error`` in each adapter module) combine these.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from rolecall._descriptors import out_of_descriptors, too_many_open_files
from rolecall._secrets import redact
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._wire_message import (
    WireProxyRefused,
    WireRequestError,
    WireTLSError,
    WireTooLarge,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "Classifier",
    "clip",
    "did_you_mean",
    "error_head",
    "error_object",
    "google_duration",
    "google_rpc_kind",
    "is_error_report",
    "is_gemini_context_overflow",
    "kind_for_status",
    "parse_json_text",
    "retry_after_seconds",
    "rfc3339_seconds",
    "transport_error",
    "vendor_message",
]

MAX_MESSAGE_CHARS = 300


class Classifier(Protocol):
    """A vendor's pure error classifier: status (None for an in-stream error), body, headers."""

    def __call__(
        self,
        status: int | None,
        body: object,
        headers: Mapping[str, str] | None = None,
        *,
        provider: str = "",
        now: float | None = None,
    ) -> ProviderError: ...


# ------------------------------------------------------------------ error bodies


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Redacted, single-line, at most ``limit`` characters (redacted before cutting)."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _decode(body: object) -> object:
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            return body
    return body


def error_object(body: object) -> dict[str, Any]:
    """The vendor's error object from a body (bytes, text or parsed JSON).

    Accepts ``{"error": {...}}``, ``{"error": "text"}``, ``[{"error": {...}}]`` (Gemini's
    OpenAI-compatible endpoint), a bare error object, or anything else (``{}``).
    """
    value = _decode(body)
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, dict)), {})
    if not isinstance(value, dict):
        return {}
    inner = value.get("error")
    if isinstance(inner, dict):
        return inner
    if isinstance(inner, str):
        return {"message": inner}
    return value


def is_error_report(body: object) -> bool:
    """Whether a 2xx body (bytes, text or parsed JSON) reports an error rather than answering:
    it has an ``error`` member (also inside Gemini's ``[{"error": ...}]``), or is a bare
    error object with a ``message`` text (Bedrock's). A whole answer is not one."""
    value = _decode(body)
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, dict)), {})
    if not isinstance(value, dict):
        return False
    if value.get("error") is not None:
        return True
    return isinstance(value.get("message"), str) or isinstance(value.get("Message"), str)


def vendor_message(err: Mapping[str, Any], body: object) -> str:
    """The vendor's human message, else the raw body; redacted and clipped."""
    message = err.get("message")
    if not isinstance(message, str) or not message.strip():
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
        message = raw if isinstance(raw, str) else (json.dumps(raw) if raw else "")
    return clip(message) or "no details"


def error_head(status: int | None, body: object) -> tuple[dict[str, Any], int | None, str, str]:
    """The error object, the status, the vendor message and the error text to raise.

    Inside a stream (``status`` None) the status comes from ``error.code`` when that is an
    HTTP status, as llama.cpp and Gemini send it.
    """
    err = error_object(body)
    code = err.get("code")
    if status is None and isinstance(code, int) and 400 <= code < 600:
        status = code
    message = vendor_message(err, body)
    text = f"HTTP {status}: {message}" if status is not None else message
    return err, status, message, text


def did_you_mean(name: str, candidates: list[str]) -> str:
    """`` (did you mean a, b?)`` for close matches, else empty."""
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def parse_json_text(text: str) -> bool:
    """Whether ``text`` is one JSON document."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


# ------------------------------------------------------------------ retry timing


def _seconds_until(moment: datetime, now: float) -> float:
    return max(0.0, moment.timestamp() - now)


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _seconds_until(moment, time.time() if now is None else now)


def rfc3339_seconds(value: str, now: float) -> float | None:
    """Seconds until an RFC 3339 instant (``2026-01-01T00:00:30Z``), or None if unparsable."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return _seconds_until(moment, now)


def google_duration(value: object) -> float | None:
    """Seconds from a protobuf Duration in JSON (``"7s"``, ``"1.5s"``)."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        return max(0.0, float(value[:-1]))
    except ValueError:
        return None


# ------------------------------------------------------------------ classification


def kind_for_status(status: int | None) -> ErrorKind:
    """The kind an HTTP status means when the body says nothing more specific."""
    if status is None:
        return ErrorKind.SERVER
    if status == 401:
        return ErrorKind.AUTH
    if status == 402:  # payment required (OpenRouter and others: credits exhausted)
        return ErrorKind.QUOTA
    if status == 403:
        return ErrorKind.PERMISSION
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 409:  # a transient conflict; the vendor SDKs retry it
        return ErrorKind.SERVER
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status in (503, 529):
        return ErrorKind.OVERLOADED
    if status >= 500:
        return ErrorKind.SERVER
    if status >= 400:
        return ErrorKind.BAD_REQUEST
    return ErrorKind.BAD_RESPONSE


_RPC_KINDS = {
    "UNAUTHENTICATED": ErrorKind.AUTH,
    "PERMISSION_DENIED": ErrorKind.PERMISSION,
    # Billing not enabled, region not supported: this key cannot use the API at all.
    "FAILED_PRECONDITION": ErrorKind.PERMISSION,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "UNAVAILABLE": ErrorKind.OVERLOADED,
    "INTERNAL": ErrorKind.SERVER,
    "UNKNOWN": ErrorKind.SERVER,
    "DATA_LOSS": ErrorKind.SERVER,
    "DEADLINE_EXCEEDED": ErrorKind.SERVER,
}


def _details(err: Mapping[str, Any]) -> list[dict[str, Any]]:
    details = err.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict)]


def _detail_type(detail: Mapping[str, Any]) -> str:
    value = detail.get("@type")
    return value.rsplit(".", 1)[-1] if isinstance(value, str) else ""


def is_gemini_context_overflow(message: str) -> bool:
    """Gemini API: "The input token count (N) exceeds the maximum..."; Vertex AI: "...the
    input token count is N but model only supports up to M"."""
    low = message.lower()
    return "input token count" in low and ("exceed" in low or "only supports up to" in low)


def google_rpc_kind(
    err: Mapping[str, Any], headers: Mapping[str, str] | None = None, now: float | None = None
) -> tuple[ErrorKind, float | None] | None:
    """Kind (and wait) for a google.rpc error object, or None if ``err`` is not one."""
    rpc_status = err.get("status")
    if not isinstance(rpc_status, str) or not rpc_status.isupper():
        return None
    details = _details(err)
    message = str(err.get("message") or "")
    if rpc_status == "INVALID_ARGUMENT":
        reasons = {d.get("reason") for d in details if _detail_type(d) == "ErrorInfo"}
        if "API_KEY_INVALID" in reasons:
            return ErrorKind.AUTH, None
        if is_gemini_context_overflow(message):
            return ErrorKind.CONTEXT_LENGTH, None
        return ErrorKind.BAD_REQUEST, None
    if rpc_status == "RESOURCE_EXHAUSTED":
        quota_ids = [
            str(violation.get("quotaId", ""))
            for detail in details
            if _detail_type(detail) == "QuotaFailure"
            for violation in detail.get("violations") or []
            if isinstance(violation, dict)
        ]
        # A daily quota, or credits spent (402, or 429 "prepayment credits are depleted"):
        # nothing succeeds until a person acts, so no wait helps.
        if (
            any("PerDay" in quota_id for quota_id in quota_ids)
            or err.get("code") == 402
            or "credits are depleted" in message.lower()
        ):
            return ErrorKind.QUOTA, None
        delay = next(
            (
                google_duration(d.get("retryDelay"))
                for d in details
                if _detail_type(d) == "RetryInfo"
                and google_duration(d.get("retryDelay")) is not None
            ),
            None,
        )
        if delay is None:
            delay = retry_after_seconds(headers, now)
        return ErrorKind.RATE_LIMIT, delay
    kind = _RPC_KINDS.get(rpc_status)
    return (kind, None) if kind is not None else None


def transport_error(exc: BaseException, provider: str) -> ProviderError:
    """A transport failure as a ProviderError: timeouts -> TIMEOUT, a failed TLS handshake
    -> TLS (retrying cannot fix it), a request that cannot be sent -> BAD_REQUEST, an
    undecodable or oversized response -> BAD_RESPONSE, the rest -> NETWORK (``local`` when
    this process had no file descriptor left for it). A proxy's refusal is NETWORK too (the
    provider's key and model are not in question), retried only when the proxy's own status
    says it may pass next time (5xx)."""
    exhausted = out_of_descriptors(exc)
    if exhausted is not None:  # ours, not the provider's: retried, its health left alone
        message = f"connection failed: {too_many_open_files(exhausted)}"
        return ProviderError(message, kind=ErrorKind.NETWORK, provider=provider, local=True)
    detail = clip(str(exc)) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return ProviderError(
            f"request timed out: {detail}", kind=ErrorKind.TIMEOUT, provider=provider
        )
    if isinstance(exc, WireTLSError):
        return ProviderError(detail, kind=ErrorKind.TLS, provider=provider)
    if isinstance(exc, WireRequestError):
        return ProviderError(detail, kind=ErrorKind.BAD_REQUEST, provider=provider)
    if isinstance(exc, WireProxyRefused):  # the proxy's doing: the provider's health left alone
        return ProviderError(
            detail,
            kind=ErrorKind.NETWORK,
            provider=provider,
            retryable=exc.status >= 500,
            local=True,
        )
    if isinstance(exc, WireTooLarge):
        return ProviderError(detail, kind=ErrorKind.BAD_RESPONSE, provider=provider)
    if "content-encoding" in detail.lower():
        return ProviderError(
            f"undecodable response: {detail}", kind=ErrorKind.BAD_RESPONSE, provider=provider
        )
    return ProviderError(f"connection failed: {detail}", kind=ErrorKind.NETWORK, provider=provider)
