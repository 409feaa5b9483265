"""Claude's signed reasoning on Bedrock, through the router against the Bedrock sim.

The sim signs each reasoningContent block and, as Claude on Bedrock does, refuses a tool
loop's follow-up with thinking on whose assistant turn does not start with the reasoning
it issued, or carries a signature it never issued. So the adapter must keep the
signature (or the redacted bytes) and send the block back first in its turn; with no
signed block to send, that request goes without thinking.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID
from rolecall.types import Message, ReasoningBlock, ToolCall

SECRET = "sim-bedrock-thinking-secret-7"
MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"
ASK = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = ToolCall("tooluse_1", "get_weather", '{"city": "Paris"}')
PARAMS = {"reasoning_effort": "low", "tools": [WEATHER_TOOL]}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer("bedrock", api_key=SECRET, models=()) as started:
        yield started


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sim: SimServer) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    sim.clear()
    sim.responder = _weather_loop


def _config(sim: SimServer) -> RolecallConfig:
    provider = {
        "type": "bedrock",
        "model": MODEL,
        "region": "us-east-1",
        "endpoint": sim.base_url,
        "timeout": 5,
    }
    return RolecallConfig.model_validate(
        {
            "providers": {"aws": provider},
            "roles": {"agent": {"provider": "aws"}},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 1},
        }
    )


def _weather_loop(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]["content"]
    if any("toolResult" in block for block in last):
        return {"text": "Mild.", "reasoning": "I have it."}
    call = {"id": "tooluse_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    return {"text": "", "tool_calls": [call], "reasoning": _weather_loop.thinking}


_weather_loop.thinking = "I need the weather."  # type: ignore[attr-defined]


def _converse_bodies(sim: SimServer) -> list[dict[str, Any]]:
    return [r.json for r in sim.requests if r.path.startswith("/model/")]  # type: ignore[misc]


async def _first_turn(router: Router, stream: bool) -> Any:
    if not stream:
        return await router.complete("agent", ASK, params=PARAMS)
    answer = router.stream("agent", ASK, params=PARAMS)
    _ = [chunk async for chunk in answer.deltas()]
    return answer.reply


async def _follow_up(router: Router, first: Any, stream: bool) -> Any:
    turn = Message("assistant", "", tool_calls=first.tool_calls, reasoning=first.reasoning_blocks)
    result = Message("tool", '{"temp": 18}', tool_call_id=first.tool_calls[0].id)
    messages = [*ASK, turn, result]
    if not stream:
        return await router.complete("agent", messages, params=PARAMS)
    answer = router.stream("agent", messages, params=PARAMS)
    _ = [chunk async for chunk in answer.deltas()]
    return answer.reply


@pytest.mark.parametrize("stream", [False, True])
async def test_signed_reasoning_goes_back_first_in_its_turn(sim: SimServer, stream: bool) -> None:
    async with Router(_config(sim)) as router:
        first = await _first_turn(router, stream)
        (block,) = first.reasoning_blocks
        assert block.protocol == "bedrock" and block.text == "I need the weather."
        assert block.signature  # the one the sim issued
        second = await _follow_up(router, first, stream)
    assert second.text == "Mild." and second.reasoning == "I have it."
    sent = _converse_bodies(sim)[-1]
    assert sent["additionalModelRequestFields"]["thinking"]["type"] == "enabled"
    assert sent["messages"][1]["content"][0] == {
        "reasoningContent": {
            "reasoningText": {"text": "I need the weather.", "signature": block.signature}
        }
    }
    assert "toolUse" in sent["messages"][1]["content"][1]


@pytest.mark.parametrize("stream", [False, True])
async def test_redacted_reasoning_goes_back_as_its_bytes(sim: SimServer, stream: bool) -> None:
    _weather_loop.thinking = "[redacted] I need the weather."  # type: ignore[attr-defined]
    try:
        async with Router(_config(sim)) as router:
            first = await _first_turn(router, stream)
            (block,) = first.reasoning_blocks
            assert block.protocol == "bedrock" and block.redacted and not block.text
            second = await _follow_up(router, first, stream)
    finally:
        _weather_loop.thinking = "I need the weather."  # type: ignore[attr-defined]
    assert second.text == "Mild."
    sent = _converse_bodies(sim)[-1]["messages"][1]["content"][0]
    assert sent == {"reasoningContent": {"redactedContent": block.redacted}}


async def test_a_tool_loop_without_signed_reasoning_is_sent_without_thinking(
    sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An OpenAI-shaped conversation (or an Anthropic-signed turn) has nothing Bedrock
    signed: Claude would refuse it with thinking on, so that request goes without thinking,
    and says so in the log."""
    foreign = ReasoningBlock("anthropic", "I need the weather.", signature="c2lnbmVk")
    history = [
        *ASK,
        Message("assistant", "", tool_calls=(CALL,), reasoning=(foreign,)),
        Message("tool", '{"temp": 18}', tool_call_id="tooluse_1"),
    ]
    async with Router(_config(sim)) as router:
        with caplog.at_level("INFO", logger="rolecall.providers"):
            reply = await router.complete("agent", history, params=PARAMS)
        fresh = await router.complete("agent", ASK, params=PARAMS)
    assert reply.text == "Mild."
    assert "thinking off for this request" in caplog.text
    bodies = _converse_bodies(sim)
    assert "thinking" not in bodies[-2].get("additionalModelRequestFields", {})
    assert all("reasoningContent" not in b for b in bodies[-2]["messages"][1]["content"])
    assert fresh.reasoning_blocks  # a conversation not in a tool loop still thinks
    assert "thinking" in bodies[-1]["additionalModelRequestFields"]


async def test_a_rewritten_reasoning_block_is_refused_by_the_sim(sim: SimServer) -> None:
    async with Router(_config(sim)) as router:
        first = await router.complete("agent", ASK, params=PARAMS)
        (block,) = first.reasoning_blocks
        forged = ReasoningBlock("bedrock", "Something else.", signature=block.signature)
        turn = Message("assistant", "", tool_calls=first.tool_calls, reasoning=(forged,))
        result = Message("tool", '{"temp": 18}', tool_call_id=first.tool_calls[0].id)
        with pytest.raises(AllProvidersFailed, match="Invalid `signature`"):
            await router.complete("agent", [*ASK, turn, result], params=PARAMS)


@pytest.mark.parametrize(("effort", "thinking"), [("none", None), ("minimal", 1024), ("low", 1024)])
async def test_reasoning_effort_takes_the_values_anthropics_adapter_takes(
    sim: SimServer, effort: str, thinking: int | None
) -> None:
    sim.responder = None
    sim.reset_stats()
    async with Router(_config(sim)) as router:
        reply = await router.complete("agent", ASK, params={"reasoning_effort": effort})
    assert reply.provider == "aws"
    [body] = _converse_bodies(sim)
    fields = body.get("additionalModelRequestFields", {})
    if thinking is None:
        assert "thinking" not in fields and "inferenceConfig" not in body
    else:
        assert fields["thinking"] == {"type": "enabled", "budget_tokens": thinking}
