"""Bedrock's refusals as the sim sends them: ``x-amzn-ErrorType: <Code>:<namespace>``,
a ``{"message": ...}`` body and ``x-amzn-RequestId``, for every fault kind.

The AWS front door (signatures, tokens) answers 403 in the coral namespace; a Bedrock API
key that is not valid gets a 403 with ``Message`` and no error type; Bedrock's own errors
use its namespace. Bedrock sends no retry hint when it throttles: a fault's
``retry_after`` adds ``retry-after`` all the same, as a gateway in front may.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from rolecall.sim._common import (
    Ctx,
    array_error,
    bad_gateway,
    json_response,
    key_suffix,
    retry_after_header,
)
from rolecall.sim._http import Rendered
from rolecall.sim._sigv4 import skew_message
from rolecall.sim.faults import Fault

__all__ = [
    "auth_error",
    "bad_api_key",
    "fault_error",
    "invalid_json",
    "invalid_token",
    "is_profile",
    "missing_key",
    "model_not_found",
    "unknown_route",
    "validation_error",
]

_BEDROCK_NS = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_CORAL_NS = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.")
_INVALID_MODEL = "The provided model identifier is invalid."
_THROTTLED = "Too many requests, please wait before trying again."


def _error(
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[str, str]] = (),
    namespace: str = _BEDROCK_NS,
) -> Rendered:
    head = [("x-amzn-ErrorType", f"{code}:{namespace}"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return json_response(status, {"message": message}, [*head, *headers])


def auth_error(code: str, message: str) -> Rendered:
    return _error(403, code, message, namespace=_CORAL_NS)


def is_profile(model: str) -> bool:
    return model.startswith(_PROFILE_PREFIXES) or ":inference-profile/" in model


def validation_error(message: str) -> Rendered:
    return _error(400, "ValidationException", message)


def bad_api_key() -> Rendered:
    # Bedrock API keys are checked before the service: no x-amzn-ErrorType, "Message".
    body = {"Message": "Authentication failed: Please make sure your API Key is valid."}
    return json_response(403, body, [("x-amzn-RequestId", str(uuid.uuid4()))])


def fault_error(fault: Fault, ctx: Ctx) -> Rendered:
    kind, variant = fault.kind, fault.variant
    echo = key_suffix(fault, ctx.key)
    if kind == "auth":
        return _auth_fault(variant, echo)
    if kind == "permission":
        return _error(403, "AccessDeniedException", _denied(variant, ctx.model) + echo)
    if kind == "region":
        return _error(
            400,
            "ValidationException",
            f"Invocation of model ID {ctx.model} with on-demand throughput isn\u2019t "
            "supported. Retry your request with the ID or ARN of an inference profile that "
            f"contains this model.{echo}",
        )
    if kind == "not_found":
        if variant == "end_of_life":
            message = (
                "This model version has reached the end of its life. Please refer to the AWS "
                "documentation for more details."
            )
            return _error(404, "ResourceNotFoundException", message + echo)
        return _error(400, "ValidationException", _INVALID_MODEL + echo)
    if kind == "quota":
        if variant == "service_quota":
            return _error(
                400,
                "ServiceQuotaExceededException",
                "Your request exceeds the service quota for your account. You can view your "
                "quotas at https://docs.aws.amazon.com/servicequotas/latest/userguide/"
                "gs-request-quota.html" + echo,
            )
        message = "Too many tokens per day, please wait before trying again."
        return _error(429, "ThrottlingException", message + echo, _retry_after(fault))
    if kind == "rate_limit":
        message = (
            "Too many tokens, please wait before trying again."
            if variant == "tokens"
            else _THROTTLED
        )
        return _error(429, "ThrottlingException", message + echo, _retry_after(fault))
    if kind == "overloaded":
        if variant == "not_ready":
            return _error(
                429,
                "ModelNotReadyException",
                "Model is not ready to serve inference requests. Try your request again." + echo,
                _retry_after(fault),
            )
        return _error(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request." + echo,
            _retry_after(fault),
        )
    if kind == "server":
        return _server(fault, echo)
    if kind == "context_length":
        return _error(400, "ValidationException", "Input is too long for requested model." + echo)
    if kind == "openai_array_error":
        return array_error(fault, ctx)
    return _error(
        fault.status or 400,
        "ValidationException",
        "A conversation must alternate between user and assistant roles. Make sure the "
        "conversation alternates between user and assistant roles and try again." + echo,
    )


def _auth_fault(variant: str | None, echo: str) -> Rendered:
    if variant == "signature":
        return auth_error(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details." + echo,
        )
    if variant == "expired":
        return auth_error(
            "ExpiredTokenException",
            "The security token included in the request is expired" + echo,
        )
    if variant == "api_key":
        return bad_api_key()
    if variant in ("clock_behind", "clock_ahead"):  # the signer's clock is 15 minutes off
        now = time.time()
        signed_at = now - 900 if variant == "clock_behind" else now + 900
        return auth_error("InvalidSignatureException", skew_message(signed_at, now) + echo)
    return auth_error(
        "UnrecognizedClientException",
        "The security token included in the request is invalid." + echo,
    )


def _server(fault: Fault, echo: str) -> Rendered:
    status = fault.status or 500
    if status == 502:
        return bad_gateway()
    if status == 408:
        message = "Model has timed out in processing the request. Try your request again."
        return _error(408, "ModelTimeoutException", message + echo)
    if status == 424:
        message = "The model encountered an error while processing the request."
        return _error(424, "ModelErrorException", message + echo)
    if status == 503:
        return _error(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request." + echo,
        )
    message = (
        "The system encountered an unexpected error during processing. Try your request again."
    )
    return _error(status, "InternalServerException", message + echo, _retry_after(fault))


def invalid_token() -> Rendered:
    """An access key id the sim does not know."""
    return _auth_fault(None, "")


def missing_key() -> Rendered:
    return auth_error("MissingAuthenticationTokenException", "Missing Authentication Token")


def invalid_json() -> Rendered:
    return _error(
        400, "SerializationException", "Unexpected character: was expecting a JSON value."
    )


def unknown_route(method: str, path: str) -> Rendered:
    return _error(404, "UnknownOperationException", "", namespace=_CORAL_NS)


def model_not_found(model: str) -> Rendered:
    if is_profile(model):
        return _error(
            404,
            "ResourceNotFoundException",
            "The specified inference profile could not be found.",
        )
    return _error(
        404,
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    )


def _denied(variant: str | None, model: str) -> str:
    if variant == "iam":
        return (
            "User: arn:aws:iam::123456789012:user/sim is not authorized to perform: "
            f"bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/{model} "
            "because no identity-based policy allows the bedrock:InvokeModel action"
        )
    return "You don't have access to the model with the specified model ID."


def _retry_after(fault: Fault) -> list[tuple[str, str]]:
    if fault.retry_after is None:
        return []
    return [("retry-after", retry_after_header(fault.retry_after, fault.variant))]
