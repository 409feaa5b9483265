"""A call parameter another vendor's protocol takes but a provider's does not skips that
provider (``unsupported``), over the real adapters and the local fake vendor servers."""

from __future__ import annotations

from typing import Any

import pytest
from sim_trio import providers_for

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Attempt


def _router(sims: dict[str, SimServer], **extra: Any) -> Router:
    providers = providers_for(sims)
    config = RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": {
                "coder": {"provider": "claude", "fallback": ["gemini", "gpt"]},
                "writer": {"provider": "gemini", "fallback": ["claude"]},
                "solo": {"provider": "gpt"},
            },
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
            **extra,
        }
    )
    return Router(config, check_credentials=False)


def _sent(server: SimServer) -> list[dict[str, Any]]:
    return [request.json for request in server.requests]


async def test_an_openai_only_parameter_skips_the_providers_that_cannot_take_it(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        reply = await router.complete("coder", "hi", params={"logit_bias": {"50256": -100}})
    assert reply.provider == "gpt"
    assert list(reply.attempts[:2]) == [
        Attempt("claude", 0, "handover", ErrorKind.UNSUPPORTED, 0.0),
        Attempt("gemini", 0, "handover", ErrorKind.UNSUPPORTED, 0.0),
    ]
    assert sims["claude"].calls == 0 and sims["gemini"].calls == 0  # never called
    assert _sent(sims["gpt"])[0]["logit_bias"] == {"50256": -100}
    assert router.health.state("claude") == router.health.state("gemini") == "ok"


@pytest.mark.parametrize(
    ("role", "params", "name", "skipped"),
    [
        ("solo", {"top_k": 40}, "top_k", "gpt"),  # Anthropic's and Gemini's, not OpenAI's
        ("solo", {"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking", "gpt"),
        ("writer", {"user": "u-1", "temperature": 0.2}, "user", "gemini"),
    ],
)
async def test_a_parameter_no_provider_in_the_chain_takes_fails_naming_it(
    sims: dict[str, SimServer], role: str, params: dict[str, Any], name: str, skipped: str
) -> None:
    async with _router(sims) as router:
        if role == "writer":  # claude takes user (as metadata.user_id): answered there
            reply = await router.complete(role, "hi", params=params)
            assert reply.provider == "claude"
            assert reply.attempts[0] == Attempt(skipped, 0, "handover", ErrorKind.UNSUPPORTED, 0.0)
            assert _sent(sims["claude"])[0]["metadata"] == {"user_id": "u-1"}
            assert sims[skipped].calls == 0
            return
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete(role, "hi", params=params)
    message = caught.value.message
    assert f"'{name}'" in message and f"provider '{skipped}'" in message
    assert [error.kind for error in caught.value.errors] == [ErrorKind.UNSUPPORTED]
    assert sims[skipped].calls == 0


async def test_every_provider_unable_is_named_and_streams_fail_the_same(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete("writer", "hi", params={"service_tier": "flex"})
        message = caught.value.message
        assert "'service_tier'" in message
        assert "provider 'gemini'" in message and "provider 'claude'" in message
        with pytest.raises(AllProvidersFailed, match="service_tier"):
            async for _ in router.stream("writer", "hi", params={"service_tier": "flex"}):
                pass
    assert sims["gemini"].calls == sims["claude"].calls == 0


async def test_drop_params_sends_the_call_without_the_listed_name(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims, drop_params=["logit_bias", "top_k"]) as router:
        reply = await router.complete("coder", "hi", params={"logit_bias": {"1": 1}})
        assert reply.provider == "claude"
        assert "logit_bias" not in _sent(sims["claude"])[0]
        solo = await router.complete("solo", "hi", params={"top_k": 3})
        assert solo.provider == "gpt" and "top_k" not in _sent(sims["gpt"])[0]


async def test_values_that_ask_for_nothing_and_openai_names_of_shared_fields_are_sent(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        # n 1, logprobs false: nothing lost; max_completion_tokens is max_tokens by its
        # newer name, which Anthropic and Gemini take as their own limit.
        params = {"n": 1, "logprobs": False, "max_completion_tokens": 77}
        reply = await router.complete("coder", "hi", params=params)
        assert reply.provider == "claude"
        assert _sent(sims["claude"])[0]["max_tokens"] == 77
        writer = await router.complete("writer", "hi", params={"max_completion_tokens": 55})
        assert writer.provider == "gemini"
        assert _sent(sims["gemini"])[0]["generationConfig"]["maxOutputTokens"] == 55
        solo = await router.complete("solo", "hi", params={"max_completion_tokens": 33})
        assert _sent(sims["gpt"])[0]["max_completion_tokens"] == 33
        assert solo.provider == "gpt"


@pytest.mark.parametrize("provider_type", ["openai-compatible", "openai"])
async def test_reasoning_effort_none_reaches_a_server_without_thinking_without_the_field(
    sims: dict[str, SimServer], provider_type: str
) -> None:
    # A server without thinking may refuse a field it does not know (OpenAI's gpt-4.1:
    # "Unsupported parameter: 'reasoning_effort'"); none asks for nothing, so it is left out.
    providers = providers_for(sims)
    providers["gpt"].update(type=provider_type, capabilities={"thinking": False})
    config = RolecallConfig.model_validate(
        {"providers": providers, "roles": {"solo": {"provider": "gpt"}}}
    )
    async with Router(config, check_credentials=False) as router:
        reply = await router.complete("solo", "hi", params={"reasoning_effort": "none"})
        with pytest.raises(AllProvidersFailed, match="needs thinking"):
            await router.complete("solo", "hi", params={"reasoning_effort": "low"})
    assert reply.provider == "gpt" and sims["gpt"].calls == 1
    assert "reasoning_effort" not in _sent(sims["gpt"])[0]
