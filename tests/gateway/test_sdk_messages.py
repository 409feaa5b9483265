"""The official anthropic SDK pointed at the gateway, served by OpenAI- and Gemini-protocol sims.

``coder`` is served by an OpenAI-protocol provider (falling back to Gemini),
``clarifier`` by Gemini alone; Claude Code's default model names are aliases for
them. What each vendor received is read from the sim's recorded requests.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from gateway_helpers import FALLBACK_KEY, GATEWAY_KEY, PRIMARY_KEY, RunningGateway

from rolecall.sim import Fault, SimServer

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
PNG_DATA = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture
def gpt() -> Iterator[SimServer]:
    with SimServer("openai", api_key=PRIMARY_KEY, models=("gpt-sim",), reply="from gpt") as s:
        yield s


@pytest.fixture
def gemini() -> Iterator[SimServer]:
    with SimServer(
        "google", api_key=FALLBACK_KEY, models=("gemini-sim",), reply="from gemini"
    ) as s:
        yield s


def write_config(tmp_path: Path, gpt: SimServer, gemini: SimServer, extra: str = "") -> Path:
    (tmp_path / ".env").write_text(
        f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\nGATEWAY_KEY={GATEWAY_KEY}\n"
    )
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            providers:
              o: {{type: openai, model: gpt-sim, base_url: "{gpt.base_url}",
                  api_key: "${{PRIMARY_KEY}}"}}
              g: {{type: google, model: gemini-sim, base_url: "{gemini.base_url}",
                  api_key: "${{FALLBACK_KEY}}"}}
            roles:
              coder: {{provider: o, fallback: [g]}}
              clarifier: {{provider: g}}
            retry: {{max_attempts: 1, initial_backoff: 10ms}}
            metrics:
              url: sqlite:///{tmp_path}/rolecall.db
              runs_dir: {tmp_path}/runs
              flush_interval: 50ms
            gateway:
              keys: ["${{GATEWAY_KEY}}"]
              model_aliases: {{claude-sonnet-4-5: coder, claude-haiku-4-5: clarifier}}
            """
        )
        + extra
    )
    return path


@pytest.fixture
def gateway(
    tmp_path: Path,
    gpt: SimServer,
    gemini: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> RunningGateway:
    return start_gateway(write_config(tmp_path, gpt, gemini))


def sdk(gateway: RunningGateway, key: str = GATEWAY_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.server.url, api_key=key, max_retries=0, timeout=20)


def sent(sim: SimServer) -> dict[str, Any]:
    body = sim.requests[-1].json
    assert isinstance(body, dict)
    return body


# Responders: call get_weather first, then answer from the tool result -------------------
def gpt_weather(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"text": f"It is {json.loads(last['content'])['temp']} degrees."}
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "", "tool_calls": [call]}


def gemini_weather(body: dict[str, Any]) -> dict[str, Any]:
    parts = body["contents"][-1]["parts"]
    results = [p["functionResponse"] for p in parts if "functionResponse" in p]
    if results:
        return {"text": f"It is {results[0]['response']['temp']} degrees."}
    call = {"id": "fc_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "", "tool_calls": [call]}


def first_turn(client: anthropic.Anthropic, model: str, stream: bool) -> Any:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 200,
        "messages": ASK,
        "tools": [WEATHER_TOOL],
        "system": "Answer briefly.",
    }
    if stream:
        with client.messages.stream(**kwargs) as events:
            return events.get_final_message()
    return client.messages.create(**kwargs)


