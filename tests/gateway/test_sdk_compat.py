"""What the official SDKs read off the gateway's answers beyond the body: request ids,
whether to retry, and the model list in each vendor's shape."""

from __future__ import annotations

from datetime import datetime

import anthropic
import httpx2
import openai
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway

from rolecall.sim import Fault, SimServer

ASK = [{"role": "user", "content": "hi"}]


def counting_client() -> tuple[httpx2.Client, list[httpx2.Request]]:
    """The SDKs' HTTP client, noting each request it sends (the SDK's retries too)."""
    sent: list[httpx2.Request] = []
    return httpx2.Client(event_hooks={"request": [sent.append]}), sent


def openai_sdk(gateway: RunningGateway, key: str = GATEWAY_KEY, **options: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=key, timeout=20, **options)  # type: ignore[arg-type]


def anthropic_sdk(
    gateway: RunningGateway, key: str = GATEWAY_KEY, **options: object
) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.server.url, api_key=key, timeout=20, **options)  # type: ignore[arg-type]


# ---- request ids -----------------------------------------------------------------------------


def test_chat_answers_carry_the_task_as_request_id(gateway: RunningGateway) -> None:
    client = openai_sdk(gateway, max_retries=0)
    completion = client.chat.completions.create(model="coder", messages=ASK)  # type: ignore[arg-type]
    task = completion.id.removeprefix("chatcmpl-")
    assert completion._request_id == f"req_{task}"
    with client.chat.completions.with_streaming_response.create(
        model="coder",
        messages=ASK,  # type: ignore[arg-type]
        stream=True,
    ) as streamed:
        chunks = list(streamed.parse())
        assert streamed.request_id == f"req_{chunks[0].id.removeprefix('chatcmpl-')}"


def test_responses_answers_carry_the_task_as_request_id(gateway: RunningGateway) -> None:
    client = openai_sdk(gateway, max_retries=0)
    response = client.responses.create(model="coder", input="hi")
    assert response._request_id == f"req_{response.id.removeprefix('resp_')}"
    with client.responses.with_streaming_response.create(
        model="coder", input="hi", stream=True
    ) as streamed:
        events = list(streamed.parse())
        rid = events[0].response.id  # type: ignore[union-attr]
        assert streamed.request_id == f"req_{rid.removeprefix('resp_')}"


@pytest.mark.parametrize("door", ["chat", "responses"])
def test_every_openai_error_carries_a_request_id(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer, door: str
) -> None:
    def call(client: openai.OpenAI, model: str = "coder") -> object:
        if door == "chat":
            return client.chat.completions.create(model=model, messages=ASK)  # type: ignore[arg-type]
        return client.responses.create(model=model, input="hi")

    primary.script(Fault("server"))
    fallback.script(Fault("server"))
    failures: list[openai.APIStatusError] = []
    for client, model in [
        (openai_sdk(gateway, max_retries=0), "coder"),  # every provider failed
        (openai_sdk(gateway, max_retries=0), "gpt-4o"),  # an unknown model
        (openai_sdk(gateway, key="wrong", max_retries=0), "coder"),  # no gateway key
    ]:
        with pytest.raises(openai.APIStatusError) as caught:
            call(client, model)
        failures.append(caught.value)
    assert [f.status_code for f in failures] == [502, 404, 401]
    ids = [f.request_id for f in failures]
    assert all(rid and rid.startswith("req_") for rid in ids) and len(set(ids)) == 3


def test_count_tokens_carries_a_request_id(gateway: RunningGateway) -> None:
    counted = anthropic_sdk(gateway, max_retries=0).messages.count_tokens(
        model="coder",
        messages=ASK,  # type: ignore[list-item]
    )
    assert counted._request_id and counted._request_id.startswith("req_")


# ---- whether to retry --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["auth", "permission", "quota", "not_found"])
def test_openai_sdk_does_not_retry_what_a_retry_cannot_change(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer, kind: str
) -> None:
    primary.set_faults(Fault(kind))
    fallback.set_faults(Fault(kind))
    http, sent = counting_client()
    with pytest.raises(openai.APIStatusError) as caught:
        openai_sdk(gateway, http_client=http).chat.completions.create(
            model="coder",
            messages=ASK,  # type: ignore[arg-type]
        )
    assert caught.value.status_code >= 500
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(sent) == 1  # not the SDK's default two retries more


