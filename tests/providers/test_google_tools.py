"""Gemini tools, images, reasoning and cached tokens: the router over the real adapter and the sim.

A tool round trip goes model asks -> caller sends the result -> model answers, with
the ``functionResponse`` name recovered from the history by the call's id; every
other check reads the body the sim received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from openai.types.shared.reasoning_effort import ReasoningEffort

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Chunk, Message, ReasoningBlock, ToolCallDelta

KEY = "gemini-tools-key"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
ASK = [{"role": "user", "content": "Weather in Paris?"}]
# Every reasoning_effort the installed openai SDK can send.
OPENAI_EFFORTS = get_args(get_args(ReasoningEffort)[0])
# 1x1 transparent PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _responder(body: dict[str, Any]) -> dict[str, Any]:
    """Calls get_weather until the last turn holds its result, then answers with it."""
    last = body["contents"][-1]["parts"]
    results = [p["functionResponse"] for p in last if "functionResponse" in p]
    if results:
        return {"text": f"It is {results[0]['response']['temp']} degrees."}
    return {"text": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer("google", api_key=KEY) as sim:
        yield sim


@pytest.fixture
def sim(server: SimServer) -> SimServer:
    server.clear()
    server.reset_stats()
    server.responder = None
    return server


def _config(sim: SimServer, model: str = "sim-model") -> RolecallConfig:
    return RolecallConfig.model_validate(
        {
            "providers": {
                "gemini": {
                    "type": "google",
                    "model": model,
                    "api_key": KEY,
                    "base_url": sim.base_url,
                    "timeout": 5,
                }
            },
            "roles": {"planner": {"provider": "gemini"}},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
        }
    )


def _sent(sim: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = sim.requests[-1].json
    return body


def _follow_up(call: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp": 21}'},
    ]


def _check_follow_up_body(sim: SimServer) -> None:
    body = _sent(sim)
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "skip_thought_signature_validator",
            }
        ],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}],
    }


async def test_tool_round_trip_through_complete(sim: SimServer) -> None:
    sim.responder = _responder
    async with Router(_config(sim)) as router:
        asked = await router.complete("planner", ASK, params={"tools": TOOLS})
        assert asked.text == "" and asked.finish_reason == "tool_calls"
        (call,) = asked.tool_calls
        assert (call.id, call.name, json.loads(call.arguments)) == (
            "call_0",
            "get_weather",
            {"city": "Paris"},
        )
        declared = _sent(sim)["tools"]
        assert declared == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather in a city.",
                        "parametersJsonSchema": TOOLS[0]["function"]["parameters"],
                    }
                ]
            }
        ]
        answered = await router.complete(
            "planner", _follow_up(call.to_dict()), params={"tools": TOOLS}
        )
    _check_follow_up_body(sim)
    assert answered.text == "It is 21 degrees." and answered.finish_reason == "stop"


async def test_tool_round_trip_through_stream_deltas(sim: SimServer) -> None:
    sim.responder = _responder
    async with Router(_config(sim)) as router:
        stream = router.stream("planner", ASK, params={"tools": TOOLS})
        chunks: list[Chunk] = [chunk async for chunk in stream.deltas()]
        deltas = [d for chunk in chunks for d in chunk.tool_calls]
        assert deltas == [ToolCallDelta(0, "call_0", "get_weather", '{"city": "Paris"}')]
        reply = stream.reply
        assert reply.finish_reason == "tool_calls" and reply.text == ""
        (call,) = reply.tool_calls
        answer = router.stream("planner", _follow_up(call.to_dict()), params={"tools": TOOLS})
        text = "".join([piece async for piece in answer])
    _check_follow_up_body(sim)
    assert text == "It is 21 degrees." and answer.reply.finish_reason == "stop"


async def test_gemini_ids_are_kept_and_calls_numbered(sim: SimServer) -> None:
    sim.responder = lambda body: {
        "text": "Checking both.",
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "g-1"},
            {"name": "get_weather", "arguments": {"city": "Rome"}},
        ],
    }
    async with Router(_config(sim)) as router:
        reply = await router.complete("planner", ASK, params={"tools": TOOLS})
        stream = router.stream("planner", ASK, params={"tools": TOOLS})
        deltas = [d async for chunk in stream.deltas() for d in chunk.tool_calls]
    assert [(c.id, c.name) for c in reply.tool_calls] == [
        ("g-1", "get_weather"),
        ("call_1", "get_weather"),
    ]
    assert reply.text == "Checking both." and reply.finish_reason == "tool_calls"
    assert [(d.index, d.id) for d in deltas] == [(0, "g-1"), (1, "call_1")]


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_3_takes_the_tool_round_trip_back(sim: SimServer, stream: bool) -> None:
    """Gemini 3 refuses a current turn whose function call lacks a thought signature; the
    caller's history cannot carry the model's own, so the documented stand-in goes."""
    sim.responder = _responder
    sim.models = ()
    async with Router(_config(sim, "gemini-3-pro-preview")) as router:
        asked = await router.complete("planner", ASK, params={"tools": TOOLS})
        (call,) = asked.tool_calls
        follow_up = _follow_up(call.to_dict())
        if stream:
            answer = router.stream("planner", follow_up, params={"tools": TOOLS})
            text = "".join([piece async for piece in answer])
        else:
            text = (await router.complete("planner", follow_up, params={"tools": TOOLS})).text
    assert text == "It is 21 degrees."


async def _ask(router: Router, messages: list[Any], params: dict[str, Any], stream: bool) -> Any:
    if not stream:
        return await router.complete("planner", messages, params=params)
    answer = router.stream("planner", messages, params=params)
    _ = [chunk async for chunk in answer.deltas()]
    return answer.reply


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_3_gets_its_own_call_signature_back(sim: SimServer, stream: bool) -> None:
    """The signature Gemini 3 put on its call is the reply's reasoning block (with the
    thought text); an assistant turn carrying it sends it back instead of the stand-in."""
    sim.responder = lambda body: {**_responder(body), "reasoning": "I need the weather."}
    sim.models = ()
    params = {"tools": TOOLS, "reasoning_effort": "low"}
    async with Router(_config(sim, "gemini-3-pro-preview")) as router:
        asked = await _ask(router, ASK, params, stream)
        (block,) = asked.reasoning_blocks
        assert block.protocol == "gemini" and block.text == "I need the weather."
        assert block.signature  # the one the sim issued
        turn = Message(
            "assistant", "", tool_calls=asked.tool_calls, reasoning=asked.reasoning_blocks
        )
        result = Message("tool", '{"temp": 21}', tool_call_id=asked.tool_calls[0].id)
        reply = await _ask(router, [*ASK, turn, result], params, stream)
    assert reply.text == "It is 21 degrees."
    (call_part,) = _sent(sim)["contents"][1]["parts"]
    assert call_part["thoughtSignature"] == block.signature
    assert call_part["thoughtSignature"] != "skip_thought_signature_validator"


async def test_gemini_3_refuses_a_signature_it_never_issued(sim: SimServer) -> None:
    sim.responder = _responder
    sim.models = ()
    async with Router(_config(sim, "gemini-3-pro-preview")) as router:
        asked = await router.complete("planner", ASK, params={"tools": TOOLS})
        forged = (ReasoningBlock("gemini", signature="Zm9yZ2Vk"),)
        turn = Message("assistant", "", tool_calls=asked.tool_calls, reasoning=forged)
        result = Message("tool", '{"temp": 21}', tool_call_id=asked.tool_calls[0].id)
        with pytest.raises(AllProvidersFailed, match="Corrupted thought signature"):
            await router.complete("planner", [*ASK, turn, result], params={"tools": TOOLS})
        # Another vendor's signed reasoning is not Gemini's: the stand-in goes.
        other = (ReasoningBlock("anthropic", "x", signature="c2ln"),)
        turn = Message("assistant", "", tool_calls=asked.tool_calls, reasoning=other)
        reply = await router.complete("planner", [*ASK, turn, result], params={"tools": TOOLS})
    assert reply.text == "It is 21 degrees."
    (call_part,) = _sent(sim)["contents"][1]["parts"]
    assert call_part["thoughtSignature"] == "skip_thought_signature_validator"


async def test_gemini_3_takes_a_parallel_call_turn_from_another_vendor(sim: SimServer) -> None:
    calls = [
        {
            "id": f"toolu_{c}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"},
        }
        for c in "ab"
    ]
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_a", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "toolu_b", "content": '{"temp": 22}'},
    ]
    sim.responder = _responder
    sim.models = ()
    async with Router(_config(sim, "gemini-3-flash-preview")) as router:
        reply = await router.complete("planner", messages, params={"tools": TOOLS})
    assert reply.text == "It is 21 degrees."
    signed = ["thoughtSignature" in part for part in _sent(sim)["contents"][1]["parts"]]
    assert signed == [True, False]  # the first call of the step, as Gemini signs them


async def test_consecutive_tool_results_merge_into_one_user_turn(sim: SimServer) -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    messages = [
        *ASK,
        {"role": "assistant", "content": "Let me look.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "b", "content": "noon"},
        {"role": "tool", "tool_call_id": "a", "content": "[1, 2]"},
    ]
    async with Router(_config(sim)) as router:
        await router.complete("planner", messages)
    contents = _sent(sim)["contents"]
    assert contents[1]["parts"][0] == {"text": "Let me look."}
    assert contents[2:] == [
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "[1, 2]"}}},
            ],
        }
    ]


async def _failure(sim: SimServer, messages: list[dict[str, Any]], **params: Any) -> Any:
    async with Router(_config(sim)) as router:
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete("planner", messages, params=params)
    assert sim.calls == 0  # refused before anything was sent
    (error,) = caught.value.errors
    return error


async def test_tool_result_without_its_call_is_a_bad_request(sim: SimServer) -> None:
    error = await _failure(sim, [*ASK, {"role": "tool", "tool_call_id": "x9", "content": "1"}])
    assert error.kind is ErrorKind.BAD_REQUEST and "'x9'" in str(error)


async def test_call_arguments_that_are_not_json_are_a_bad_request(sim: SimServer) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    error = await _failure(sim, [*ASK, {"role": "assistant", "tool_calls": [call]}])
    assert error.kind is ErrorKind.BAD_REQUEST and "('f')" in str(error)


async def test_inline_image_reaches_the_sim_as_inline_data(sim: SimServer) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    async with Router(_config(sim)) as router:
        await router.complete("planner", [{"role": "user", "content": content}])
    assert _sent(sim)["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
            ],
        }
    ]


async def test_https_image_is_unsupported_and_names_the_fix(sim: SimServer) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    error = await _failure(sim, [{"role": "user", "content": content}])
    assert error.kind is ErrorKind.UNSUPPORTED and "data: URL" in str(error)


STRICT_TOOLS = [{**TOOLS[0], "function": {**TOOLS[0]["function"], "strict": True}}]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (None, {"mode": "VALIDATED"}),
        ("auto", {"mode": "VALIDATED"}),
        ("required", {"mode": "ANY"}),  # ANY holds calls to their schemas already
        ("none", {"mode": "NONE"}),
    ],
)
async def test_a_strict_tool_asks_for_validated_calls(
    sim: SimServer, choice: Any, config: dict[str, Any]
) -> None:
    params: dict[str, Any] = {"tools": STRICT_TOOLS}
    if choice is not None:
        params["tool_choice"] = choice
    async with Router(_config(sim)) as router:
        await router.complete("planner", ASK, params=params)
        assert _sent(sim)["toolConfig"] == {"functionCallingConfig": config}
        await router.complete("planner", ASK, params={"tools": TOOLS})
    assert "toolConfig" not in _sent(sim)  # no strict: Gemini's default, AUTO


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
async def test_tool_choice(sim: SimServer, choice: Any, config: dict[str, Any]) -> None:
    async with Router(_config(sim)) as router:
        await router.complete("planner", ASK, params={"tools": TOOLS, "tool_choice": choice})
    assert _sent(sim)["toolConfig"] == {"functionCallingConfig": config}


GENERATION: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"seed": 7}, {"seed": 7}),
    ({"presence_penalty": 0.5}, {"presencePenalty": 0.5}),
    ({"frequency_penalty": -0.5}, {"frequencyPenalty": -0.5}),
    ({"logprobs": True}, {"responseLogprobs": True}),
    ({"logprobs": True, "top_logprobs": 3}, {"responseLogprobs": True, "logprobs": 3}),
    ({"stop": "END"}, {"stopSequences": ["END"]}),
    ({"stop": ["A", "B"]}, {"stopSequences": ["A", "B"]}),
    ({"temperature": 0.2}, {"temperature": 0.2}),
    ({"top_p": 0.9}, {"topP": 0.9}),
    ({"top_k": 40}, {"topK": 40}),
    ({"max_tokens": 300}, {"maxOutputTokens": 300}),
    ({"n": 1}, {"candidateCount": 1}),
    (
        {"reasoning_effort": "low"},
        {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}},
    ),
    (
        {"reasoning_effort": "medium"},
        {"thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}},
    ),
    (
        {"reasoning_effort": "high"},
        {"thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}},
    ),
    (
        {"reasoning_effort": "minimal"},
        {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}},
    ),
    # OpenAI's efforts above high (Codex CLI's xhigh) are high's budget, as on Claude.
    (
        {"reasoning_effort": "xhigh"},
        {"thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}},
    ),
    (
        {"reasoning_effort": "max"},
        {"thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}},
    ),
    ({"reasoning_effort": "none"}, {"thinkingConfig": {"thinkingBudget": 0}}),
    ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
        {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}},
    ),
]


@pytest.mark.parametrize(("params", "expected"), GENERATION, ids=lambda v: json.dumps(v))
async def test_generation_parameter(
    sim: SimServer, params: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with Router(_config(sim)) as router:
        await router.complete("planner", ASK, params=params)
    assert _sent(sim)["generationConfig"] == expected


async def test_extra_body_merges_into_the_body(sim: SimServer) -> None:
    extra = {
        "generationConfig": {"responseModalities": ["TEXT"]},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    async with Router(_config(sim)) as router:
        await router.complete("planner", ASK, params={"temperature": 0.1, "extra_body": extra})
    body = _sent(sim)
    assert body["generationConfig"] == {"temperature": 0.1, "responseModalities": ["TEXT"]}
    assert body["safetySettings"] == extra["safetySettings"]
    assert extra["generationConfig"] == {"responseModalities": ["TEXT"]}  # not changed


@pytest.mark.parametrize(
    ("params", "kind", "named"),
    [
        ({"n": 2}, ErrorKind.UNSUPPORTED, "needs n"),  # the router skips it before the call
        ({"parallel_tool_calls": False}, ErrorKind.UNSUPPORTED, "parallel_tool_calls"),
        ({"reasoning_effort": "extreme"}, ErrorKind.BAD_REQUEST, "reasoning_effort"),
        ({"tool_choice": "sometimes"}, ErrorKind.BAD_REQUEST, "tool_choice"),
    ],
)
async def test_parameters_gemini_cannot_take_fail_before_sending(
    sim: SimServer, params: dict[str, Any], kind: ErrorKind, named: str
) -> None:
    error = await _failure(sim, ASK, **params)
    assert error.kind is kind and named in str(error)


@pytest.mark.parametrize("effort", OPENAI_EFFORTS)
async def test_every_reasoning_effort_openai_takes_is_taken(sim: SimServer, effort: str) -> None:
    # A client set to any of OpenAI's efforts (Codex CLI's xhigh) gets an answer.
    async with Router(_config(sim)) as router:
        reply = await router.complete("planner", ASK, params={"reasoning_effort": effort})
    assert reply.provider == "gemini" and sim.calls == 1


async def test_an_unknown_reasoning_effort_names_the_values_taken(sim: SimServer) -> None:
    error = await _failure(sim, ASK, reasoning_effort="extreme")
    assert "none, minimal, low, medium, high, xhigh or max" in error.message


async def test_thoughts_are_reasoning_apart_from_the_text(sim: SimServer) -> None:
    sim.responder = lambda body: {"text": "Four.", "reasoning": "Two plus two."}
    params = {"reasoning_effort": "low"}
    async with Router(_config(sim)) as router:
        reply = await router.complete("planner", ASK, params=params)
        stream = router.stream("planner", ASK, params=params)
        chunks = [chunk async for chunk in stream.deltas()]
    assert (reply.text, reply.reasoning) == ("Four.", "Two plus two.")
    assert "".join(c.reasoning for c in chunks) == "Two plus two."
    assert "".join(c.text for c in chunks) == "Four."
    assert stream.reply.reasoning == "Two plus two."
    assert reply.usage.output_tokens == 1 + 3  # thinking tokens are billed as output


async def test_cached_tokens_land_in_usage(sim: SimServer) -> None:
    sim.responder = lambda body: {"text": "Cached.", "input_tokens": 900, "cached_tokens": 768}
    async with Router(_config(sim)) as router:
        reply = await router.complete("planner", ASK)
        stream = router.stream("planner", ASK)
        _ = [piece async for piece in stream]
    for usage in (reply.usage, stream.reply.usage):
        assert (usage.input_tokens, usage.cached_input_tokens) == (900, 768)
