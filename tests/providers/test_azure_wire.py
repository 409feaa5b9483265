"""Azure OpenAI's URLs and error bodies: each condition the Azure sim renders (and the
vendor's bodies quoted in PROVIDERS.md) becomes the ErrorKind the router acts on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rolecall.errors import ErrorKind
from rolecall.providers._azure_wire import (
    DEFAULT_API_VERSION,
    V1,
    azure_urls,
    classify_azure_error,
    normalize_endpoint,
)
from rolecall.sim._azure import AzureOpenAIDialect
from rolecall.sim._common import Ctx
from rolecall.sim.faults import Fault

ENDPOINT = "https://contoso.openai.azure.com"
E = ErrorKind


@pytest.mark.parametrize(
    "pasted",
    [ENDPOINT, ENDPOINT + "/", ENDPOINT + "/openai", ENDPOINT + "/openai/v1/", f" {ENDPOINT} "],
)
def test_endpoint_pasted_with_a_path_is_the_resource_root(pasted: str) -> None:
    assert normalize_endpoint(pasted) == ENDPOINT


def test_deployment_urls_carry_the_api_version_after_the_path() -> None:
    urls = azure_urls(ENDPOINT + "/", "gpt-4o prod", DEFAULT_API_VERSION)
    assert urls.chat == (
        f"{ENDPOINT}/openai/deployments/gpt-4o%20prod/chat/completions"
        f"?api-version={DEFAULT_API_VERSION}"
    )
    assert urls.models == f"{ENDPOINT}/openai/models?api-version={DEFAULT_API_VERSION}"


def test_v1_urls_have_no_version() -> None:
    urls = azure_urls(ENDPOINT, "gpt-4o", V1)
    assert urls.chat == f"{ENDPOINT}/openai/v1/chat/completions"
    assert urls.models == f"{ENDPOINT}/openai/v1/models"


def _rendered(fault: Fault) -> tuple[int, dict[str, str], bytes]:
    ctx = Ctx(model="gpt-4o", key="k", stream=False, body={}, input_tokens=3)
    dialect = AzureOpenAIDialect()
    rendered = dialect.filtered_error(fault, ctx) or dialect.error(fault, ctx)
    status, headers, body = rendered
    return status, dict(headers), body


SIM_ROWS: list[tuple[Fault, ErrorKind, float | None]] = [
    (Fault("auth"), E.AUTH, None),
    (Fault("permission"), E.PERMISSION, None),  # 401 with code PermissionDenied
    (Fault("region"), E.PERMISSION, None),
    (Fault("not_found"), E.NOT_FOUND, None),
    (Fault("quota"), E.QUOTA, None),
    (Fault("quota", retry_after=30), E.QUOTA, None),
    (Fault("rate_limit", retry_after=2), E.RATE_LIMIT, 2.0),
    (Fault("rate_limit", retry_after=1.5), E.RATE_LIMIT, 1.5),
    (Fault("overloaded"), E.OVERLOADED, None),
    (Fault("server"), E.SERVER, None),
    (Fault("server", status=502), E.SERVER, None),
    (Fault("server", status=504), E.SERVER, None),
    (Fault("context_length"), E.CONTEXT_LENGTH, None),
    (Fault("content_filter", variant="prompt"), E.CONTENT_FILTER, None),
    (Fault("bad_request"), E.BAD_REQUEST, None),
]


@pytest.mark.parametrize(
    ("fault", "kind", "wait"),
    SIM_ROWS,
    ids=[f"{f.kind}-{f.variant or f.retry_after or f.status or ''}" for f, *_ in SIM_ROWS],
)
def test_sim_bodies_are_classified(fault: Fault, kind: ErrorKind, wait: float | None) -> None:
    status, headers, body = _rendered(fault)
    error = classify_azure_error(status, body, headers, provider="az")
    assert error.kind is kind, error
    assert error.retry_after == (None if wait is None else pytest.approx(wait))
    assert error.provider == "az" and error.status == status


def test_bearer_token_refused_in_the_gateway_shape_is_auth() -> None:
    body = {
        "statusCode": 401,
        "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
        "(https://cognitiveservices.azure.com), or have expired.",
    }
    error = classify_azure_error(401, json.dumps(body).encode())
    assert error.kind is ErrorKind.AUTH
    assert "Access token is missing" in error.message


def test_filtered_prompt_names_the_categories() -> None:
    body: dict[str, Any] = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": {"filtered": False, "severity": "safe"},
                    "sexual": {"filtered": True, "severity": "high"},
                    "jailbreak": {"filtered": True, "detected": True},
                },
            },
        }
    }
    error = classify_azure_error(400, body)
    assert error.kind is ErrorKind.CONTENT_FILTER
    assert "sexual (high), jailbreak" in error.message and "hate" not in error.message


def test_rate_limit_without_headers_reads_the_wait_from_the_message() -> None:
    body = {"error": {"code": "429", "message": "... Please retry after 6 seconds. Please go"}}
    error = classify_azure_error(429, body, {})
    assert (error.kind, error.retry_after) == (ErrorKind.RATE_LIMIT, 6.0)


def test_retry_after_ms_wins_over_seconds() -> None:
    body = {"error": {"code": "429", "message": "Please retry after 2 seconds."}}
    headers = {"Retry-After": "2", "retry-after-ms": "1250"}
    assert classify_azure_error(429, body, headers).retry_after == pytest.approx(1.25)


def test_missing_api_version_says_what_to_check() -> None:
    body = {"error": {"code": "404", "message": "Resource not found"}}
    error = classify_azure_error(404, body)
    assert error.kind is ErrorKind.NOT_FOUND
    assert "endpoint and api_version" in error.message


def test_unsupported_api_version_is_a_bad_request_naming_the_fix() -> None:
    body = {"error": {"code": "BadRequest", "message": "API version not supported"}}
    error = classify_azure_error(400, body)
    assert error.kind is ErrorKind.BAD_REQUEST
    assert "api_version" in error.message


def test_deployment_not_found_names_the_deployment_as_the_fix() -> None:
    status, headers, body = _rendered(Fault("not_found"))
    assert "deployment name" in classify_azure_error(status, body, headers).message


def test_in_stream_error_falls_back_to_openai_labels() -> None:
    body = {"error": {"message": "server had an error", "type": "server_error"}}
    assert classify_azure_error(None, body).kind is ErrorKind.SERVER
