"""Azure OpenAI chat completions on the wire: OpenAI's bodies behind Azure's paths, auth and errors.

Two paths reach a deployment: ``/openai/deployments/{deployment}/chat/completions`` with a
dated ``api-version`` query (the deployment named in the path), and the v1 path
``/openai/v1/chat/completions`` (the deployment named by ``model``; ``api-version`` absent,
``v1`` or ``preview``). The key comes in ``api-key`` or as ``Authorization: Bearer`` (a
Microsoft Entra ID token, or the key itself on the v1 path). Answers carry Azure's
content-filter annotations; errors use Azure's codes (``DeploymentNotFound``,
``content_filter`` with ``innererror``, ``"429"`` with ``retry-after-ms``) and, for a bad
or missing token, the gateway's bare ``{"statusCode", "message"}`` shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from rolecall.sim._common import (
    Answer,
    Ctx,
    Route,
    bad_gateway,
    json_response,
    key_suffix,
    retry_after_header,
)
from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim._openai import OpenAIDialect, _include_usage, _retry_after
from rolecall.sim.faults import Fault

__all__ = ["AzureOpenAIDialect"]

_DEPLOYMENTS = "/openai/deployments/"
_V1 = "/openai/v1"
_CHAT = "/chat/completions"
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_V1_VERSIONS = frozenset({"v1", "preview"})
# How the current request authenticated (each connection is its own task, so a
# context variable keeps concurrent requests apart): "api-key" or "bearer".
_SCHEME: ContextVar[str] = ContextVar("azure_auth_scheme", default="api-key")

_INVALID_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
_FILTERED_PROMPT = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def _error(
    status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()
) -> Rendered:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def _gateway_error(status: int, message: str) -> Rendered:
    """The API gateway's own shape (a token it refuses, a call-volume quota): no ``error``."""
    return json_response(status, {"statusCode": status, "message": message})


def _filter_results(filtered: bool = False) -> dict[str, Any]:
    """Azure's per-category annotation; a filtered answer shows ``violence`` at ``high``."""
    results: dict[str, Any] = {
        name: {"filtered": False, "severity": "safe"} for name in _CATEGORIES
    }
    if filtered:
        results["violence"] = {"filtered": True, "severity": "high"}
    return results


def _prompt_filter_results() -> list[dict[str, Any]]:
    return [{"prompt_index": 0, "content_filter_results": _filter_results()}]