def second_turn(client: anthropic.Anthropic, model: str, first: Any, stream: bool) -> Any:
    (call,) = [block for block in first.content if block.type == "tool_use"]
    messages = [
        *ASK,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": '{"temp": 18}'}],
        },
    ]
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 200,
        "messages": messages,
        "tools": [WEATHER_TOOL],
    }
    if stream:
        with client.messages.stream(**kwargs) as events:
            return events.get_final_message()
    return client.messages.with_raw_response.create(**kwargs).parse()


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_round_trip_served_by_an_openai_provider(
    gateway: RunningGateway, gpt: SimServer, gemini: SimServer, stream: bool
) -> None:
    gpt.responder = gpt_weather
    client = sdk(gateway)
    first = first_turn(client, "coder", stream)
    assert first.stop_reason == "tool_use" and first.model == "gpt-sim"
    assert first.id.startswith("msg_")
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert (call.id, call.name, call.input) == ("call_1", "get_weather", {"city": "Paris"})
    vendor = sent(gpt)
    assert vendor["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert vendor["tools"][0]["function"]["name"] == "get_weather"
    assert vendor["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]
    assert vendor["max_completion_tokens"] == 200

    final = second_turn(client, "coder", first, stream)
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == "It is 18 degrees."
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    messages = sent(gpt)["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == "call_1"
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'}
    assert gemini.calls == 0


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_round_trip_served_by_gemini(
    gateway: RunningGateway, gemini: SimServer, stream: bool
) -> None:
    gemini.responder = gemini_weather
    client = sdk(gateway)
    first = first_turn(client, "clarifier", stream)
    assert first.stop_reason == "tool_use" and first.model == "gemini-sim"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    vendor = sent(gemini)
    declared = vendor["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather"
    assert vendor["systemInstruction"]["parts"][0]["text"] == "Answer briefly."

    final = second_turn(client, "clarifier", first, stream)
    assert final.content[0].text == "It is 18 degrees."
    parts = sent(gemini)["contents"][-1]["parts"]
    assert parts[0]["functionResponse"] == {"name": "get_weather", "response": {"temp": 18}}


def test_system_blocks_stay_apart_for_gemini(gateway: RunningGateway, gemini: SimServer) -> None:
    system = [
        {"type": "text", "text": "Answer briefly.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in French."},
    ]
    sdk(gateway).messages.create(
        model="clarifier",
        max_tokens=50,
        system=system,
        messages=ASK,  # type: ignore[arg-type]
    )
    assert sent(gemini)["systemInstruction"] == {
        "parts": [{"text": "Answer briefly."}, {"text": "Answer in French."}]
    }


def test_streamed_text_arrives_in_anthropics_events(gateway: RunningGateway) -> None:
    with sdk(gateway).messages.stream(
        model="coder", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as events:
        kinds = [event.type for event in events]
        final = events.get_final_message()
        headers = events.response.headers
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "message_delta" in kinds
    assert final.content[0].text == "from gpt"
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-rolecall-provider"] == "o"
    assert headers["request-id"] == f"req_{final.id.removeprefix('msg_')}"


@pytest.mark.parametrize("role", ["coder", "clarifier"])
def test_images_reach_the_vendor(
    gateway: RunningGateway, gpt: SimServer, gemini: SimServer, role: str
) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA},
    }
    content = [{"type": "text", "text": "What is this?"}, image]
    sdk(gateway).messages.create(
        model=role, max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    if role == "coder":
        parts = sent(gpt)["messages"][-1]["content"]
        assert parts[1] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"},
        }
    else:
        parts = sent(gemini)["contents"][-1]["parts"]
        assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG_DATA}}


def test_fallback_mid_conversation_shows_only_in_headers(
    gateway: RunningGateway, gpt: SimServer, gemini: SimServer
) -> None:
    gpt.responder = gpt_weather
    gemini.responder = gemini_weather
    client = sdk(gateway)
    first = first_turn(client, "claude-sonnet-4-5", stream=False)
    assert first.model == "gpt-sim"
    gpt.script(Fault("server"))  # the primary fails on turn 2: Gemini takes the conversation
    (call,) = [block for block in first.content if block.type == "tool_use"]
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[
            *ASK,  # type: ignore[list-item]
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": '{"temp": 18}'}
                ],
            },
        ],
    )
    final = raw.parse()
    assert final.content[0].text == "It is 18 degrees." and final.stop_reason == "end_turn"
    assert raw.headers["x-rolecall-provider"] == "g"
    assert raw.headers["x-rolecall-attempts"] == "2"
    assert raw.headers["x-rolecall-role"] == "coder"
    # Gemini got the whole conversation, OpenAI's tool call included
    contents = sent(gemini)["contents"]
    assert contents[1]["parts"][0]["functionCall"] == {
        "name": "get_weather",
        "args": {"city": "Paris"},
    }


