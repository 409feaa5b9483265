"""The Gemini sim, driven by the official google-genai SDK: answers, streams and every fault."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from google.genai import errors, types
from sim_helpers import KEY, PROMPT, REPLY, google_client, sse_events, transport_errors

from rolecall.sim import Fault, SimServer


def _generate(client: Any, model: str = "sim-model") -> Any:
    return client.models.generate_content(model=model, contents=PROMPT)


def _stream(client: Any) -> list[Any]:
    return list(client.models.generate_content_stream(model="sim-model", contents=PROMPT))


def test_answer_has_text_usage_and_model(google_sim: SimServer) -> None:
    config = types.GenerateContentConfig(system_instruction="Be brief now")
    reply = google_sim_client_call(google_sim, config)

    assert reply.text == REPLY
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.model_version == "sim-model"
    assert reply.usage_metadata.prompt_token_count == 9  # system instruction counts
    assert reply.usage_metadata.candidates_token_count == 4


def google_sim_client_call(server: SimServer, config: Any) -> Any:
    client = google_client(server)  # keep a reference: a collected Client closes its pool
    return client.models.generate_content(model="sim-model", contents=PROMPT, config=config)


def test_sdk_stream_text_and_usage(google_sim: SimServer) -> None:
    chunks = _stream(google_client(google_sim))
    assert "".join(c.text or "" for c in chunks) == REPLY
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 4
    assert chunks[-1].usage_metadata.prompt_token_count == 6


def test_stream_wire_format(google_sim: SimServer) -> None:
    response = httpx.post(
        f"{google_sim.base_url}/v1beta/models/sim-model:streamGenerateContent?alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
        headers={"x-goog-api-key": KEY},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert b"\r\n\r\n" in response.content
    events = sse_events(response.content)
    assert all(name is None for name, _ in events)
    chunks = [json.loads(data) for _, data in events]  # no [DONE]: every chunk is JSON
    assert all("usageMetadata" in c for c in chunks)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_v1beta_paths_and_key_in_query_is_accepted_but_recorded(google_sim: SimServer) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    response = httpx.post(
        f"{google_sim.base_url}/v1beta/models/sim-model:generateContent",
        params={"key": KEY},
        json=body,
    )
    assert response.status_code == 200
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"] == REPLY
    sent = google_sim.requests[-1]
    assert sent.query == {"key": KEY} and sent.api_key == KEY
    assert "x-goog-api-key" not in sent.headers


def test_model_get_checks_the_key(google_sim: SimServer) -> None:
    client = google_client(google_sim)
    assert client.models.get(model="sim-model").name == "models/sim-model"
    with pytest.raises(errors.ClientError) as unknown:
        client.models.get(model="gemini-9")
    assert unknown.value.code == 404
    wrong = google_client(google_sim, key="wrong")
    with pytest.raises(errors.ClientError) as bad_key:
        wrong.models.get(model="sim-model")
    assert bad_key.value.code == 400
    assert google_sim.model_calls == 3 and google_sim.calls == 0


def test_wrong_key_is_400_api_key_invalid(google_sim: SimServer) -> None:
    with pytest.raises(errors.ClientError) as caught:
        _generate(google_client(google_sim, key="wrong-key"))
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    reasons = [d.get("reason") for d in caught.value.details["error"]["details"]]
    assert "API_KEY_INVALID" in reasons


def test_missing_key_is_403_permission_denied(google_sim: SimServer) -> None:
    response = httpx.post(
        f"{google_sim.base_url}/v1beta/models/sim-model:generateContent",
        json={"contents": [{"parts": [{"text": PROMPT}]}]},
    )
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


def _details(error: errors.APIError) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = error.details["error"].get("details", [])
    return details


def _detail(error: errors.APIError, kind: str) -> dict[str, Any]:
    return next(d for d in _details(error) if d["@type"].endswith(kind))


ERRORS: list[tuple[Fault, type[errors.APIError], int, str]] = [
    (Fault("auth"), errors.ClientError, 400, "INVALID_ARGUMENT"),
    (Fault("permission"), errors.ClientError, 403, "PERMISSION_DENIED"),
    (Fault("region"), errors.ClientError, 400, "FAILED_PRECONDITION"),
    (Fault("not_found"), errors.ClientError, 404, "NOT_FOUND"),
    (Fault("quota"), errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    (Fault("rate_limit"), errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    (Fault("overloaded"), errors.ServerError, 503, "UNAVAILABLE"),
    (Fault("server"), errors.ServerError, 500, "INTERNAL"),
    (Fault("server", status=504), errors.ServerError, 504, "DEADLINE_EXCEEDED"),
    (Fault("context_length"), errors.ClientError, 400, "INVALID_ARGUMENT"),
    (Fault("bad_request"), errors.ClientError, 400, "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("fault", "error", "code", "status"), ERRORS, ids=[f"{f.kind}-{f.status}" for f, *_ in ERRORS]
)
def test_error_faults_raise_the_sdk_error(
    google_sim: SimServer,
    fault: Fault,
    error: type[errors.APIError],
    code: int,
    status: str,
    stream: bool,
) -> None:
    google_sim.script(fault)
    client = google_client(google_sim)
    with pytest.raises(error) as caught:
        _stream(client) if stream else _generate(client)
    assert (caught.value.code, caught.value.status) == (code, status)


def test_quota_is_per_day_and_rate_limit_is_per_minute_with_retry_delay(
    google_sim: SimServer,
) -> None:
    google_sim.script(Fault("quota"), Fault("rate_limit", retry_after=3))
    client = google_client(google_sim)
    with pytest.raises(errors.ClientError) as quota:
        _generate(client)
    assert "PerDay" in _detail(quota.value, "QuotaFailure")["violations"][0]["quotaId"]
    assert not any(d["@type"].endswith("RetryInfo") for d in _details(quota.value))

    with pytest.raises(errors.ClientError) as limited:
        _generate(client)
    assert "PerMinute" in _detail(limited.value, "QuotaFailure")["violations"][0]["quotaId"]
    assert _detail(limited.value, "RetryInfo")["retryDelay"] == "3s"


def test_context_length_message(google_sim: SimServer) -> None:
    google_sim.script(Fault("context_length"))
    with pytest.raises(errors.ClientError) as caught:
        _generate(google_client(google_sim))
    assert caught.value.message.startswith("The input token count (")
    assert "exceeds the maximum number of tokens allowed (1048576)." in caught.value.message


def test_permission_with_echo_key_names_the_key(google_sim: SimServer) -> None:
    google_sim.script(Fault("permission", echo_key=True))
    with pytest.raises(errors.ClientError) as caught:
        _generate(google_client(google_sim))
    assert f"api_key:{KEY}" in caught.value.message


def test_bad_gateway_is_a_server_error_with_html(google_sim: SimServer) -> None:
    google_sim.script(Fault("server", status=502))
    with pytest.raises(errors.ServerError) as caught:
        _generate(google_client(google_sim))
    assert caught.value.code == 502


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_safety_block(google_sim: SimServer, stream: bool) -> None:
    google_sim.script(Fault("content_filter"))
    client = google_client(google_sim)
    reply = _stream(client)[-1] if stream else _generate(client)
    assert reply.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert reply.text is None


def test_prompt_block_and_prohibited_content(google_sim: SimServer) -> None:
    google_sim.script(
        Fault("content_filter", variant="prompt"), Fault("content_filter", variant="prohibited")
    )
    client = google_client(google_sim)
    blocked = _generate(client)
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert not blocked.candidates
    prohibited = _generate(client)
    assert prohibited.candidates[0].finish_reason == types.FinishReason.PROHIBITED_CONTENT


def test_empty_and_malformed_answers(google_sim: SimServer) -> None:
    google_sim.script(Fault("empty"), Fault("empty", variant="no_parts"), Fault("malformed"))
    client = google_client(google_sim)
    assert not _generate(client).text
    no_parts = _generate(client)
    assert no_parts.candidates[0].content.parts is None
    assert no_parts.usage_metadata.candidates_token_count is None  # left out when zero
    with pytest.raises(ValueError):
        _generate(client)


def test_stream_error_cuts_the_connection_after_chunks(google_sim: SimServer) -> None:
    google_sim.script(Fault("stream_error", after_chunks=2))
    received: list[str] = []
    client = google_client(google_sim)
    with pytest.raises(transport_errors()):
        for chunk in client.models.generate_content_stream(model="sim-model", contents=PROMPT):
            received.append(chunk.text or "")
    assert "".join(received) == "Hello from"


def test_reset_and_timeout_are_transport_errors(google_sim: SimServer) -> None:
    google_sim.script(Fault("reset"), Fault("timeout"))
    client = google_client(google_sim, timeout=0.3)
    for _ in range(2):
        with pytest.raises(transport_errors()):
            _generate(client)
    assert _generate(client).text == REPLY


def test_response_schema_default_reply_is_json(google_sim: SimServer) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={
            "type": "OBJECT",
            "properties": {"name": {"type": "STRING"}, "count": {"type": "INTEGER"}},
            "required": ["name", "count"],
        },
    )
    reply = google_sim_client_call(google_sim, config)
    assert json.loads(reply.text) == {"name": "sim", "count": 0}


def _weather_call(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": "",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "fc-1"}],
        "reasoning": "The user wants weather.",
        "cached_tokens": 4,
    }


def _tool_config() -> Any:
    declaration = types.FunctionDeclaration(
        name="get_weather",
        description="Weather in a city.",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    return types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def test_sdk_reads_function_calls_thoughts_and_cached_tokens(google_sim: SimServer) -> None:
    google_sim.responder = _weather_call
    reply = google_sim_client_call(google_sim, _tool_config())
    (call,) = reply.function_calls
    assert (call.id, call.name, call.args) == ("fc-1", "get_weather", {"city": "Paris"})
    parts = reply.candidates[0].content.parts
    assert [(p.thought, p.text) for p in parts if p.text] == [(True, "The user wants weather.")]
    assert reply.usage_metadata.cached_content_token_count == 4
    assert reply.usage_metadata.thoughts_token_count == 4
    # The SDK writes proto field names (snake_case); the API takes them as well as camelCase.
    sent = google_sim.requests[-1].json
    declared = sent["tools"][0]["functionDeclarations"][0]
    assert declared["parameters_json_schema"]["properties"] == {"city": {"type": "string"}}
    assert sent["generationConfig"]["thinkingConfig"] == {
        "include_thoughts": True,
        "thinking_budget": 1024,
    }


def test_sdk_stream_has_whole_function_calls(google_sim: SimServer) -> None:
    google_sim.responder = _weather_call
    client = google_client(google_sim)
    chunks = list(
        client.models.generate_content_stream(
            model="sim-model", contents=PROMPT, config=_tool_config()
        )
    )
    calls = [call for chunk in chunks for call in chunk.function_calls or ()]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]
    thoughts = [p.text for c in chunks for p in c.candidates[0].content.parts or () if p.thought]
    assert thoughts == ["The user wants weather."]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_no_thought_parts_unless_asked(google_sim: SimServer) -> None:
    google_sim.responder = lambda body: {"text": REPLY, "reasoning": "Hidden."}
    reply = _generate(google_client(google_sim))
    assert reply.text == REPLY
    assert not any(p.thought for p in reply.candidates[0].content.parts)
    assert reply.usage_metadata.thoughts_token_count is None


def test_sdk_sends_the_function_response_and_gets_the_answer(google_sim: SimServer) -> None:
    google_sim.responder = lambda body: {"text": "It is 21 degrees."}
    call = types.Part.from_function_call(name="get_weather", args={"city": "Paris"})
    result = types.Part.from_function_response(name="get_weather", response={"temp": 21})
    contents = [
        types.Content(role="user", parts=[types.Part.from_text(text=PROMPT)]),
        types.Content(role="model", parts=[call]),
        types.Content(role="user", parts=[result]),
    ]
    client = google_client(google_sim)
    reply = client.models.generate_content(model="sim-model", contents=contents)
    assert reply.text == "It is 21 degrees."
    sent = google_sim.requests[-1].json["contents"][2]["parts"][0]
    assert sent["functionResponse"] == {"name": "get_weather", "response": {"temp": 21}}


@pytest.mark.parametrize(
    "part",
    [
        {"functionResponse": {"name": "f", "response": "21"}},
        {"functionResponse": {"response": {}}},
        {"functionCall": {"name": "f", "args": [1]}},
        {"inlineData": {"data": "AAAA"}},
    ],
)
def test_malformed_parts_are_400_as_gemini_says(google_sim: SimServer, part: Any) -> None:
    response = httpx.post(
        f"{google_sim.base_url}/v1beta/models/sim-model:generateContent",
        json={"contents": [{"role": "user", "parts": [part]}]},
        headers={"x-goog-api-key": KEY},
    )
    assert response.status_code == 400
    assert "contents[0].parts[0]" in response.json()["error"]["message"]


GEMINI_3 = "gemini-3-pro-preview"


def _tool_turn(model_turn: Any, user_turn: Any = None) -> list[Any]:
    result = types.Part.from_function_response(name="get_weather", response={"temp": 21})
    return [
        user_turn or types.Content(role="user", parts=[types.Part.from_text(text=PROMPT)]),
        model_turn,
        types.Content(role="user", parts=[result]),
    ]


def test_gemini_3_signs_its_calls_and_takes_its_turn_back(google_sim: SimServer) -> None:
    google_sim.models = ()  # every model exists
    google_sim.responder = _weather_call
    client = google_client(google_sim)
    asked = client.models.generate_content(model=GEMINI_3, contents=PROMPT, config=_tool_config())
    model_turn = asked.candidates[0].content
    (signed,) = [p for p in model_turn.parts if p.function_call]
    assert signed.thought_signature  # bytes, as the SDK decodes it
    google_sim.responder = lambda body: {"text": "It is 21 degrees."}
    reply = client.models.generate_content(model=GEMINI_3, contents=_tool_turn(model_turn))
    assert reply.text == "It is 21 degrees."


def test_gemini_3_refuses_a_call_signature_it_never_issued(google_sim: SimServer) -> None:
    google_sim.models = ()
    google_sim.responder = lambda body: {"text": "It is 21 degrees."}
    client = google_client(google_sim)
    call = types.Part.from_function_call(name="get_weather", args={"city": "Paris"})
    forged = call.model_copy(update={"thought_signature": b"forged"})
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(
            model=GEMINI_3, contents=_tool_turn(types.Content(role="model", parts=[forged]))
        )
    assert caught.value.code == 400 and "Corrupted thought signature" in str(caught.value)
    # Google's documented stand-in for a call the model did not make is taken.
    stand_in = call.model_copy(update={"thought_signature": b"skip_thought_signature_validator"})
    turn = _tool_turn(types.Content(role="model", parts=[stand_in]))
    assert client.models.generate_content(model=GEMINI_3, contents=turn).text


def test_gemini_3_refuses_an_unsigned_call_in_the_current_turn(google_sim: SimServer) -> None:
    google_sim.models = ()
    client = google_client(google_sim)
    call = types.Part.from_function_call(name="get_weather", args={"city": "Paris"})
    unsigned = _tool_turn(types.Content(role="model", parts=[call]))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=GEMINI_3, contents=unsigned)
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert "missing a thought_signature" in str(caught.value.message)
    # Older models, and turns before the latest user text, are not checked.
    google_sim.responder = lambda body: {"text": "Fine."}
    assert client.models.generate_content(model="gemini-2.5-pro", contents=unsigned).text
    later = [*unsigned, types.Content(role="model", parts=[types.Part.from_text(text="21.")])]
    later.append(types.Content(role="user", parts=[types.Part.from_text(text="Thanks!")]))
    assert client.models.generate_content(model=GEMINI_3, contents=later).text


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"generationConfig": {"stopSequences": list("abcdef")}}, "stop_sequences"),
        (
            {"toolConfig": {"functionCallingConfig": {"mode": "STRICT"}}},
            "function_calling_config.mode",
        ),
    ],
)
def test_configs_gemini_refuses_get_its_400(
    google_sim: SimServer, extra: dict[str, Any], said: str
) -> None:
    response = httpx.post(
        f"{google_sim.base_url}/v1beta/models/sim-model:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], **extra},
        headers={"x-goog-api-key": KEY},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and said in error["message"]


def test_an_image_type_gemini_cannot_read_gets_its_400(google_sim: SimServer) -> None:
    def part(mime: str) -> dict[str, Any]:
        return {"inlineData": {"mimeType": mime, "data": "AAAA"}}

    url = f"{google_sim.base_url}/v1beta/models/sim-model:generateContent"
    sent = {"contents": [{"role": "user", "parts": [part("image/gif")]}]}
    response = httpx.post(url, json=sent, headers={"x-goog-api-key": KEY})
    assert response.status_code == 400
    assert "Unsupported MIME type: image/gif" in response.json()["error"]["message"]
    for taken in ("image/webp", "application/pdf"):  # a document is no image: taken
        sent = {"contents": [{"role": "user", "parts": [part(taken)]}]}
        assert httpx.post(url, json=sent, headers={"x-goog-api-key": KEY}).status_code == 200
