"""A tool loop with extended thinking, as the anthropic SDK runs it through the gateway's
Messages door (the Anthropic, Bedrock and Gemini thinking tests share it)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import anthropic
from gateway_helpers import GATEWAY_KEY, RunningGateway

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}
CITIES = ("Paris", "London")


def write_config(tmp_path: Path, providers: str, roles: str, env: str = "") -> Path:
    """A gateway config with these ``providers`` and ``roles`` lines (YAML, indented as
    under their key), one attempt per provider, records in ``tmp_path``, the test's key."""
    (tmp_path / ".env").write_text(f"{env}GATEWAY_KEY={GATEWAY_KEY}\n")
    path = tmp_path / "rolecall.yaml"
    head = "providers:\n" + textwrap.indent(textwrap.dedent(providers), "  ")
    head += "roles:\n" + textwrap.indent(textwrap.dedent(roles), "  ")
    path.write_text(
        head
        + textwrap.dedent(
            f"""\
            retry: {{max_attempts: 1, initial_backoff: 10ms}}
            metrics:
              url: sqlite:///{tmp_path}/rolecall.db
              runs_dir: {tmp_path}/runs
              flush_interval: 50ms
            gateway:
              keys: ["${{GATEWAY_KEY}}"]
            """
        )
    )
    return path


def next_step(results: int) -> dict[str, Any]:
    """The scripted answer after ``results`` tool results: think and call get_weather for
    the next city, or answer once every city has its result."""
    if results < len(CITIES):
        city = CITIES[results]
        call = {"id": f"toolu_{city}", "name": "get_weather", "arguments": {"city": city}}
        return {"text": "", "tool_calls": [call], "reasoning": f"I need the weather in {city}."}
    return {"text": "Both are mild.", "reasoning": "I have both temperatures."}


def sdk(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.server.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20
    )


def request_kwargs(messages: list[Any], thinking: bool = True) -> dict[str, Any]:
    """The keyword arguments of one request of the loop."""
    kwargs: dict[str, Any] = {
        "model": "coder",
        "max_tokens": 4096,
        "messages": messages,
        "tools": [WEATHER_TOOL],
    }
    if thinking:
        kwargs["thinking"] = THINKING
    return kwargs


def ask(
    client: anthropic.Anthropic, messages: list[Any], stream: bool, thinking: bool = True
) -> Any:
    """One request of the loop, whole or streamed; the final message either way."""
    kwargs = request_kwargs(messages, thinking)
    if not stream:
        return client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as events:
        return events.get_final_message()


def results_for(message: Any) -> list[dict[str, Any]]:
    return [
        {"type": "tool_result", "tool_use_id": block.id, "content": json.dumps({"temp": 18})}
        for block in message.content
        if block.type == "tool_use"
    ]


def history(message: Any) -> list[dict[str, Any]]:
    """The assistant turn as a client sends it back: every block as it came."""
    return [block.model_dump(exclude_none=True) for block in message.content]


def without_its_thinking(client: anthropic.Anthropic, stream: bool) -> tuple[Any, dict[str, Any]]:
    """Turn one of the loop, then turn two sent back without turn one's thinking blocks
    (as a client that drops them does): the headers of turn two's answer, and its request."""
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and London?"}]
    first = ask(client, messages, stream=False)
    messages += [
        {"role": "assistant", "content": [b for b in history(first) if b["type"] != "thinking"]},
        {"role": "user", "content": results_for(first)},
    ]
    kwargs = request_kwargs(messages)
    if stream:
        with client.messages.with_streaming_response.create(**kwargs, stream=True) as raw:
            assert b"tool_use" in raw.read()
            return raw.headers, kwargs
    answer = client.messages.with_raw_response.create(**kwargs)
    assert answer.parse().content[-1].input == {"city": "London"}
    return answer.headers, kwargs


def first_turn_headers(client: anthropic.Anthropic, kwargs: dict[str, Any]) -> Any:
    """The headers of the loop's first turn alone (no tool loop yet: thinking stays on)."""
    first = {**kwargs, "messages": kwargs["messages"][:1]}
    return client.messages.with_raw_response.create(**first).headers