def test_alias_and_role_header_pick_the_role(
    gateway: RunningGateway, gpt: SimServer, gemini: SimServer
) -> None:
    client = sdk(gateway)
    ask = [{"role": "user", "content": "hi"}]
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        messages=ask,  # type: ignore[arg-type]
    )
    assert raw.parse().content[0].text == "from gemini"  # type: ignore[union-attr]
    assert raw.headers["x-rolecall-role"] == "clarifier"
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        messages=ask,  # type: ignore[arg-type]
        extra_headers={"x-rolecall-role": "coder"},
    )
    assert raw.parse().model == "gpt-sim"
    assert raw.headers["x-rolecall-role"] == "coder"


def test_bad_key_is_an_authentication_error(gateway: RunningGateway, gpt: SimServer) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        sdk(gateway, key="not-the-key").messages.create(
            model="coder", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    assert gpt.calls == 0


def test_bearer_key_is_accepted(gateway: RunningGateway) -> None:
    client = anthropic.Anthropic(
        base_url=gateway.server.url, auth_token=GATEWAY_KEY, api_key=None, max_retries=0
    )
    reply = client.messages.create(
        model="coder", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content[0].text == "from gpt"  # type: ignore[union-attr]


def test_unknown_model_is_not_found(gateway: RunningGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk(gateway).messages.create(
            model="claude-opus-9", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    body = caught.value.body
    assert body["type"] == "error"  # type: ignore[index]
    assert body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "claude-opus-9" in body["error"]["message"] and "coder" in body["error"]["message"]  # type: ignore[index]


def test_an_endpoint_the_gateway_lacks_is_anthropics_not_found(gateway: RunningGateway) -> None:
    # The Message Batches API is not served: the SDK gets Anthropic's error shape, path named.
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk(gateway).messages.batches.list()
    body = caught.value.body
    assert body["type"] == "error"  # type: ignore[index]
    assert body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "no route GET /v1/messages/batches" in body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault("rate_limit", retry_after=30), anthropic.RateLimitError, 429),
        (Fault("overloaded"), anthropic.InternalServerError, 529),
        (Fault("server"), anthropic.InternalServerError, 500),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_every_provider_failing_is_a_typed_error(
    gateway: RunningGateway,
    gpt: SimServer,
    gemini: SimServer,
    fault: Fault,
    error: type[anthropic.APIStatusError],
    status: int,
    stream: bool,
) -> None:
    gpt.script(fault)
    gemini.script(fault)
    kwargs: dict[str, Any] = {
        "model": "coder",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with pytest.raises(error) as caught:
        if stream:
            with sdk(gateway).messages.stream(**kwargs) as events:
                events.get_final_message()
        else:
            sdk(gateway).messages.create(**kwargs)
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert "coder" in caught.value.body["error"]["message"]  # type: ignore[index]


def test_failure_after_content_ends_with_an_error_event(
    gateway: RunningGateway, gpt: SimServer, gemini: SimServer
) -> None:
    gpt.script(Fault("stream_error", after_chunks=2))
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk(gateway).messages.stream(
            model="coder", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as events,
    ):
        received.extend(events.text_stream)
    assert "".join(received)  # text arrived before the failure
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert "'o'" in caught.value.body["error"]["message"]  # type: ignore[index]
    assert gemini.calls == 0  # never handed over after content


def test_unknown_field_is_a_400_naming_it(gateway: RunningGateway, gpt: SimServer) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(gateway).messages.create(
            model="coder",
            max_tokens=20,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"temprature": 0.5},
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "temprature" in caught.value.body["error"]["message"]  # type: ignore[index]
    assert gpt.calls == 0


def test_claude_code_fields_are_accepted(gateway: RunningGateway, gpt: SimServer) -> None:
    reply = sdk(gateway).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=20,
        messages=[{"role": "user", "content": "hi"}],
        metadata={"user_id": "user_abc"},
        service_tier="auto",
        extra_body={"context_management": {"edits": []}, "mcp_servers": []},
    )
    assert reply.content[0].text == "from gpt"  # type: ignore[union-attr]
    assert "metadata" not in sent(gpt) and "context_management" not in sent(gpt)


def test_count_tokens_is_an_estimate(gateway: RunningGateway, gpt: SimServer) -> None:
    client = sdk(gateway)
    raw = client.messages.with_raw_response.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "word " * 400}]
    )
    assert raw.headers["x-rolecall-token-count"] == "estimate"
    assert 400 < raw.parse().input_tokens < 700
    assert gpt.calls == 0
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "hi"}])