def test_anthropic_sdk_does_not_retry_what_a_retry_cannot_change(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.set_faults(Fault("auth"))
    fallback.set_faults(Fault("quota"))
    http, sent = counting_client()
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_sdk(gateway, http_client=http).messages.create(
            model="coder",
            max_tokens=20,
            messages=ASK,  # type: ignore[list-item]
        )
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(sent) == 1


def test_a_failure_a_retry_may_cure_says_so(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.script(Fault("auth"))  # disabled for good, but the fallback is only down now
    fallback.script(Fault("server"))
    http, sent = counting_client()
    completion = openai_sdk(gateway, http_client=http, max_retries=1).chat.completions.create(
        model="coder",
        messages=ASK,  # type: ignore[arg-type]
    )
    assert completion.choices[0].message.content == "answer from B"
    assert len(sent) == 2
    primary.set_faults(Fault("server"))
    fallback.set_faults(Fault("server"))
    with pytest.raises(openai.InternalServerError) as caught:
        openai_sdk(gateway, max_retries=0).chat.completions.create(
            model="coder",
            messages=ASK,  # type: ignore[arg-type]
        )
    assert caught.value.response.headers["x-should-retry"] == "true"


# ---- the model list in Anthropic's shape -------------------------------------------------------


def test_anthropic_sdk_lists_models_in_its_shape(gateway: RunningGateway) -> None:
    client = anthropic_sdk(gateway, max_retries=0)
    page = client.models.list()
    ids = [model.id for model in page.data]
    assert {"coder", "reviewer", "a", "b"} <= set(ids)
    assert all(model.type == "model" and model.display_name for model in page.data)
    assert all(isinstance(model.created_at, datetime) for model in page.data)
    assert (page.first_id, page.last_id, page.has_more) == (ids[0], ids[-1], False)
    assert [model.id for model in client.models.list(limit=1, after_id=ids[0])] == ids[1:]
    second = client.models.list(limit=1, after_id=ids[0])
    assert [m.id for m in second.data] == [ids[1]] and second.has_more == (len(ids) > 2)
    coder = client.models.retrieve("coder")
    assert (coder.id, coder.type) == ("coder", "model") and "coder" in coder.display_name
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-nope")
    assert "claude-nope" in caught.value.message
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.models.list(limit=0)
    assert "limit" in refused.value.message


def test_openai_sdk_still_lists_models_in_its_shape(gateway: RunningGateway) -> None:
    page = openai_sdk(gateway, max_retries=0).models.list()
    assert all(model.object == "model" and model.owned_by for model in page.data)


def test_anthropic_sdk_gets_anthropics_error_shape_from_the_model_list(
    gateway: RunningGateway,
) -> None:
    client = anthropic_sdk(gateway, key="wrong", max_retries=0)
    for call in (client.models.list, lambda: client.models.retrieve("coder")):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            call()
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "error", body
        assert body["error"]["type"] == "authentication_error"
        assert "gateway.keys" in body["error"]["message"]


# ---- the parameter a request is refused for ----------------------------------------------------


def test_a_parameter_no_provider_takes_is_named_as_the_client_wrote_it(
    gateway: RunningGateway, fallback: SimServer
) -> None:
    client = openai_sdk(gateway, max_retries=0)
    # The role `reviewer` is served by an Anthropic provider alone, which has no verbosity.
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model="reviewer", messages=ASK, verbosity="low")  # type: ignore[arg-type]
    assert chat.value.param == "verbosity"
    assert chat.value.code == "unsupported"
    with pytest.raises(openai.BadRequestError) as answer:
        client.responses.create(model="reviewer", input="hi", text={"verbosity": "low"})
    assert answer.value.param == "text.verbosity"
    assert "400 - text.verbosity (passed on as 'verbosity')" in answer.value.message
    assert fallback.calls == 0


# ---- client text in error messages -----------------------------------------------------------


def test_client_text_in_an_error_message_shows_its_control_characters_escaped(
    gateway: RunningGateway,
) -> None:
    client = openai_sdk(gateway, max_retries=0)
    with pytest.raises(openai.NotFoundError) as path:
        client.models.retrieve("coder\r\nX")
    assert "/v1/models/coder\\r\\nX" in path.value.message
    with pytest.raises(openai.NotFoundError) as model:
        client.chat.completions.create(model="x\r\x1b[2Jy", messages=ASK)  # type: ignore[arg-type]
    assert "model 'x\\r\\x1b[2Jy'" in model.value.message
    with pytest.raises(anthropic.NotFoundError) as named:
        anthropic_sdk(gateway, max_retries=0).messages.create(
            model="x\x1b]0;owned\x07y",
            max_tokens=20,
            messages=ASK,  # type: ignore[list-item]
        )
    assert "model 'x\\x1b]0;owned\\x07y'" in named.value.message
    for failure in (path.value, model.value, named.value):
        assert not any(ch in failure.message for ch in "\r\x1b\x07")
