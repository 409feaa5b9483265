"""Azure OpenAI on the wire: where a deployment's calls go and what Azure's errors mean.

The bodies are OpenAI's (see :mod:`rolecall.providers.openai`); Azure differs in the
paths, the ``api-version`` query and its error bodies:

- deployment URLs ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=``
  with a dated version, or the v1 path ``{endpoint}/openai/v1/chat/completions`` (no
  version; the deployment named by ``model``);
- errors ``{"error": {"code": "DeploymentNotFound" | "401" | "429" | "content_filter" |
  "PermissionDenied" ..., "message", "innererror"?}}``, or the gateway's bare
  ``{"statusCode", "message"}`` for a refused token or a spent call-volume quota.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from rolecall.config._azure_config import DEFAULT_API_VERSION, V1
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._errors import error_head, retry_after_seconds
from rolecall.providers.openai import classify_openai_error

__all__ = [
    "DEFAULT_API_VERSION",
    "V1",
    "AzureURLs",
    "azure_urls",
    "classify_azure_error",
    "normalize_endpoint",
]

_RETRY_IN_TEXT = re.compile(r"retry after (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
# Suffixes users paste from the portal's sample code; the endpoint is the resource root.
_PASTED_SUFFIXES = ("/openai/v1", "/openai")


@dataclass(frozen=True, slots=True)
class AzureURLs:
    chat: str  # chat completions for the deployment
    models: str  # the model list: free, checks the key or token and the api-version


def normalize_endpoint(endpoint: str) -> str:
    """``https://<resource>.openai.azure.com``: no trailing slash, no pasted ``/openai``."""
    root = endpoint.strip().rstrip("/")
    for suffix in _PASTED_SUFFIXES:
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def azure_urls(endpoint: str, deployment: str, api_version: str) -> AzureURLs:
    """The URLs one deployment is called at, for a dated ``api_version`` or ``v1``."""
    root = normalize_endpoint(endpoint)
    if api_version == V1:
        return AzureURLs(f"{root}/openai/v1/chat/completions", f"{root}/openai/v1/models")
    version = quote(api_version, safe="")
    name = quote(deployment, safe="")
    return AzureURLs(
        f"{root}/openai/deployments/{name}/chat/completions?api-version={version}",
        f"{root}/openai/models?api-version={version}",
    )


def _filtered_categories(err: Mapping[str, Any]) -> str:
    """``violence (high), jailbreak`` from ``innererror.content_filter_result``."""
    inner = err.get("innererror")
    results = inner.get("content_filter_result") if isinstance(inner, dict) else None
    if not isinstance(results, dict):
        return ""
    named = []
    for name, result in results.items():
        if isinstance(result, dict) and result.get("filtered") is True:
            severity = result.get("severity")
            named.append(f"{name} ({severity})" if isinstance(severity, str) else str(name))
    return ", ".join(named)


def classify_azure_error(
    status: int | None,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str = "",
    now: float | None = None,
) -> ProviderError:
    """An Azure OpenAI failure as a ProviderError; what Azure shares with OpenAI (context
    length, in-stream errors, plain statuses) is classified as OpenAI's."""
    err, status, message, text = error_head(status, body)
    code = str(err.get("code") or "")
    inner = err.get("innererror")
    inner_code = inner.get("code") if isinstance(inner, dict) else None

    def make(kind: ErrorKind, detail: str = text, wait: float | None = None) -> ProviderError:
        return ProviderError(detail, kind=kind, provider=provider, status=status, retry_after=wait)

    if code == "content_filter" or inner_code == "ResponsibleAIPolicyViolation":
        categories = _filtered_categories(err)
        where = f": {categories}" if categories else ""
        return make(
            ErrorKind.CONTENT_FILTER, f"{text} (prompt refused by the content filter{where})"
        )
    if code == "DeploymentNotFound":
        return make(ErrorKind.NOT_FOUND, f"{text} (check the deployment name)")
    if code == "PermissionDenied":  # an Entra principal without the role; Azure says 401
        return make(ErrorKind.PERMISSION)
    if "out of call volume quota" in message.lower() or code in (
        "insufficient_quota",
        "quotaExceeded",
    ):
        return make(ErrorKind.QUOTA)
    if status == 429:
        wait = retry_after_seconds(headers, now)
        if wait is None:
            found = _RETRY_IN_TEXT.search(message)
            wait = float(found.group(1)) if found else None
        return make(ErrorKind.RATE_LIMIT, wait=wait)
    if status == 404 and message == "Resource not found":
        return make(ErrorKind.NOT_FOUND, f"{text} (check the endpoint and api_version)")
    if status == 400 and message == "API version not supported":
        return make(ErrorKind.BAD_REQUEST, f"{text} (set api_version to a dated GA version or v1)")
    return classify_openai_error(status, body, headers, provider=provider, now=now)
