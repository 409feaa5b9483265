"""The Azure OpenAI sim, driven by the official openai SDK (``AzureOpenAI`` on the deployment
path, ``OpenAI`` on the v1 path): answers, streams, Entra tokens and Azure's own errors."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from sim_helpers import KEY, MESSAGES, REPLY, sse_events

from rolecall.sim import Fault, SimServer

API_VERSION = "2024-10-21"


def azure_client(server: SimServer, timeout: float = 5.0, **auth: Any) -> openai.AzureOpenAI:
    auth = auth or {"api_key": KEY}
    return openai.AzureOpenAI(
        azure_endpoint=server.base_url,
        api_version=API_VERSION,
        max_retries=0,
        timeout=timeout,
        **auth,
    )


def chat(client: Any, **extra: Any) -> Any:
    return client.chat.completions.create(model="sim-model", messages=MESSAGES, **extra)


def test_deployment_path_answer_with_filter_annotations(azure_sim: SimServer) -> None:
    reply = chat(azure_client(azure_sim))

    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (6, 4)
    extra = reply.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
        "filtered": False,
        "severity": "safe",
    }
    choice_extra = reply.choices[0].model_extra or {}
    assert choice_extra["content_filter_results"]["violence"]["filtered"] is False
    sent = azure_sim.requests[-1]
    assert sent.path == "/openai/deployments/sim-model/chat/completions"
    assert sent.query == {"api-version": API_VERSION}
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers


def test_stream_opens_with_prompt_filter_chunk_and_ends_with_usage(azure_sim: SimServer) -> None:
    usage = {"include_usage": True}
    chunks = list(chat(azure_client(azure_sim), stream=True, stream_options=usage))

    first = chunks[0].model_extra or {}
    assert chunks[0].choices == [] and "prompt_filter_results" in first
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 4)


def test_entra_token_provider_is_sent_as_bearer_and_checked(azure_sim: SimServer) -> None:
    tokens = iter(["entra-token-1", "entra-token-2"])
    azure_sim.api_key = "entra-token-1"
    client = azure_client(azure_sim, azure_ad_token_provider=lambda: next(tokens))

    assert chat(client).choices[0].message.content == REPLY
    assert azure_sim.requests[-1].headers["authorization"] == "Bearer entra-token-1"
    assert "api-key" not in azure_sim.requests[-1].headers
    with pytest.raises(openai.AuthenticationError) as stale:  # the sim only takes token 1
        chat(client)
    body = stale.value.body
    assert isinstance(body, dict) and body["statusCode"] == 401
    assert "Access token is missing, invalid" in body["message"]


def test_v1_path_with_the_plain_openai_client(azure_sim: SimServer) -> None:
    client = openai.OpenAI(base_url=f"{azure_sim.base_url}/openai/v1/", api_key=KEY, max_retries=0)

    reply = chat(client)
    assert reply.choices[0].message.content == REPLY
    sent = azure_sim.requests[-1]
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "sim-model"


@pytest.mark.parametrize(
    ("path", "query", "status", "message"),
    [
        ("/openai/deployments/sim-model/chat/completions", {}, 404, "Resource not found"),
        ("/openai/deployments/sim-model/chat/completions", {"api-version": "latest"}, 400, ""),
        ("/openai/v1/chat/completions", {"api-version": API_VERSION}, 400, ""),
    ],
    ids=["missing", "malformed", "dated-on-v1"],
)
def test_api_version_is_checked(
    azure_sim: SimServer, path: str, query: dict[str, str], status: int, message: str
) -> None:
    response = httpx.post(
        f"{azure_sim.base_url}{path}",
        params=query,
        json={"model": "sim-model", "messages": MESSAGES},
        headers={"api-key": KEY},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] == (message or "API version not supported")
    assert azure_sim.calls == 1


def test_model_list_and_wrong_key(azure_sim: SimServer) -> None:
    models = azure_client(azure_sim).models.list()
    assert [m.id for m in models.data] == ["sim-model"]
    assert azure_sim.requests[-1].path == "/openai/models"
    assert azure_sim.requests[-1].query == {"api-version": API_VERSION}

    with pytest.raises(openai.AuthenticationError) as wrong:
        azure_client(azure_sim, api_key="wrong-key").models.list()
    assert wrong.value.code == "401"
    assert (azure_sim.model_calls, azure_sim.calls) == (2, 0)


def test_unknown_deployment_is_404_deployment_not_found(azure_sim: SimServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        azure_client(azure_sim).chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert caught.value.code == "DeploymentNotFound"


ERRORS: list[tuple[Fault, type[openai.APIStatusError], int, str | None]] = [
    (Fault("auth"), openai.AuthenticationError, 401, "401"),
    (Fault("permission"), openai.AuthenticationError, 401, "PermissionDenied"),
    (Fault("region"), openai.PermissionDeniedError, 403, "403"),
    (Fault("not_found"), openai.NotFoundError, 404, "DeploymentNotFound"),
    (Fault("quota"), openai.PermissionDeniedError, 403, None),
    (Fault("rate_limit"), openai.RateLimitError, 429, "429"),
    (Fault("overloaded"), openai.InternalServerError, 503, "ServiceUnavailable"),
    (Fault("server"), openai.InternalServerError, 500, "InternalServerError"),
    (Fault("server", status=504), openai.InternalServerError, 504, "Timeout"),
    (Fault("context_length"), openai.BadRequestError, 400, "context_length_exceeded"),
    (Fault("content_filter", variant="prompt"), openai.BadRequestError, 400, "content_filter"),
    (Fault("bad_request"), openai.BadRequestError, 400, None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("fault", "error", "status", "code"),
    ERRORS,
    ids=[f"{f.kind}-{f.variant}" if f.variant else f.kind for f, *_ in ERRORS],
)
def test_error_faults_raise_the_sdk_error(
    azure_sim: SimServer,
    fault: Fault,
    error: type[openai.APIStatusError],
    status: int,
    code: str | None,
    stream: bool,
) -> None:
    azure_sim.script(fault)
    with pytest.raises(error) as caught:
        result: Any = chat(azure_client(azure_sim), stream=stream)
        list(result) if stream else None
    assert caught.value.status_code == status
    assert caught.value.code == code


def test_quota_is_the_gateway_shape(azure_sim: SimServer) -> None:
    azure_sim.script(Fault("quota"))
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(azure_client(azure_sim))
    assert caught.value.body == {
        "statusCode": 403,
        "message": "Out of call volume quota. Quota will be replenished in 2.12:00:00.",
    }


def test_rate_limit_headers_in_seconds_and_milliseconds(azure_sim: SimServer) -> None:
    azure_sim.script(Fault("rate_limit", retry_after=1.5))
    with pytest.raises(openai.RateLimitError) as caught:
        chat(azure_client(azure_sim))
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "1500")
    assert "Please retry after 2 seconds" in caught.value.message


def test_filtered_prompt_names_the_category(azure_sim: SimServer) -> None:
    azure_sim.script(Fault("content_filter", variant="prompt"))
    with pytest.raises(openai.BadRequestError) as caught:
        chat(azure_client(azure_sim))
    error = caught.value.response.json()["error"]
    assert error["param"] == "prompt"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["violence"] == {
        "filtered": True,
        "severity": "high",
    }


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_filtered_answer_is_200_with_content_filter(azure_sim: SimServer, stream: bool) -> None:
    azure_sim.script(Fault("content_filter"))
    client = azure_client(azure_sim)
    if stream:
        chunks = [c for c in chat(client, stream=True) if c.choices]
        last = chunks[-1].choices[0]
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""
    else:
        last = chat(client).choices[0]
        assert not last.message.content
    assert last.finish_reason == "content_filter"
    assert (last.model_extra or {})["content_filter_results"]["violence"]["filtered"] is True


def test_stream_wire_format(azure_sim: SimServer) -> None:
    response = httpx.post(
        f"{azure_sim.base_url}/openai/deployments/sim-model/chat/completions",
        params={"api-version": API_VERSION},
        json={"messages": MESSAGES, "stream": True},
        headers={"api-key": KEY},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["apim-request-id"]
    events = sse_events(response.content)
    assert events[-1][1] == "[DONE]"
    parsed = [json.loads(data) for _, data in events[:-1]]
    assert parsed[0]["choices"] == [] and parsed[0]["prompt_filter_results"]
    assert all("usage" not in p for p in parsed)  # no include_usage: no usage at all


def test_streamed_tool_calls_assemble_with_the_sdk(azure_sim: SimServer) -> None:
    call = {"id": "call_w1", "name": "get_weather", "arguments": {"city": "Paris"}}
    azure_sim.responder = lambda body: {"text": "", "tool_calls": [call]}
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    with azure_client(azure_sim).chat.completions.stream(
        model="sim-model", messages=MESSAGES, tools=[tool]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    (got,) = final.choices[0].message.tool_calls
    assert (got.id, got.function.name, got.function.arguments) == (
        "call_w1",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert azure_sim.requests[-1].json["tools"] == [tool]


def test_reset_and_timeout_are_connection_errors(azure_sim: SimServer) -> None:
    azure_sim.script(Fault("reset"), Fault("timeout"))
    client = azure_client(azure_sim, timeout=0.3)
    with pytest.raises(openai.APIConnectionError) as reset:
        chat(client)
    assert not isinstance(reset.value, openai.APITimeoutError)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(client)
    assert time.monotonic() - started < 2
    assert chat(client).choices
