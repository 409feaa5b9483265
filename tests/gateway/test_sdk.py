"""The official openai SDK pointed at the gateway: answers, streams, fallback, errors."""

from __future__ import annotations

import openai
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway

from rolecall.sim import Fault, SimServer


def sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)


def ask(client: openai.OpenAI, model: str = "coder", **kwargs: object) -> object:
    return client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        **kwargs,  # type: ignore[arg-type]
    )


def test_answer_for_coder(gateway: RunningGateway, primary: SimServer) -> None:
    raw = ask(sdk(gateway), temperature=0.1, max_completion_tokens=50)
    completion = raw.parse()  # type: ignore[attr-defined]
    assert completion.choices[0].message.content == "answer from A"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "model-a"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.id.startswith("chatcmpl-")
    headers = raw.headers  # type: ignore[attr-defined]
    assert headers["x-rolecall-provider"] == "a"
    assert headers["x-rolecall-attempts"] == "1"
    assert headers["x-rolecall-role"] == "coder"
    sent = primary.requests[-1].json
    assert sent["model"] == "model-a"
    assert sent["temperature"] == 0.1
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}


def test_streamed_answer_with_usage(gateway: RunningGateway) -> None:
    client = sdk(gateway)
    with client.chat.completions.with_streaming_response.create(
        model="coder",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-rolecall-provider"] == "a"
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "answer from A"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].model == "model-a"


def test_fallback_answers_when_primary_fails(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.script(Fault("server"))
    raw = ask(sdk(gateway))
    completion = raw.parse()  # type: ignore[attr-defined]
    assert completion.choices[0].message.content == "answer from B"
    assert completion.model == "model-b"
    assert raw.headers["x-rolecall-provider"] == "b"  # type: ignore[attr-defined]
    assert raw.headers["x-rolecall-attempts"] == "2"  # type: ignore[attr-defined]
    assert primary.calls == 1 and fallback.calls == 1


def test_stream_falls_back_before_first_text(gateway: RunningGateway, primary: SimServer) -> None:
    primary.script(Fault("overloaded"))
    with sdk(gateway).chat.completions.with_streaming_response.create(
        model="coder", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        assert response.headers["x-rolecall-provider"] == "b"
        assert response.headers["x-rolecall-attempts"] == "2"
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "answer from B"
    assert chunks[-1].model == "model-b"


def test_provider_id_calls_that_provider_alone(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    raw = ask(sdk(gateway), model="b")
    assert raw.parse().choices[0].message.content == "answer from B"  # type: ignore[attr-defined]
    assert raw.headers["x-rolecall-provider"] == "b"  # type: ignore[attr-defined]
    assert primary.calls == 0
    fallback.script(Fault("server"))
    with pytest.raises(openai.InternalServerError) as caught:
        ask(sdk(gateway), model="b")
    assert caught.value.status_code == 502
    assert primary.calls == 0  # no fallback when a provider is named


def test_stream_cut_after_text_ends_with_error_naming_provider(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.script(Fault("stream_error", after_chunks=2))
    stream = sdk(gateway).chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received)  # text arrived before the failure
    assert "'a'" in caught.value.message or "provider a" in caught.value.message
    assert fallback.calls == 0  # never handed over after text


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault("rate_limit", retry_after=30), openai.RateLimitError, 429),
        (Fault("overloaded"), openai.InternalServerError, 503),
        (Fault("server"), openai.InternalServerError, 502),
    ],
)
def test_all_providers_failed_statuses(
    gateway: RunningGateway,
    primary: SimServer,
    fallback: SimServer,
    fault: Fault,
    error: type[openai.APIStatusError],
    status: int,
) -> None:
    primary.script(fault)
    fallback.script(fault)
    with pytest.raises(error) as caught:
        ask(sdk(gateway))
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and set(body) >= {"message", "type", "code"}
    assert "coder" in body["message"]


def test_stream_that_never_starts_gets_http_error(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.script(Fault("server"))
    fallback.script(Fault("server"))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway).chat.completions.create(
            model="coder", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert caught.value.status_code == 502


def test_structured_output_schema_reaches_provider(
    gateway: RunningGateway, primary: SimServer
) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    completion = sdk(gateway).chat.completions.create(
        model="coder",
        messages=[{"role": "user", "content": "a number"}],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    )
    assert completion.choices[0].message.content is not None
    sent = primary.requests[-1].json
    assert sent["response_format"]["json_schema"]["schema"]["properties"] == schema["properties"]


def test_models_list(gateway: RunningGateway) -> None:
    ids = [m.id for m in sdk(gateway).models.list()]
    assert {"coder", "reviewer", "a", "b"} <= set(ids)
    assert sdk(gateway).models.retrieve("coder").id == "coder"
    with pytest.raises(openai.NotFoundError):
        sdk(gateway).models.retrieve("gpt-4o")


def test_unknown_model_is_404_listing_valid_names(gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ask(sdk(gateway), model="gpt-4o")
    message = caught.value.body["message"]  # type: ignore[index]
    assert "gpt-4o" in message and "coder" in message and "reviewer" in message
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_builtin_role_without_provider_is_404(gateway: RunningGateway) -> None:
    # planner is a built-in role; this config assigns it nothing and has no default_provider
    with pytest.raises(openai.NotFoundError) as caught:
        ask(sdk(gateway), model="planner")
    assert "planner" in caught.value.message
