"""Bedrock's failures as :class:`ProviderError` kinds: HTTP errors and mid-stream exceptions.

An HTTP error names its kind in ``x-amzn-ErrorType`` (``ThrottlingException:http://...``;
botocore reads the code before the first ``:``) with ``{"message": ...}`` as the body;
inside a ConverseStream the same exceptions arrive as frames whose
``:exception-type`` is the camel-case name (``throttlingException``). Codes are
compared case-insensitively, so one table serves both.

Some codes need their message to say what they mean (botocore's service model,
``data/bedrock-runtime/2023-09-30/service-2.json``, and the messages Bedrock sends):
a ThrottlingException saying "tokens per day" is a daily quota, not a rate limit; a
ValidationException saying "model identifier is invalid" is an unknown model, and one
saying "on-demand throughput isn't supported" a model this account can only reach
through an inference profile; "too long" is a prompt over the context window. A
Bedrock API key that is not valid is refused with a 403 whose body says
"Authentication failed" and no error type. Bedrock sends no retry hint when it
throttles; a ``retry-after`` added by a gateway in front is honoured all the same. A
signature refused as "Signature expired" or "Signature not yet current" was made on a
clock more than five minutes off AWS's: :func:`is_clock_skew` tells it from a bad key.
"""

from __future__ import annotations

from collections.abc import Mapping

from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._errors import (
    error_object,
    kind_for_status,
    retry_after_seconds,
    vendor_message,
)

__all__ = [
    "classify_bedrock_error",
    "error_code",
    "is_clock_skew",
    "stream_exception_error",
]

_KINDS: dict[str, ErrorKind] = {
    # The request's signature or key (the AWS front door, before Bedrock itself).
    "unrecognizedclientexception": ErrorKind.AUTH,
    "invalidsignatureexception": ErrorKind.AUTH,
    "incompletesignatureexception": ErrorKind.AUTH,
    "missingauthenticationtokenexception": ErrorKind.AUTH,
    "expiredtokenexception": ErrorKind.AUTH,
    "invalidclienttokenid": ErrorKind.AUTH,
    "signaturedoesnotmatch": ErrorKind.AUTH,
    # Model access not granted, or IAM does not allow bedrock:InvokeModel.
    "accessdeniedexception": ErrorKind.PERMISSION,
    "resourcenotfoundexception": ErrorKind.NOT_FOUND,
    "servicequotaexceededexception": ErrorKind.QUOTA,
    "throttlingexception": ErrorKind.RATE_LIMIT,
    "toomanyrequestsexception": ErrorKind.RATE_LIMIT,
    # The model is being loaded ("the SDK retries up to 5 times"): soon, not a cooldown.
    "modelnotreadyexception": ErrorKind.OVERLOADED,
    "serviceunavailableexception": ErrorKind.OVERLOADED,
    "modeltimeoutexception": ErrorKind.TIMEOUT,
    "internalserverexception": ErrorKind.SERVER,
    "modelerrorexception": ErrorKind.SERVER,
    "modelstreamerrorexception": ErrorKind.SERVER,
    "validationexception": ErrorKind.BAD_REQUEST,
    "serializationexception": ErrorKind.BAD_REQUEST,
    "conflictexception": ErrorKind.SERVER,
}
_CONTEXT_PHRASES = (
    "too long",
    "input token count",
    "context window",
    "context length",
    "prompt is too long",
)
_NOT_FOUND_PHRASES = ("model identifier is invalid", "end of its life", "could not resolve")
_PROFILE_ONLY = "on-demand throughput"
_BAD_API_KEY = ("authentication failed", "api key is valid", "invalid api key")
_CLOCK_SKEW = ("signature expired", "signature not yet current")


def error_code(headers: Mapping[str, str] | None, body: object) -> str:
    """The error's code: ``x-amzn-ErrorType`` up to its first ``:``, else the body's
    ``__type`` or ``code`` (after any ``#`` namespace); empty when none is given."""
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    code = lowered.get("x-amzn-errortype", "")
    if not code:
        err = error_object(body)
        raw = err.get("__type") or err.get("code") or err.get("Code") or ""
        code = raw if isinstance(raw, str) else ""
    return code.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _message(body: object) -> str:
    err = error_object(body)
    capital = err.get("Message")
    if not err.get("message") and isinstance(capital, str):
        err = {**err, "message": capital}
    return vendor_message(err, body)


def _kind(code: str, status: int | None, message: str) -> ErrorKind:
    low, key = message.lower(), code.lower()
    if key == "throttlingexception" and "per day" in low:
        return ErrorKind.QUOTA
    if key in ("validationexception", ""):
        if _PROFILE_ONLY in low:
            return ErrorKind.PERMISSION
        if any(phrase in low for phrase in _NOT_FOUND_PHRASES):
            return ErrorKind.NOT_FOUND
        if any(phrase in low for phrase in _CONTEXT_PHRASES):
            return ErrorKind.CONTEXT_LENGTH
    if key in ("", "accessdeniedexception") and any(p in low for p in _BAD_API_KEY):
        return ErrorKind.AUTH  # a Bedrock API key that is not (or no longer) valid
    kind = _KINDS.get(key)
    if kind is not None:
        return kind
    return kind_for_status(status)


def classify_bedrock_error(
    status: int | None,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str = "",
    now: float | None = None,
) -> ProviderError:
    """A Bedrock HTTP error (or, with ``status`` None, a stream exception whose code is in
    ``headers`` as ``x-amzn-ErrorType``) as a ProviderError."""
    code = error_code(headers, body)
    message = _message(body)
    named = f"{code}: {message}" if code else message
    text = f"HTTP {status}: {named}" if status is not None else named
    kind = _kind(code, status, message)
    wait = retry_after_seconds(headers, now) if kind is ErrorKind.RATE_LIMIT else None
    return ProviderError(text, kind=kind, provider=provider, status=status, retry_after=wait)


def stream_exception_error(exception_type: str, payload: bytes, provider: str) -> ProviderError:
    """An exception frame after HTTP 200 (``:exception-type`` and its JSON payload)."""
    return classify_bedrock_error(
        None, payload, {"x-amzn-ErrorType": exception_type}, provider=provider
    )


def is_clock_skew(error: ProviderError) -> bool:
    """``error`` is AWS refusing a signature made on a clock more than five minutes off."""
    low = error.message.lower()
    return error.kind is ErrorKind.AUTH and any(phrase in low for phrase in _CLOCK_SKEW)
