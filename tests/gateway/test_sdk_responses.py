"""The official openai SDK's Responses API against the gateway, served by any provider.

``reviewer`` routes to ``b``, an Anthropic-protocol sim; ``coder`` to ``a`` (OpenAI
protocol) with ``b`` as its fallback. What each vendor received is read from the sims.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway, wait_for

from rolecall.sim import Fault, SimServer

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
ASK: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]


def sdk(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.url,
        api_key=GATEWAY_KEY,
        max_retries=0,
        timeout=20,
        default_headers=headers or None,
    )


def _sent(sim: SimServer) -> dict[str, Any]:
    body = sim.requests[-1].json
    assert isinstance(body, dict)
    return body


def _anthropic_weather(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]
    blocks = last["content"] if isinstance(last["content"], list) else []
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if results:
        return {"text": f"It is {json.loads(results[0]['content'])['temp']} degrees."}
    call = {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "Let me look.", "tool_calls": [call]}


def _second_turn(first_output: list[Any]) -> list[Any]:
    """The whole conversation again (the gateway keeps none): the first answer, its output."""
    outputs = [item.model_dump(exclude_none=True) for item in first_output]
    result = {"type": "function_call_output", "call_id": "toolu_1", "output": '{"temp": 18}'}
    return [*ASK, *outputs, result]


def test_whole_answer(gateway: RunningGateway, primary: SimServer) -> None:
    raw = sdk(gateway).responses.with_raw_response.create(
        model="coder", instructions="be brief", input="hi", temperature=0.1, max_output_tokens=50
    )
    response = raw.parse()
    assert response.output_text == "answer from A"
    assert response.status == "completed" and response.object == "response"
    assert response.id.startswith("resp_") and response.model == "model-a"
    assert response.instructions == "be brief"
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert raw.headers["x-rolecall-provider"] == "a" and raw.headers["x-rolecall-role"] == "coder"
    sent = _sent(primary)
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert sent["temperature"] == 0.1 and sent["max_tokens"] == 50


def test_cut_short_is_incomplete(gateway: RunningGateway, primary: SimServer) -> None:
    primary.responder = lambda body: {"text": "a long", "finish": "length"}
    response = sdk(gateway).responses.create(model="coder", input="hi", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "a long"


def test_tool_round_trip_whole_served_by_anthropic(
    gateway: RunningGateway, fallback: SimServer
) -> None:
    fallback.responder = _anthropic_weather
    client = sdk(gateway)
    first = client.responses.create(model="reviewer", input=ASK, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
    message, call = first.output
    assert message.type == "message" and first.output_text == "Let me look."
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "toolu_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert first.status == "completed" and first.model == "model-b"
    tool = _sent(fallback)["tools"][0]
    assert (tool["name"], tool["input_schema"]) == ("get_weather", WEATHER_TOOL["parameters"])

    second = client.responses.create(
        model="reviewer",
        input=_second_turn(first.output),
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert second.output_text == "It is 18 degrees."
    turns = _sent(fallback)["messages"]
    assert [block["type"] for block in turns[1]["content"]] == ["text", "tool_use"]
    assert turns[2]["content"][0]["tool_use_id"] == "toolu_1"


def test_tool_round_trip_streamed_served_by_anthropic(
    gateway: RunningGateway, fallback: SimServer
) -> None:
    fallback.responder = _anthropic_weather
    client = sdk(gateway)
    with client.responses.stream(model="reviewer", input=ASK, tools=[WEATHER_TOOL]) as stream:  # type: ignore[arg-type,list-item]
        events = list(stream)
        first = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == first.output_text == "Let me look."
    call = first.output[-1]
    assert call.type == "function_call" and call.call_id == "toolu_1"
    assert json.loads(call.arguments) == {"city": "Paris"}

    stream2 = client.responses.create(
        model="reviewer",
        input=_second_turn(first.output),
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    events2 = list(stream2)
    final = events2[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "It is 18 degrees."
    deltas = "".join(e.delta for e in events2 if e.type == "response.output_text.delta")
    assert deltas == "It is 18 degrees."


# Codex CLI's default tools: functions grouped under a namespace, and OpenAI's web search.
AGENT_TOOLS: list[Any] = [
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "wait_agent",
                "description": "Wait for an agent.",
                "strict": False,
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
            }
        ],
    },
    {"type": "web_search", "external_web_access": False},
]


def _anthropic_agents(body: dict[str, Any]) -> dict[str, Any]:
    blocks = body["messages"][-1]["content"]
    results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    if results:
        return {"text": f"The agent said {results[0]['content']}."}
    call = {"id": "toolu_9", "name": "multi_agent_v1__wait_agent", "arguments": {"id": "a1"}}
    return {"text": "", "tool_calls": [call]}


@pytest.mark.parametrize("stream", [False, True])
def test_namespace_tool_round_trip_and_web_search_left_out(
    gateway: RunningGateway, fallback: SimServer, stream: bool
) -> None:
    fallback.responder = _anthropic_agents
    client = sdk(gateway)
    raw = client.responses.with_raw_response.create(
        model="reviewer", input=ASK, tools=AGENT_TOOLS, stream=stream
    )
    if stream:
        events = list(raw.parse())  # type: ignore[call-overload]
        done = [e.item for e in events if e.type == "response.output_item.done"]
        assert [(item.namespace, item.name) for item in done] == [("multi_agent_v1", "wait_agent")]
        first = events[-1].response
    else:
        first = raw.parse()
    omitted = raw.headers["x-rolecall-omitted-tools"]
    assert omitted == "web_search"
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.namespace, call.name, call.call_id) == ("multi_agent_v1", "wait_agent", "toolu_9")
    assert json.loads(call.arguments) == {"id": "a1"}
    (offered,) = _sent(fallback)["tools"]  # the namespace's function, and no web search
    assert offered["name"] == "multi_agent_v1__wait_agent"
    assert offered["description"] == "[multi_agent_v1: Tools for sub-agents.] Wait for an agent."

    sent_back = [item.model_dump(exclude_none=True) for item in first.output]
    assert sent_back[0]["namespace"] == "multi_agent_v1"
    result = {"type": "function_call_output", "call_id": "toolu_9", "output": "done"}
    second = client.responses.create(
        model="reviewer", input=[*ASK, *sent_back, result], tools=AGENT_TOOLS
    )
    assert second.output_text == "The agent said done."
    asked = _sent(fallback)["messages"][1]["content"]
    assert [(b["type"], b.get("name")) for b in asked] == [
        ("tool_use", "multi_agent_v1__wait_agent")
    ]


def test_forcing_web_search_is_a_400_naming_it(
    gateway: RunningGateway, fallback: SimServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).responses.create(
            model="reviewer",
            input=ASK,
            tools=AGENT_TOOLS,
            tool_choice={"type": "web_search_preview"},
        )
    assert "'web_search_preview'" in caught.value.message
    assert fallback.calls == 0


def test_reasoning_is_an_output_item(gateway: RunningGateway, fallback: SimServer) -> None:
    fallback.responder = lambda body: {"text": "Paris.", "reasoning": "France's capital"}
    client = sdk(gateway)
    whole = client.responses.create(
        model="reviewer", input="Capital?", reasoning={"effort": "low"}, max_output_tokens=2000
    )
    assert [item.type for item in whole.output] == ["reasoning", "message"]
    assert whole.output[0].content[0].text == "France's capital"  # type: ignore[union-attr,index]
    assert _sent(fallback)["thinking"]["type"] == "enabled"
    events = list(
        client.responses.create(
            model="reviewer",
            input="Capital?",
            reasoning={"effort": "low"},
            stream=True,
            max_output_tokens=2000,
        )
    )
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert thought == "France's capital"
    assert events[-1].response.output_text == "Paris."  # type: ignore[union-attr]


def test_fallback_mid_conversation_is_invisible_but_for_headers(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    call = {"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    primary.responder = lambda body: {"text": "", "tool_calls": [call]}
    fallback.responder = _anthropic_weather
    client = sdk(gateway)
    raw1 = client.responses.with_raw_response.create(
        model="coder",
        input=ASK,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    first = raw1.parse()
    assert raw1.headers["x-rolecall-provider"] == "a"
    primary.script(Fault("server"))  # turn 2: the primary fails
    raw2 = client.responses.with_raw_response.create(
        model="coder",
        input=_second_turn(first.output),
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    second = raw2.parse()
    assert second.output_text == "It is 18 degrees." and second.status == "completed"
    assert raw2.headers["x-rolecall-provider"] == "b"
    assert raw2.headers["x-rolecall-attempts"] == "2"
    turns = _sent(fallback)["messages"]  # the whole conversation, in Anthropic's shape
    assert (
        turns[1]["content"][0]["type"] == "tool_use" and turns[1]["content"][0]["id"] == "toolu_1"
    )


def test_stream_cut_after_text_ends_with_response_failed(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.script(Fault("stream_error", after_chunks=2))
    events = list(sdk(gateway).responses.create(model="coder", input="hi", stream=True))
    assert any(e.type == "response.output_text.delta" for e in events)
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.error is not None
    message = failed.response.error.message
    assert "'a'" in message or "provider a" in message, message
    assert failed.response.output[0].status == "incomplete"
    assert fallback.calls == 0  # never handed over after text


def test_errors_are_the_sdks_typed_exceptions(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="gpt-4o", input="hi")
    assert "gpt-4o" in missing.value.message and "coder" in missing.value.message
    with pytest.raises(openai.BadRequestError) as builtin:
        client.responses.create(
            model="coder",
            input="hi",
            tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}],
            tool_choice={"type": "file_search"},
        )
    assert "file_search" in builtin.value.message
    primary.script(Fault("server"))
    fallback.script(Fault("server"))
    with pytest.raises(openai.InternalServerError) as failed:
        client.responses.create(model="coder", input="hi", stream=True)
    assert failed.value.status_code == 502
    primary.script(Fault("rate_limit", retry_after=30))
    fallback.script(Fault("rate_limit", retry_after=30))
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="coder", input="hi")


def test_previous_response_id_is_a_400_saying_what_to_send(
    gateway: RunningGateway, primary: SimServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).responses.create(model="coder", input="more", previous_response_id="resp_1")
    message = caught.value.message
    assert "previous_response_id" in message and "full conversation" in message
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert primary.calls == 0


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
    ],
    ids=["top_logprobs", "include"],
)
def test_asking_for_logprobs_is_a_400_not_an_empty_list(
    gateway: RunningGateway, primary: SimServer, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).responses.create(model="coder", input="hi", **fields)
    assert caught.value.body["param"] == param  # type: ignore[index]
    assert "log probabilities are not supported" in caught.value.message
    assert primary.calls == 0
    # Codex CLI's include value asks for nothing the answer lacks
    response = sdk(gateway).responses.create(
        model="coder", input="hi", include=["reasoning.encrypted_content"], top_logprobs=0
    )
    assert response.output_text == "answer from A"


def test_model_alias_and_role_header(
    config_path: Path, start_gateway: Callable[..., RunningGateway]
) -> None:
    config_path.write_text(config_path.read_text() + "  model_aliases: {gpt-5-codex: coder}\n")
    gateway = start_gateway(config_path)
    raw = sdk(gateway).responses.with_raw_response.create(model="gpt-5-codex", input="hi")
    assert raw.headers["x-rolecall-role"] == "coder"
    assert raw.parse().model == "model-a"  # the model that answered
    header = sdk(gateway, **{"x-rolecall-role": "reviewer"})
    raw = header.responses.with_raw_response.create(model="gpt-5-codex", input="hi")
    assert raw.headers["x-rolecall-role"] == "reviewer" and raw.parse().model == "model-b"


def test_each_task_records_dialect_responses(gateway: RunningGateway, tmp_path: Path) -> None:
    client = sdk(gateway)
    response = client.responses.create(model="coder", input="hi")
    list(client.responses.create(model="coder", input="hi", stream=True))
    gateway.stop()
    with sqlite3.connect(tmp_path / "rolecall.db") as db:
        rows = list(db.execute("SELECT task_id, dialect FROM tasks"))
    assert [dialect for _, dialect in rows] == ["responses", "responses"]
    assert response.id.removeprefix("resp_") in {task for task, _ in rows}


def test_keys_are_checked_bearer_or_x_api_key(gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.url, api_key="wrong", max_retries=0).responses.create(
            model="coder", input="hi"
        )
    with gateway.client(key=None) as client:
        ok = client.post(
            "/v1/responses",
            json={"model": "coder", "input": "hi"},
            headers={"x-api-key": GATEWAY_KEY},
        )
    assert ok.status_code == 200 and ok.json()["output"][0]["content"][0]["text"] == "answer from A"


def test_an_abandoned_stream_frees_the_provider_and_is_499(
    gateway: RunningGateway, primary: SimServer
) -> None:
    primary.script(Fault("stall", after_chunks=1, delay=30))
    body = {"model": "coder", "input": "hi", "stream": True}
    with gateway.client() as client, client.stream("POST", "/v1/responses", json=body) as reply:
        assert reply.status_code == 200
        assert next(reply.iter_lines()) == "event: response.created"

    def metrics() -> str:
        with gateway.client() as client:
            return client.get("/metrics").text

    wait_for(lambda: "rolecall_gateway_in_flight 0" in metrics(), timeout=5)
    assert 'rolecall_gateway_requests_total{model="coder",status="499"} 1' in metrics()