class AzureOpenAIDialect(OpenAIDialect):
    name = "azure-openai"

    def base_url(self, root: str) -> str:
        """The resource endpoint (``https://<resource>.openai.azure.com``): paths go under it."""
        return root

    def route(self, method: str, path: str) -> Route | None:
        if method == "POST" and path == _V1 + _CHAT:
            return Route("chat")
        if method == "POST" and path.startswith(_DEPLOYMENTS) and path.endswith(_CHAT):
            deployment = path[len(_DEPLOYMENTS) : -len(_CHAT)]
            return Route("chat", model=deployment) if deployment and "/" not in deployment else None
        if method != "GET":
            return None
        for prefix in ("/openai/models", _V1 + "/models"):
            if path == prefix:
                return Route("models")
            if path.startswith(prefix + "/"):
                return Route("model", model=path[len(prefix) + 1 :])
        return None

    def api_key(self, request: HttpRequest) -> str | None:
        key = request.headers.get("api-key", "").strip()
        if key:
            _SCHEME.set("api-key")
            return key
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        _SCHEME.set("bearer")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def check_headers(self, request: HttpRequest) -> Rendered | None:
        """The ``api-version`` query: dated on the deployment and model paths, optional on v1."""
        version = request.query.get("api-version")
        if request.path.startswith(_V1 + "/"):
            if version is None or version in _V1_VERSIONS:
                return None
            return _error(400, "BadRequest", "API version not supported")
        if version is None:
            return _error(404, "404", "Resource not found")
        if not _DATED_VERSION.fullmatch(version):
            return _error(400, "BadRequest", "API version not supported")
        return None

    def check_body(self, body: dict[str, Any], route: Route) -> Rendered | None:
        if route.model is None:  # the v1 path names the deployment in the body
            return super().check_body(body, route)
        if not isinstance(body.get("messages"), list):
            return super().check_body({"model": route.model}, route)
        return None

    def model_of(self, body: dict[str, Any], route: Route) -> str:
        return route.model or str(body.get("model") or "")

    # Errors ------------------------------------------------------------------------------
    def error(self, fault: Fault, ctx: Ctx) -> Rendered:
        kind = fault.kind
        echo = key_suffix(fault, ctx.key)
        if kind == "auth":
            if _SCHEME.get() == "bearer":
                return _gateway_error(401, _BAD_TOKEN + echo)
            return _error(401, "401", _INVALID_KEY + echo)
        if kind == "permission":
            # An Entra principal without the data action: Azure answers 401, code PermissionDenied.
            return _error(
                401,
                "PermissionDenied",
                "The principal `00000000-0000-0000-0000-000000000000` lacks the required data "
                "action `Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions"
                "/action` to perform `POST /openai/deployments/{deployment-id}/chat/completions` "
                f"operation.{echo}",
            )
        if kind == "region":
            return _error(403, "403", "Access denied due to Virtual Network/Firewall rules." + echo)
        if kind == "not_found":
            return self._deployment_not_found(echo)
        if kind == "quota":
            wait = 216000 if fault.retry_after is None else fault.retry_after
            return _gateway_error(
                403,
                f"Out of call volume quota. Quota will be replenished in {_timespan(wait)}.{echo}",
            )
        if kind == "rate_limit":
            return self._rate_limited(fault, ctx, echo)
        if kind == "overloaded":
            return _error(
                503,
                "ServiceUnavailable",
                "The service is temporarily unable to process your request. Please try again "
                f"later.{echo}",
                _retry_after(fault),
            )
        if kind == "server":
            status = fault.status or 500
            if status == 502:
                return bad_gateway()
            if status == 504:
                return _error(504, "Timeout", "The operation was timeout." + echo)
            return _error(
                status,
                "InternalServerError",
                "The server had an error processing your request. Sorry about that! You can "
                "retry your request, or contact us through an Azure support request at: "
                "https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this "
                f"error.{echo}",
                _retry_after(fault),
            )
        return super().error(fault, ctx)  # context_length, bad_request: OpenAI's bodies

    def filtered_error(self, fault: Fault, ctx: Ctx) -> Rendered | None:
        """A filtered prompt is refused with HTTP 400; a filtered answer comes back as 200."""
        if fault.variant != "prompt":
            return None
        results = _filter_results(filtered=True)
        results["jailbreak"] = {"filtered": False, "detected": False}
        body = {
            "error": {
                "message": _FILTERED_PROMPT + key_suffix(fault, ctx.key),
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": results,
                },
            }
        }
        return json_response(400, body)

    def _rate_limited(self, fault: Fault, ctx: Ctx, echo: str) -> Rendered:
        wait = 1.0 if fault.retry_after is None else fault.retry_after
        whole = max(1, math.ceil(wait))
        headers = [("retry-after", retry_after_header(whole, fault.variant))]
        if fault.variant != "http_date":
            headers.append(("retry-after-ms", str(math.ceil(wait * 1000))))
        headers += [("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-remaining-tokens", "0")]
        return _error(
            429,
            "429",
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
            f"Please retry after {whole} seconds. Please go here: https://aka.ms/oai/quotaincrease "
            f"if you would like to further increase the default rate limit.{echo}",
            headers,
        )

    def _deployment_not_found(self, echo: str = "") -> Rendered:
        return _error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment "
            f"within the last 5 minutes, please wait a moment and try again.{echo}",
        )

    def missing_key(self) -> Rendered:
        return _gateway_error(401, _BAD_TOKEN)

    def invalid_key(self, key: str) -> Rendered:
        ctx = Ctx(model="", key=key, stream=False, body={}, input_tokens=0)
        return self.error(Fault("auth"), ctx)

    def unknown_route(self, method: str, path: str) -> Rendered:
        return _error(404, "404", "Resource not found")

    def model_not_found(self, model: str) -> Rendered:
        return _error(404, "notFound", f"The model '{model}' does not exist.")

    # Answers -----------------------------------------------------------------------------
    def answer(self, ctx: Ctx, answer: Answer) -> dict[str, Any]:
        body = super().answer(ctx, answer)
        for choice in body["choices"]:
            choice["content_filter_results"] = _filter_results(answer.filtered)
        body["prompt_filter_results"] = _prompt_filter_results()
        return body

    def _chunk(self, ctx: Ctx, delta: dict[str, Any], finish: str | None) -> bytes:
        body = self._envelope(ctx, "chat.completion.chunk")
        filtered = finish == "content_filter"
        results = _filter_results(filtered) if delta.get("content") or filtered else {}
        body["choices"] = [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish,
                "content_filter_results": results,
            }
        ]
        if _include_usage(ctx):
            body["usage"] = None
        return self.sse(body)

    def stream_head(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        """Azure opens a stream with the prompt's filter results in a chunk with no choices."""
        head = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": _prompt_filter_results(),
        }
        return [self.sse(head), *super().stream_head(ctx, answer)]

    # Model endpoints ---------------------------------------------------------------------
    def model_info(self, model: str) -> dict[str, Any]:
        return {
            "id": model,
            "object": "model",
            "created_at": 1715558400,
            "status": "succeeded",
            "capabilities": {
                "fine_tune": False,
                "inference": True,
                "completion": False,
                "chat_completion": True,
                "embeddings": False,
            },
            "lifecycle_status": "generally-available",
            "deprecation": {"inference": 1782604800},
        }

    def headers(self, ctx: Ctx | None) -> list[tuple[str, str]]:
        rid = ctx.request_id if ctx is not None else "models"
        return [
            ("apim-request-id", rid),
            ("x-request-id", rid),
            ("x-ms-region", "East US"),
        ]


def _timespan(seconds: float) -> str:
    """A .NET TimeSpan as the gateway prints it: ``2.12:00:00``, ``00:00:30``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{clock}" if days else clock
