"""Gemini on Vertex AI on the wire: Gemini's bodies under Google Cloud's paths, tokens and errors.

Paths (``v1`` and the ``v1beta1`` google-genai uses): ``POST /{version}/projects/{project}/
locations/{location}/publishers/google/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:countTokens`` (free); ``GET /{version}/publishers/
google/models/{model}`` (the publisher model, no project). The caller proves itself with an
OAuth access token (``Authorization: Bearer``): the server's ``api_key`` is the one token it
takes. Errors are google.rpc bodies as Vertex words them: 401 ``UNAUTHENTICATED``, 403
``IAM_PERMISSION_DENIED`` or ``BILLING_DISABLED``, 404 for a model the location does not
serve, 429 ``RESOURCE_EXHAUSTED`` without a retry hint unless the fault names one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rolecall.sim._common import Answer, Ctx, Route, key_suffix
from rolecall.sim._google import CONTEXT_WINDOW, GoogleDialect, gemini_error, verb_route
from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim.faults import Fault

__all__ = ["SIM_PROJECT_NUMBER", "VertexDialect"]

_VERSIONS = frozenset({"v1", "v1beta1"})
_RPC = "type.googleapis.com/google.rpc."
_SERVICE = "aiplatform.googleapis.com"
SIM_PROJECT_NUMBER = "123456789012"  # what billing errors name: the number, not the id
_CREDENTIALS_HELP = (
    " Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_ERROR_429 = (
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
)
_BILLING = (
    f"This API method requires billing to be enabled. Please enable billing on project "
    f"#{SIM_PROJECT_NUMBER} by visiting https://console.developers.google.com/billing/enable?"
    f"project={SIM_PROJECT_NUMBER} then retry. If you enabled billing for this project "
    "recently, wait a few minutes for the action to propagate to our systems and retry."
)
# Google's front end answers a 502 with its own HTML page, not the API's JSON.
_GFE_502 = (
    b"<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
    b"  <title>Error 502 (Server Error)!!1</title>\n"
    b"  <p><b>502.</b> <ins>That\xe2\x80\x99s an error.</ins>\n"
    b"  <p>The server encountered a temporary error and could not complete your request."
    b"<p>Please try again in 30 seconds.  <ins>That\xe2\x80\x99s all we know.</ins>\n"
)


def _error_info(reason: str, domain: str = "googleapis.com", **metadata: str) -> dict[str, Any]:
    return {
        "@type": _RPC + "ErrorInfo",
        "reason": reason,
        "domain": domain,
        "metadata": {"service": _SERVICE, **metadata} if domain == "googleapis.com" else metadata,
    }


def _method(ctx: Ctx | None) -> str:
    verb = "StreamGenerateContent" if ctx is not None and ctx.stream else "GenerateContent"
    return f"google.cloud.aiplatform.v1.PredictionService.{verb}"


def _unauthenticated(message: str, reason: str, ctx: Ctx | None = None) -> Rendered:
    return gemini_error(401, "UNAUTHENTICATED", message, [_error_info(reason, method=_method(ctx))])


def _resource(ctx: Ctx) -> str:
    scope = ctx.scope or "projects/sim-project/locations/us-central1"
    return f"{scope}/publishers/google/models/{ctx.model}"


class VertexDialect(GoogleDialect):
    name = "vertex"

    def route(self, method: str, path: str) -> Route | None:
        parts = path.split("/")
        if len(parts) < 5 or parts[0] or parts[1] not in _VERSIONS:
            return None
        rest = parts[2:]
        if rest[:3] == ["publishers", "google", "models"] and method == "GET":
            # The publisher model (no project): what google-genai's models.get reads.
            if len(rest) == 3:
                return Route("models")
            return Route("model", model=rest[3]) if len(rest) == 4 else None
        if (
            len(rest) != 8
            or rest[0] != "projects"
            or rest[2] != "locations"
            or rest[4:7] != ["publishers", "google", "models"]
        ):
            return None
        model, _, verb = rest[7].rpartition(":")
        return verb_route(method, model, verb, scope=f"projects/{rest[1]}/locations/{rest[3]}")

    def api_key(self, request: HttpRequest) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    # Errors ------------------------------------------------------------------------------
    def error(self, fault: Fault, ctx: Ctx) -> Rendered:
        kind, echo = fault.kind, key_suffix(fault, ctx.key)
        if kind == "auth":
            expired = fault.variant == "expired"
            reason = "ACCESS_TOKEN_EXPIRED" if expired else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
            return _unauthenticated(
                "Request had invalid authentication credentials." + _CREDENTIALS_HELP + echo,
                reason,
                ctx,
            )
        if kind == "permission":
            resource = _resource(ctx)
            permission = "aiplatform.endpoints.predict"
            return gemini_error(
                403,
                "PERMISSION_DENIED",
                f"Permission '{permission}' denied on resource '//{_SERVICE}/{resource}' "
                f"(or it may not exist).{echo}",
                [
                    _error_info(
                        "IAM_PERMISSION_DENIED", _SERVICE, permission=permission, resource=resource
                    )
                ],
            )
        if kind == "region":  # a model this location does not serve
            return gemini_error(
                404, "NOT_FOUND", f"Publisher Model `{_resource(ctx)}` not found.{echo}"
            )
        if kind == "not_found":
            return self._not_found(_resource(ctx), echo)
        if kind == "quota":  # billing closed (trial credits spent): no call can succeed
            help_link = {
                "@type": _RPC + "Help",
                "links": [
                    {
                        "description": "Google developers console billing",
                        "url": "https://console.developers.google.com/billing/enable?project="
                        + SIM_PROJECT_NUMBER,
                    }
                ],
            }
            info = _error_info("BILLING_DISABLED", consumer=f"projects/{SIM_PROJECT_NUMBER}")
            return gemini_error(403, "PERMISSION_DENIED", _BILLING + echo, [help_link, info])
        if kind == "rate_limit":
            return self._exhausted(fault, ctx, echo)
        if kind == "server" and fault.status in (None, 500):
            return gemini_error(500, "INTERNAL", "Internal error encountered." + echo)
        if kind == "server" and fault.status == 502:
            return 502, [("content-type", "text/html; charset=UTF-8")], _GFE_502
        if kind == "context_length":
            tokens = CONTEXT_WINDOW + max(ctx.input_tokens, 1)
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                f"Unable to submit request because the input token count is {tokens} but model "
                f"only supports up to {CONTEXT_WINDOW}. Reduce the input token count and try "
                "again. You can also use the CountTokens API to calculate prompt token count "
                "and billable characters. Learn more: "
                f"https://cloud.google.com/vertex-ai/generative-ai/docs/learn/models{echo}",
            )
        return super().error(fault, ctx)

    def _exhausted(self, fault: Fault, ctx: Ctx, echo: str) -> Rendered:
        """Vertex's 429: shared capacity (no hint), or ``variant="quota_metric"``, a
        per-minute project quota. A RetryInfo only when the fault names ``retry_after``."""
        if fault.variant == "quota_metric":
            message = (
                "Quota exceeded for aiplatform.googleapis.com/"
                "generate_content_requests_per_minute_per_project_per_base_model with base "
                f"model: {ctx.model}. Please submit a quota increase request. "
                "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
            )
        else:
            message = _ERROR_429
        details = None
        if fault.retry_after is not None:
            details = [{"@type": _RPC + "RetryInfo", "retryDelay": f"{fault.retry_after:g}s"}]
        return gemini_error(429, "RESOURCE_EXHAUSTED", message + echo, details)

    def _not_found(self, resource: str, echo: str = "") -> Rendered:
        return gemini_error(
            404,
            "NOT_FOUND",
            f"Publisher Model `{resource}` was not found or your project does not have access "
            "to it. Please ensure you are using a valid model version. For more information, "
            f"see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions{echo}",
        )

    def missing_key(self) -> Rendered:
        return _unauthenticated(
            "Request is missing required authentication credential." + _CREDENTIALS_HELP,
            "CREDENTIALS_MISSING",
        )

    def invalid_key(self, key: str) -> Rendered:
        return _unauthenticated(
            "Request had invalid authentication credentials." + _CREDENTIALS_HELP,
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        )

    def model_not_found(self, model: str, echo: str = "") -> Rendered:
        return self._not_found(f"publishers/google/models/{model}", echo)

    # Answers -----------------------------------------------------------------------------
    def _usage(self, answer: Answer, output_tokens: int, thoughts: str = "") -> dict[str, Any]:
        usage = super()._usage(answer, output_tokens, thoughts)
        usage["trafficType"] = "ON_DEMAND"  # pay-as-you-go, not provisioned throughput
        return usage

    def _body(
        self,
        ctx: Ctx,
        candidate: dict[str, Any] | None,
        output_tokens: int,
        answer: Answer,
        thoughts: str = "",
    ) -> dict[str, Any]:
        body = super()._body(ctx, candidate, output_tokens, answer, thoughts)
        body["createTime"] = (
            datetime.fromtimestamp(ctx.created, UTC).isoformat().replace("+00:00", "Z")
        )
        return body

    # Model endpoints ---------------------------------------------------------------------
    def count_tokens(self, ctx: Ctx) -> dict[str, Any]:
        answer = super().count_tokens(ctx)
        texts = self.prompt_texts(ctx.body)
        answer["totalBillableCharacters"] = sum(len("".join(text.split())) for text in texts)
        return answer

    def models_list(self, models: Sequence[str]) -> dict[str, Any]:
        return {"publisherModels": [self.model_info(m) for m in models]}

    def model_info(self, model: str) -> dict[str, Any]:
        return {
            "name": f"publishers/google/models/{model}",
            "versionId": "001",
            "openSourceCategory": "PROPRIETARY",
            "launchStage": "GA",
            "versionState": "VERSION_STATE_STABLE",
            "publisherModelTemplate": (
                f"projects/{{project}}/locations/{{location}}/publishers/google/models/{model}@001"
            ),
        }
