"""What a caller's messages carry reaches each vendor as that vendor takes it: text given
as several parts stays several parts, and a message key rolecall cannot carry is refused
naming it; over the real adapters and the fake vendor servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sim_trio import fresh, providers_for, started_sims

from rolecall.config.schema import RolecallConfig
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Message, TextPart, normalize_messages

TWO_PARTS = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    with started_sims() as servers:
        yield servers


@pytest.fixture(autouse=True)
def _clean(sims: dict[str, SimServer]) -> None:
    fresh(sims)


def _router(sims: dict[str, SimServer]) -> Router:
    config = RolecallConfig.model_validate(
        {
            "providers": providers_for(sims),
            "roles": {pid: {"provider": pid} for pid in sims},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
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