def test_too_large_body_is_anthropics_413(gateway: RunningGateway) -> None:
    big = "x" * (5 * 1024 * 1024)
    with httpx.Client(base_url=gateway.server.url, timeout=20) as client:
        response = client.post(
            "/v1/messages",
            headers={"x-api-key": GATEWAY_KEY},
            json={
                "model": "coder",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": big}],
            },
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert response.headers["request-id"].startswith("req_")


def test_tasks_record_the_messages_dialect(gateway: RunningGateway, tmp_path: Path) -> None:
    reply = sdk(gateway).messages.create(
        model="coder", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    gateway.stop()
    with sqlite3.connect(tmp_path / "rolecall.db") as db:
        rows = list(db.execute("SELECT task_id, dialect FROM tasks"))
    assert rows == [(reply.id.removeprefix("msg_"), "messages")]


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_thinking_comes_back_as_thinking_blocks(
    gateway: RunningGateway, gemini: SimServer, stream: bool
) -> None:
    gemini.responder = lambda body: {"text": "Paris.", "reasoning": "France's capital"}
    kwargs: dict[str, Any] = {
        "model": "clarifier",
        "max_tokens": 4000,
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    client = sdk(gateway)
    if stream:
        with client.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "France's capital"  # type: ignore[union-attr]
    assert message.content[1].text == "Paris."  # type: ignore[union-attr]
    thinking = sent(gemini)["generationConfig"]["thinkingConfig"]
    assert thinking["includeThoughts"] is True and thinking["thinkingBudget"] > 0


def test_thinking_reaches_an_openai_provider_as_effort_and_top_k_skips_it(
    gateway: RunningGateway, gpt: SimServer, gemini: SimServer
) -> None:
    client = sdk(gateway)
    thinking: Any = {"type": "enabled", "budget_tokens": 16384}
    hi: Any = [{"role": "user", "content": "hi"}]
    client.messages.create(model="coder", max_tokens=20000, messages=hi, thinking=thinking)
    openai_body = sent(gpt)
    assert openai_body["reasoning_effort"] == "high"
    assert "thinking" not in openai_body  # carried by reasoning_effort
    # OpenAI has no top_k: the provider is skipped, not sent the call without it.
    reply = client.messages.create(
        model="coder", max_tokens=20000, messages=hi, thinking=thinking, extra_body={"top_k": 5}
    )
    assert reply.content[-1].text == "from gemini"  # type: ignore[union-attr]
    assert gpt.calls == 1
    assert sent(gemini)["generationConfig"]["topK"] == 5


def test_a_model_without_reasoning_answers_thinking_requests_when_configured(
    tmp_path: Path, gpt: SimServer, gemini: SimServer, start_gateway: Callable[..., RunningGateway]
) -> None:
    extra = "drop_params: [thinking, reasoning_effort]\n"
    path = write_config(tmp_path, gpt, gemini, extra)
    path.write_text(
        path.read_text().replace(
            'api_key: "${PRIMARY_KEY}"}',
            'api_key: "${PRIMARY_KEY}", capabilities: {thinking: false}}',
        )
    )
    gateway = start_gateway(path)
    reply = sdk(gateway).messages.create(
        model="coder",
        max_tokens=4000,
        messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    assert reply.content[0].text == "from gpt"  # type: ignore[union-attr]
    assert "reasoning_effort" not in sent(gpt) and gemini.calls == 0
