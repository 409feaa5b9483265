"""What a caller's messages carry reaches each vendor as that vendor takes it: text given
as several parts stays several parts, and a message key rolecall cannot carry is refused
naming it; over the real adapters and the fake vendor servers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sim_trio import providers_for

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind, ProviderError
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Message, TextPart, normalize_messages

TWO_PARTS = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]


def _router(sims: dict[str, SimServer], drop_params: tuple[str, ...] = ()) -> Router:
    config = RolecallConfig.model_validate(
        {
            "providers": providers_for(sims),
            "roles": {pid: {"provider": pid} for pid in sims},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
            "drop_params": list(drop_params),
        }
    )
    return Router(config, check_credentials=False)


async def _sent(sims: dict[str, SimServer], pid: str, messages: list[Any]) -> dict[str, Any]:
    async with _router(sims) as router:
        await router.complete(pid, messages)
    body: dict[str, Any] = sims[pid].requests[-1].json
    return body


async def test_text_parts_reach_each_vendor_as_parts_not_run_together(
    sims: dict[str, SimServer],
) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": TWO_PARTS},
        {"role": "user", "content": TWO_PARTS},
    ]
    gpt = await _sent(sims, "gpt", messages)
    assert gpt["messages"][2]["content"] == TWO_PARTS
    assert gpt["messages"][3]["content"] == TWO_PARTS
    claude = await _sent(sims, "claude", messages)
    assert claude["messages"][1]["content"] == TWO_PARTS
    assert claude["messages"][2]["content"] == TWO_PARTS
    gemini = await _sent(sims, "gemini", messages)
    assert gemini["contents"][1] == {"role": "model", "parts": [{"text": "a"}, {"text": "b"}]}
    assert gemini["contents"][2] == {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}


def test_text_parts_read_as_one_text_are_joined_by_a_line_break() -> None:
    # What a vendor taking one string gets (the local model), as llama.cpp's server joins them.
    [message] = normalize_messages([{"role": "user", "content": TWO_PARTS}])
    assert message == Message("user", "a\nb", parts=(TextPart("a"), TextPart("b")))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"role": "user", "content": "x", "imag": "data:image/png;base64,AA=="},
            "messages[0]: unknown key 'imag'",
        ),
        (
            {"role": "tool", "content": "42", "tool_call_idd": "c1", "tool_call_id": "c1"},
            "messages[0]: unknown key 'tool_call_idd' (did you mean 'tool_call_id'?)",
        ),
        ({"role": "user", "content": [{"type": "text", "text": "x"}], "nmae": "bob"}, "'nmae'"),
        # Fields of OpenAI's deprecated function calling, which nothing here would send.
        ({"role": "assistant", "content": "", "function_call": {"name": "f"}}, "function_call"),
    ],
)
async def test_a_message_key_that_cannot_be_carried_is_refused_naming_it(
    sims: dict[str, SimServer], message: dict[str, Any], expected: str
) -> None:
    async with _router(sims) as router:
        with pytest.raises(ProviderError) as info:
            await router.complete("gpt", [message])
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert expected in str(info.value)
    assert all(server.calls == 0 for server in sims.values())


async def test_an_openai_reply_sent_back_as_history_is_taken(sims: dict[str, SimServer]) -> None:
    # What openai's SDK gives for a reply's message (model_dump), appended to the history:
    # fields of the answer itself, which no vendor takes back.
    echoed = {
        "role": "assistant",
        "content": "Paris.",
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
        "tool_calls": None,
        "reasoning_content": "The capital of France.",
    }
    sent = await _sent(sims, "gpt", [{"role": "user", "content": "Capital?"}, echoed])
    assert sent["messages"][1] == {"role": "assistant", "content": "Paris."}


async def test_a_participant_name_reaches_openai_and_skips_vendors_without_names(
    sims: dict[str, SimServer],
) -> None:
    named = [{"role": "user", "content": "hi", "name": "alice"}]
    sent = await _sent(sims, "gpt", named)
    assert sent["messages"][0] == {"role": "user", "content": "hi", "name": "alice"}
    for pid in ("claude", "gemini"):
        async with _router(sims) as router:
            with pytest.raises(AllProvidersFailed) as info:
                await router.complete(pid, named)
        [attempt] = info.value.attempts
        assert attempt.error_kind is ErrorKind.UNSUPPORTED and attempt.attempt == 0
        assert "messages[0].name" in str(info.value)
        assert sims[pid].calls == 0


async def test_drop_params_name_sends_named_turns_to_vendors_without_names(
    sims: dict[str, SimServer],
) -> None:
    # Clients that always name their turns (multi-agent frameworks) reach Claude and Gemini
    # when the config says the names may go.
    named = [{"role": "user", "content": "hi", "name": "alice"}]
    for pid in ("claude", "gemini"):
        async with _router(sims, drop_params=("name",)) as router:
            reply = await router.complete(pid, named)
        assert reply.provider == pid
        assert "alice" not in json.dumps(sims[pid].requests[-1].json)


def test_an_openai_sdk_message_object_is_taken_as_its_dump() -> None:
    """``completion.choices[0].message`` appended to the history as is (a pydantic model,
    not a dict), as openai's own client takes it back; it was refused as 'not a message'."""
    from openai.types.chat import ChatCompletionMessage
    from openai.types.chat.chat_completion_message_tool_call import (
        ChatCompletionMessageToolCall,
        Function,
    )

    call = ChatCompletionMessageToolCall(
        id="call_1", type="function", function=Function(name="f", arguments="{}")
    )
    reply = ChatCompletionMessage(role="assistant", content=None, tool_calls=[call])
    [message] = normalize_messages([reply])
    assert (message.role, message.content) == ("assistant", "")
    assert [(c.id, c.name, c.arguments) for c in message.tool_calls] == [("call_1", "f", "{}")]
