"""Anthropic refuses extended thinking with a budget below 1024 tokens, or one not below
``max_tokens`` (the merged value, or the 4096 the adapter sends when none is set): such a
request skips the Anthropic provider before it is called (``unsupported``), over the real
adapter and the Anthropic sim, which refuses it with Anthropic's 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_trio import KEY, providers_for

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer


def _router(sims: dict[str, SimServer], claude_params: dict[str, Any] | None = None) -> Router:
    providers = providers_for(sims)
    if claude_params:
        providers["claude"]["params"] = claude_params
    config = RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": {"writer": {"provider": "claude", "fallback": ["gemini"]}},
            "retry": {"max_attempts": 1},
        }
    )
    return Router(config, check_credentials=False)


def _thinking(budget: int) -> dict[str, Any]:
    return {"thinking": {"type": "enabled", "budget_tokens": budget}}


async def _refused(router: Router, params: dict[str, Any]) -> str:
    """Why the call failed; the Anthropic provider must not have been called."""
    with pytest.raises(AllProvidersFailed) as caught:
        await router.complete("writer", "hi", params=params)
    assert [error.kind for error in caught.value.errors] == [ErrorKind.UNSUPPORTED] * 2
    return caught.value.message


async def test_a_thinking_budget_below_1024_skips_anthropic(sims: dict[str, SimServer]) -> None:
    async with _router(sims) as router:
        message = await _refused(router, _thinking(1000))
        reply = await router.complete("writer", "hi", params=_thinking(1024))
    assert "thinking budget_tokens 1000 is below 1024" in message
    assert reply.provider == "claude"
    assert sims["claude"].requests[-1].json["thinking"]["budget_tokens"] == 1024
    assert sims["claude"].calls == 1


async def test_a_thinking_budget_not_below_max_tokens_skips_anthropic(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        unset = await _refused(router, _thinking(4096))  # the adapter sends 4096
        equal = await _refused(router, {**_thinking(8000), "max_tokens": 8000})
        reply = await router.complete(
            "writer", "hi", params={**_thinking(8000), "max_tokens": 8001}
        )
    assert "budget_tokens 4096 is not below max_tokens 4096" in unset
    assert "budget_tokens 8000 is not below max_tokens 8000" in equal
    assert reply.provider == "claude"
    assert sims["claude"].calls == 1


async def test_the_providers_own_max_tokens_counts(sims: dict[str, SimServer]) -> None:
    async with _router(sims, {"max_tokens": 20000}) as router:
        reply = await router.complete("writer", "hi", params=_thinking(16000))
    assert reply.provider == "claude"
    assert sims["claude"].requests[-1].json["max_tokens"] == 20000


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            {"max_tokens": 2000, **_thinking(1000)},
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {"max_tokens": 2000, **_thinking(2000)},
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
    ],
)
async def test_the_anthropic_sim_refuses_such_a_budget(
    sims: dict[str, SimServer], body: dict[str, Any], said: str
) -> None:
    sent = {"model": "claude-3-7-sonnet-latest", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{sims['claude'].base_url}/v1/messages",
            json={**sent, **body},
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(said)


async def test_an_effort_is_cut_to_fit_where_an_explicit_budget_is_refused(
    sims: dict[str, SimServer],
) -> None:
    """reasoning_effort is rolecall's mapping, so its budget is cut under max_tokens; an
    explicit thinking budget is the caller's own and stays refused, not cut."""
    async with _router(sims) as router:
        refused = await _refused(router, {**_thinking(4096), "max_tokens": 3000})
        cut = await router.complete(
            "writer", "hi", params={"reasoning_effort": "medium", "max_tokens": 3000}
        )
        sent_cut = sims["claude"].requests[-1].json
        off = await router.complete(
            "writer", "hi", params={"reasoning_effort": "high", "max_tokens": 1024}
        )
        sent_off = sims["claude"].requests[-1].json
    assert "budget_tokens 4096 is not below max_tokens 3000" in refused
    assert cut.provider == off.provider == "claude"
    assert sent_cut["thinking"] == {"type": "enabled", "budget_tokens": 1500}
    assert "thinking" not in sent_off and sent_off["max_tokens"] == 1024
