"""Bodies that third-party clients (pydantic-ai, simonw/llm, LangChain) send the gateway.

Each test replays, through the official SDK or raw HTTP, what such a client sent
when pointed at ``rolecall serve``, and checks what the provider behind it received.
``coder`` routes to ``a`` (OpenAI protocol), ``reviewer`` to ``b`` (Anthropic).
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway

from rolecall.sim import SimServer

# A 1x1 PNG, as a screenshot tool returns it.
PNG_URL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAACAAFUok9dAAAAAElFTkSuQmCC"
)
SNAP_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "snap",
    "description": None,
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    "strict": True,
}


def _snap_input(*call_ids: str) -> list[dict[str, Any]]:
    """pydantic-ai's OpenAIResponsesModel input after tools that returned images."""
    calls = [
        {"name": "snap", "arguments": '{"q":"sim"}', "call_id": c, "type": "function_call"}
        for c in call_ids
    ]
    outputs = [
        {
            "type": "function_call_output",
            "call_id": c,
            "output": [{"image_url": PNG_URL, "type": "input_image", "detail": "auto"}],
        }
        for c in call_ids
    ]
    return [{"role": "user", "content": "take a snap"}, *calls, *outputs]


def _sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)


@pytest.mark.parametrize("calls", [("call_0_snap",), ("call_0_snap", "call_1_snap")])
def test_images_a_tool_returned_reach_an_anthropic_provider_after_the_results(
    gateway: RunningGateway, fallback: SimServer, calls: tuple[str, ...]
) -> None:
    response = _sdk(gateway).responses.create(
        model="reviewer",
        input=_snap_input(*calls),  # type: ignore[arg-type]
        tools=[SNAP_TOOL],  # type: ignore[list-item]
        tool_choice="auto",
    )
    assert response.output_text == "answer from B"
    last = fallback.requests[-1].json["messages"][-1]
    assert last["role"] == "user"
    kinds = [block["type"] for block in last["content"]]
    assert kinds == ["tool_result"] * len(calls) + ["image"] * len(calls)
    assert [block.get("tool_use_id") for block in last["content"][: len(calls)]] == list(calls)
    image = last["content"][-1]["source"]
    assert (image["type"], image["media_type"]) == ("base64", "image/png")
    assert PNG_URL.endswith(image["data"])


def test_images_a_tool_returned_follow_the_tool_turns_to_an_openai_provider(
    gateway: RunningGateway, primary: SimServer
) -> None:
    calls = ("call_0_snap", "call_1_snap")
    body = {"model": "coder", "input": [*_snap_input(*calls), {"role": "user", "content": "ok?"}]}
    response = _sdk(gateway).responses.create(**body)
    assert response.output_text == "answer from A"
    sent = primary.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user", "user"]
    assert [m["tool_call_id"] for m in sent[2:4]] == list(calls)
    images = sent[4]["content"]
    assert [part["image_url"]["url"] for part in images] == [PNG_URL, PNG_URL]
    assert sent[5]["content"] == "ok?"


def test_a_file_in_a_tool_output_is_still_a_400_naming_it(gateway: RunningGateway) -> None:
    body = _snap_input("call_0_snap")
    body[-1]["output"] = [{"type": "input_file", "file_id": "file-1"}]
    with pytest.raises(openai.BadRequestError) as caught:
        _sdk(gateway).responses.create(model="coder", input=body)  # type: ignore[arg-type]
    assert "input[2].output[0]" in str(caught.value)
    assert "input_text and input_image" in str(caught.value)


