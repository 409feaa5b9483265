"""The Vertex AI sim, driven by google-genai with ``vertexai=True``: paths, OAuth tokens,
Google Cloud's error bodies and every fault."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google.genai import errors, types
from sim_helpers import LOCATION, PROJECT, PROMPT, REPLY, transport_errors, vertex_client

from google_credentials import TOKEN, FakeCredentials
from rolecall.sim import Fault, SimServer

SCOPE = f"projects/{PROJECT}/locations/{LOCATION}"
RESOURCE = f"{SCOPE}/publishers/google/models/sim-model"
BODY = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}


@pytest.fixture
def client(vertex_sim: SimServer) -> Any:
    return vertex_client(vertex_sim, FakeCredentials())


def _generate(client: Any) -> Any:
    return client.models.generate_content(model="sim-model", contents=PROMPT)


def _stream(client: Any) -> list[Any]:
    return list(client.models.generate_content_stream(model="sim-model", contents=PROMPT))


def _post(server: SimServer, path: str, token: str | None = TOKEN, **kwargs: Any) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{server.base_url}{path}", json=BODY, headers=headers, **kwargs)


def _reason(error: errors.APIError) -> str | None:
    details = error.details["error"].get("details", [])
    return next((d.get("reason") for d in details if d["@type"].endswith("ErrorInfo")), None)


def test_answer_comes_from_the_project_path_with_the_bearer_token(
    vertex_sim: SimServer, client: Any
) -> None:
    reply = _generate(client)
    assert reply.text == REPLY
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.prompt_token_count == 6
    assert reply.usage_metadata.candidates_token_count == 4
    assert reply.usage_metadata.traffic_type == types.TrafficType.ON_DEMAND
    assert reply.create_time is not None
    sent = vertex_sim.requests[-1]
    # google-genai speaks v1beta1; rolecall speaks v1: the sim serves both.
    assert sent.path == f"/v1beta1/{RESOURCE}:generateContent"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.api_key == TOKEN


def test_stream_text_usage_and_path(vertex_sim: SimServer, client: Any) -> None:
    chunks = _stream(client)
    assert "".join(c.text or "" for c in chunks) == REPLY
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 4
    sent = vertex_sim.requests[-1]
    assert sent.path == f"/v1beta1/{RESOURCE}:streamGenerateContent"
    assert sent.query == {"alt": "sse"}


def test_v1_and_the_global_location_are_served(vertex_sim: SimServer) -> None:
    for scope in (SCOPE, f"projects/{PROJECT}/locations/global"):
        response = _post(
            vertex_sim, f"/v1/{scope}/publishers/google/models/sim-model:generateContent"
        )
        assert response.status_code == 200
        assert response.json()["candidates"][0]["content"]["parts"][0]["text"] == REPLY


def test_an_expired_credential_is_refreshed_by_the_sdk_and_accepted(
    vertex_sim: SimServer,
) -> None:
    credentials = FakeCredentials(["ya29.first", "ya29.second"], lifetime=-60)  # born expired
    client = vertex_client(vertex_sim, credentials)
    vertex_sim.api_key = "ya29.second"
    with pytest.raises(errors.ClientError) as old_token:  # the SDK refreshes: first token
        _generate(client)
    assert old_token.value.code == 401
    assert _generate(client).text == REPLY  # expired again: refreshed to the second token
    assert credentials.refreshes == 2
    assert vertex_sim.requests[-1].api_key == "ya29.second"


def test_a_wrong_token_is_401_unauthenticated(vertex_sim: SimServer) -> None:
    client = vertex_client(vertex_sim, FakeCredentials(["ya29.not-known-here"]))
    with pytest.raises(errors.ClientError) as caught:
        _generate(client)
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    assert _reason(caught.value) == "ACCESS_TOKEN_TYPE_UNSUPPORTED"


def test_no_token_is_401_credentials_missing(vertex_sim: SimServer) -> None:
    response = _post(vertex_sim, f"/v1/{RESOURCE}:generateContent", token=None)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["details"][0]["reason"] == "CREDENTIALS_MISSING"
    assert error["message"].startswith("Request is missing required authentication credential.")


ERRORS: list[tuple[Fault, type[errors.APIError], int, str]] = [
    (Fault("auth"), errors.ClientError, 401, "UNAUTHENTICATED"),
    (Fault("auth", variant="expired"), errors.ClientError, 401, "UNAUTHENTICATED"),
    (Fault("permission"), errors.ClientError, 403, "PERMISSION_DENIED"),
    (Fault("quota"), errors.ClientError, 403, "PERMISSION_DENIED"),
    (Fault("region"), errors.ClientError, 404, "NOT_FOUND"),
    (Fault("not_found"), errors.ClientError, 404, "NOT_FOUND"),
    (Fault("rate_limit"), errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    (Fault("overloaded"), errors.ServerError, 503, "UNAVAILABLE"),
    (Fault("server"), errors.ServerError, 500, "INTERNAL"),
    (Fault("server", status=504), errors.ServerError, 504, "DEADLINE_EXCEEDED"),
    (Fault("context_length"), errors.ClientError, 400, "INVALID_ARGUMENT"),
    (Fault("bad_request"), errors.ClientError, 400, "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("fault", "error", "code", "status"),
    ERRORS,
    ids=[f"{f.kind}-{f.variant or f.status}" for f, *_ in ERRORS],
)
def test_error_faults_raise_the_sdk_error(
    vertex_sim: SimServer,
    client: Any,
    fault: Fault,
    error: type[errors.APIError],
    code: int,
    status: str,
    stream: bool,
) -> None:
    vertex_sim.script(fault)
    with pytest.raises(error) as caught:
        _stream(client) if stream else _generate(client)
    assert (caught.value.code, caught.value.status) == (code, status)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault("auth"), "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        (Fault("auth", variant="expired"), "ACCESS_TOKEN_EXPIRED"),
        (Fault("permission"), "IAM_PERMISSION_DENIED"),
        (Fault("quota"), "BILLING_DISABLED"),
    ],
)
def test_error_info_reasons(vertex_sim: SimServer, client: Any, fault: Fault, reason: str) -> None:
    vertex_sim.script(fault)
    with pytest.raises(errors.ClientError) as caught:
        _generate(client)
    assert _reason(caught.value) == reason


def test_permission_and_not_found_name_the_resource_of_the_path(
    vertex_sim: SimServer, client: Any
) -> None:
    vertex_sim.script(Fault("permission"), Fault("not_found"))
    with pytest.raises(errors.ClientError) as denied:
        _generate(client)
    assert f"'//aiplatform.googleapis.com/{RESOURCE}' (or it may not exist)" in denied.value.message
    with pytest.raises(errors.ClientError) as missing:
        _generate(client)
    assert f"Publisher Model `{RESOURCE}` was not found" in missing.value.message


def test_rate_limit_has_no_retry_hint_unless_the_fault_names_one(
    vertex_sim: SimServer, client: Any
) -> None:
    vertex_sim.script(
        Fault("rate_limit"), Fault("rate_limit", retry_after=3, variant="quota_metric")
    )
    with pytest.raises(errors.ClientError) as shared:
        _generate(client)
    assert "error-code-429" in shared.value.message
    assert "details" not in shared.value.details["error"]
    with pytest.raises(errors.ClientError) as quota:
        _generate(client)
    assert "generate_content_requests_per_minute_per_project_per_base_model" in (
        quota.value.message
    )
    assert quota.value.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}
    ]


def test_context_length_is_vertex_s_wording(vertex_sim: SimServer, client: Any) -> None:
    vertex_sim.script(Fault("context_length"))
    with pytest.raises(errors.ClientError) as caught:
        _generate(client)
    assert caught.value.message.startswith(
        "Unable to submit request because the input token count is "
    )
    assert "but model only supports up to 1048576." in caught.value.message


def test_bad_gateway_is_google_s_html_page(vertex_sim: SimServer, client: Any) -> None:
    vertex_sim.script(Fault("server", status=502))
    with pytest.raises(errors.ServerError) as caught:
        _generate(client)
    assert caught.value.code == 502
    vertex_sim.script(Fault("server", status=502))
    raw = _post(vertex_sim, f"/v1/{RESOURCE}:generateContent")
    assert raw.headers["content-type"].startswith("text/html")
    assert b"Error 502 (Server Error)" in raw.content


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_safety_block(vertex_sim: SimServer, client: Any, stream: bool) -> None:
    vertex_sim.script(Fault("content_filter"))
    reply = _stream(client)[-1] if stream else _generate(client)
    assert reply.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert reply.text is None


def test_empty_and_malformed_answers(vertex_sim: SimServer, client: Any) -> None:
    vertex_sim.script(Fault("empty"), Fault("malformed"))
    assert not _generate(client).text
    with pytest.raises(ValueError):
        _generate(client)


def test_stream_error_cuts_the_connection_after_chunks(vertex_sim: SimServer, client: Any) -> None:
    vertex_sim.script(Fault("stream_error", after_chunks=2))
    received: list[str] = []
    with pytest.raises(transport_errors()):
        for chunk in client.models.generate_content_stream(model="sim-model", contents=PROMPT):
            received.append(chunk.text or "")
    assert "".join(received) == "Hello from"


def test_reset_and_timeout_are_transport_errors(vertex_sim: SimServer) -> None:
    vertex_sim.script(Fault("reset"), Fault("timeout"))
    client = vertex_client(vertex_sim, FakeCredentials(), timeout=0.3)
    for _ in range(2):
        with pytest.raises(transport_errors()):
            _generate(client)
    assert _generate(client).text == REPLY


def test_count_tokens_is_free_and_counts(vertex_sim: SimServer, client: Any) -> None:
    counted = client.models.count_tokens(model="sim-model", contents=PROMPT)
    assert counted.total_tokens == 6
    sent = vertex_sim.requests[-1]
    assert sent.path == f"/v1beta1/{RESOURCE}:countTokens"
    assert (vertex_sim.calls, vertex_sim.model_calls) == (0, 1)
    raw = _post(vertex_sim, f"/v1/{RESOURCE}:countTokens").json()
    assert raw["totalBillableCharacters"] == len(PROMPT.replace(" ", ""))


def test_count_tokens_checks_token_and_model(vertex_sim: SimServer) -> None:
    unknown = _post(vertex_sim, f"/v1/{SCOPE}/publishers/google/models/gemini-9:countTokens")
    assert unknown.status_code == 404
    assert f"{SCOPE}/publishers/google/models/gemini-9" in unknown.json()["error"]["message"]
    assert _post(vertex_sim, f"/v1/{RESOURCE}:countTokens", token="ya29.wrong").status_code == 401
    vertex_sim.script_models(Fault("permission"))
    assert _post(vertex_sim, f"/v1/{RESOURCE}:countTokens").status_code == 403
    assert vertex_sim.calls == 0


def test_publisher_model_get_has_no_project(vertex_sim: SimServer, client: Any) -> None:
    model = client.models.get(model="sim-model")
    assert model.name == "publishers/google/models/sim-model"
    assert vertex_sim.requests[-1].path == "/v1beta1/publishers/google/models/sim-model"
    with pytest.raises(errors.ClientError) as unknown:
        client.models.get(model="gemini-9")
    assert unknown.value.code == 404


def test_gemini_api_paths_are_not_vertex_paths(vertex_sim: SimServer) -> None:
    response = _post(vertex_sim, "/v1beta/models/sim-model:generateContent")
    assert response.status_code == 404
    assert vertex_sim.calls == 0


def _weather_call(body: dict[str, Any]) -> dict[str, Any]:
    return {"text": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}


def test_function_calls(vertex_sim: SimServer, client: Any) -> None:
    vertex_sim.responder = _weather_call
    declaration = types.FunctionDeclaration(
        name="get_weather",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    reply = client.models.generate_content(model="sim-model", contents=PROMPT, config=config)
    (call,) = reply.function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