def test_responses_input_tokens_is_an_estimate_with_no_provider_called(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    # pydantic-ai's OpenAIResponsesModel with UsageLimits(count_tokens_before_request=True).
    client = _sdk(gateway)
    raw = client.responses.input_tokens.with_raw_response.count(
        model="coder", input="hi", instructions="be brief"
    )
    small = raw.parse()
    assert small.object == "response.input_tokens" and small.input_tokens > 0
    assert raw.headers["x-rolecall-token-count"] == "estimate"
    assert raw.headers["x-request-id"].startswith("req_")  # as every answer has one
    large = client.responses.input_tokens.count(
        model="reviewer",
        input=_snap_input("call_0_snap"),  # type: ignore[arg-type]
        tools=[SNAP_TOOL],  # type: ignore[list-item]
    )
    assert large.input_tokens > small.input_tokens + 1000  # the image counts
    assert primary.calls == fallback.calls == 0
    with pytest.raises(openai.NotFoundError, match="nosuchrole"):
        client.responses.input_tokens.count(model="nosuchrole", input="hi")
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.input_tokens.count(model="coder", input="hi", previous_response_id="r")
    keyless = openai.OpenAI(base_url=gateway.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        keyless.responses.input_tokens.count(model="coder", input="hi")


def _cache_write(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic answer that wrote 30 prompt tokens to the cache and read 60."""
    return {
        "text": "cached",
        "input_tokens": 100,
        "output_tokens": 2,
        "cached_input_tokens": 60,
        "cache_creation_input_tokens": 30,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_chat_usage_carries_the_tokens_written_to_the_prompt_cache(
    gateway: RunningGateway, fallback: SimServer, stream: bool
) -> None:
    # pydantic-ai's OpenAIChatModel reads prompt_tokens_details.cache_write_tokens into
    # RunUsage.cache_write_tokens, LangChain's ChatOpenAI into cache_creation: Anthropic bills
    # those tokens above the input price.
    fallback.responder = _cache_write
    client = _sdk(gateway)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    if stream:
        chunks = client.chat.completions.create(
            model="reviewer", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        usage = [chunk.usage for chunk in chunks if chunk.usage][-1]
    else:
        usage = client.chat.completions.create(model="reviewer", messages=messages).usage
    assert usage is not None and usage.prompt_tokens == 100
    details = usage.prompt_tokens_details
    assert details is not None
    assert (details.cached_tokens, details.cache_write_tokens) == (60, 30)


def _chat_tool(name: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


THREE_TOOLS = [_chat_tool("t_one"), _chat_tool("t_two"), _chat_tool("t_three")]


def _offered(sim: SimServer) -> tuple[list[str], Any]:
    body = sim.requests[-1].json
    names = [tool.get("name") or tool["function"]["name"] for tool in body["tools"]]
    return names, body.get("tool_choice")


@pytest.mark.parametrize(
    ("mode", "model", "choice_sent"),
    [
        ("auto", "coder", "auto"),
        ("required", "coder", "required"),
        ("auto", "reviewer", {"type": "auto"}),
        ("required", "reviewer", {"type": "any"}),
    ],
)
def test_chat_allowed_tools_offer_the_provider_those_tools(
    gateway: RunningGateway,
    primary: SimServer,
    fallback: SimServer,
    mode: str,
    model: str,
    choice_sent: Any,
) -> None:
    # pydantic-ai's OpenAIChatModel with tool_choice=ToolOrOutput([...]) (or a capability that
    # narrows the tools per step): OpenAI's allowed_tools, the whole list kept for caching.
    allowed = [{"type": "function", "function": {"name": n}} for n in ("t_one", "t_two")]
    response = _sdk(gateway).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        tools=THREE_TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}},  # type: ignore[typeddict-item]
    )
    called = [call.function.name for call in response.choices[0].message.tool_calls or ()]  # type: ignore[union-attr]
    assert set(called) <= {"t_one", "t_two"}
    sim = primary if model == "coder" else fallback
    assert _offered(sim) == (["t_one", "t_two"], choice_sent)


def test_responses_allowed_tools_offer_the_provider_those_tools(
    gateway: RunningGateway, fallback: SimServer
) -> None:
    tools = [
        {"type": "function", "name": n, "parameters": {"type": "object"}, "strict": False}
        for n in ("t_one", "t_two", "t_three")
    ]
    choice = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "t_two"}],
    }
    response = _sdk(gateway).responses.create(
        model="reviewer",
        input="hi",
        tools=tools,  # type: ignore[arg-type]
        tool_choice=choice,  # type: ignore[arg-type]
    )
    assert response.status == "completed"
    assert response.tool_choice.model_dump(exclude_none=True) == choice  # as the client sent it
    assert _offered(fallback) == (["t_two"], {"type": "auto"})


def test_allowed_tools_naming_an_undeclared_function_is_a_400_naming_it(
    gateway: RunningGateway, primary: SimServer
) -> None:
    allowed = {"mode": "auto", "tools": [{"type": "function", "function": {"name": "t_nine"}}]}
    with pytest.raises(openai.BadRequestError, match="t_nine"):
        _sdk(gateway).chat.completions.create(
            model="coder",
            messages=[{"role": "user", "content": "hi"}],
            tools=THREE_TOOLS,  # type: ignore[arg-type]
            tool_choice={"type": "allowed_tools", "allowed_tools": allowed},  # type: ignore[typeddict-item]
        )
    with pytest.raises(openai.BadRequestError, match="web_search"):
        _sdk(gateway).responses.create(
            model="coder",
            input="hi",
            tools=[{"type": "web_search"}],
            tool_choice={
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "web_search"}],
            },  # type: ignore[arg-type]
        )
    assert primary.calls == 0
