"""Chain resolution, strategies, parameter merge, concurrency limits, unknown names."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from rolecall.errors import ConfigError, NoProviderForRole, RolecallError
from rolecall.routing.router import Router


async def test_chain_is_role_providers_then_default(build: Any, config_of: Any) -> None:
    roles = {
        "coder": {"provider": "a", "fallback": ["b"]},
        "reviewer": {"provider": "c", "fallback": ["a"]},
    }
    h = build(config_of(roles=roles, default="c"), {})
    assert h.router.chain("coder") == ("a", "b", "c")
    assert h.router.chain("reviewer") == ("c", "a")  # default already in the chain
    assert h.router.chain("planner") == ("c",)  # unassigned role: the default alone
    for role in ("coder", "reviewer", "planner"):
        assert list(h.router.chain(role)) == h.router.config.chain(role)


async def test_unassigned_role_without_default(build: Any, config_of: Any) -> None:
    h = build(config_of(), {})
    with pytest.raises(NoProviderForRole, match="no provider for role 'planner'"):
        await h.router.complete("planner", "hi")


async def test_a_misspelt_role_without_default_names_the_near_role(
    build: Any, config_of: Any
) -> None:
    h = build(config_of(roles={"coder": {"provider": "a"}}), {})
    with pytest.raises(NoProviderForRole, match="did you mean 'coder'"):
        await h.router.complete("codr", "hi")


async def test_unassigned_role_uses_default(build: Any, config_of: Any) -> None:
    h = build(config_of(default="b"), {})
    reply = await h.router.complete("clarifier", "hi")
    assert (reply.provider, reply.role) == ("b", "clarifier")


async def test_provider_target_calls_that_provider_alone(build: Any, config_of: Any) -> None:
    h = build(config_of(), {"c": ["auth"]})
    assert (await h.router.complete("coder", "hi", provider="b")).provider == "b"
    with pytest.raises(RolecallError, match="unknown provider 'zz': valid ids are a, b, c"):
        await h.router.complete("coder", "hi", provider="zz")
    # No fallback when a provider is targeted.
    with pytest.raises(RolecallError, match="every provider for role 'coder' failed"):
        await h.router.complete("coder", "hi", provider="c")
    assert len(h.providers["a"].calls) == 0


def test_undefined_provider_in_a_role_is_a_config_error(scripted: Any) -> None:
    from rolecall.config.schema import RolecallConfig

    config = RolecallConfig.model_validate(
        {
            "providers": {
                "a": {"type": "openai-compatible", "model": "m", "base_url": "http://h/v1"}
            },
            "roles": {"coder": {"provider": "a", "fallback": ["ghost"]}},
        }
    )
    with pytest.raises(ConfigError, match="provider 'ghost' is not defined"):
        Router(config, providers={"a": scripted("a")})


async def test_round_robin_rotates_the_start(build: Any, config_of: Any) -> None:
    roles = {"reviewer": {"providers": ["a", "b", "c"], "strategy": "round_robin"}}
    h = build(config_of(roles=roles), {})
    answered = [(await h.router.complete("reviewer", "hi")).provider for _ in range(6)]
    assert answered == ["a", "b", "c", "a", "b", "c"]


async def test_round_robin_keeps_fallback_after_pool(build: Any, config_of: Any) -> None:
    roles = {"reviewer": {"providers": ["a", "b"], "fallback": ["c"], "strategy": "round_robin"}}
    h = build(config_of(roles=roles), {})
    assert [h.router.chain("reviewer") for _ in range(2)] == [("a", "b", "c"), ("b", "a", "c")]


async def test_weighted_follows_weights(build: Any, config_of: Any) -> None:
    import random

    roles = {
        "reviewer": {
            "providers": ["a", "b", "c"],
            "strategy": "weighted",
            "weights": {"a": 3, "b": 1},
        }
    }
    h = build(config_of(roles=roles), {}, rng=random.Random(7).random)
    firsts = Counter(h.router.chain("reviewer")[0] for _ in range(4000))
    assert firsts["c"] == 0  # weight 0 (unlisted) is never first ...
    assert 2700 < firsts["a"] < 3300  # ... and a is picked three times as often as b
    chain = h.router.chain("reviewer")
    assert sorted(chain) == ["a", "b", "c"]  # ... but every provider stays in the chain
    assert chain[-1] == "c"


async def test_fastest_measures_each_then_prefers_the_quickest(
    build: Any, config_of: Any, step_of: Any
) -> None:
    roles = {"reviewer": {"providers": ["a", "b", "c"], "strategy": "fastest"}}
    h = build(config_of(roles=roles), {})
    latencies = {"a": 0.03, "b": 0.01, "c": 0.02}
    for pid, provider in h.providers.items():
        provider.default = step_of(delay=latencies[pid])
    # The fake clock does not move during calls, so feed latencies to the health directly.
    answered = []
    for _ in range(3):
        reply = await h.router.complete("reviewer", "hi")
        answered.append(reply.provider)
        h.router.health.record_success(reply.provider, latencies[reply.provider] * 1000)
    assert answered == ["a", "b", "c"]  # unmeasured first, in written order
    assert h.router.chain("reviewer") == ("b", "c", "a")
    assert (await h.router.complete("reviewer", "hi")).provider == "b"


async def test_params_merge_provider_role_call(build: Any, config_of: Any) -> None:
    config = config_of(
        roles={"coder": {"provider": "a", "fallback": ["b"], "params": {"temperature": 0.2}}},
        provider_extra={
            "a": {"params": {"temperature": 0.9, "max_tokens": 100, "top_p": 0.5}},
            "b": {"params": {"max_tokens": 7}},
        },
    )
    h = build(config, {"a": ["auth"]})
    await h.router.complete("coder", "hi", params={"top_p": 0.1})
    assert dict(h.providers["a"].requests[0].params) == {
        "temperature": 0.2,
        "max_tokens": 100,
        "top_p": 0.1,
    }
    assert dict(h.providers["b"].requests[0].params) == {
        "temperature": 0.2,
        "max_tokens": 7,
        "top_p": 0.1,
    }
    # Call params never leak into later calls.
    await h.router.complete("coder", "again")
    assert dict(h.providers["b"].requests[1].params) == {"temperature": 0.2, "max_tokens": 7}


async def test_request_carries_messages_and_schema(build: Any, config_of: Any) -> None:
    h = build(config_of(), {})
    schema = {"type": "object"}
    await h.router.complete(
        "coder",
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        response_schema=schema,
    )
    request = h.providers["a"].requests[0]
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "be brief"),
        ("user", "hi"),
    ]
    assert request.response_schema == schema


async def test_max_concurrency_per_provider(config_of: Any, scripted: Any, step_of: Any) -> None:
    config = config_of(
        ("a", "b"),
        roles={"coder": {"provider": "a"}, "reviewer": {"provider": "b"}},
        provider_extra={"a": {"max_concurrency": 3}},
    )
    providers = {pid: scripted(pid, default=step_of(delay=0.01)) for pid in ("a", "b")}
    router = Router(config, providers=providers)
    router.health.mark_confirmed("a")
    router.health.mark_confirmed("b")
    await asyncio.gather(
        *(router.complete("coder", "hi") for _ in range(20)),
        *(router.complete("reviewer", "hi") for _ in range(20)),
    )
    assert providers["a"].max_in_flight == 3
    assert providers["b"].max_in_flight == 8  # the default limit


async def test_reply_has_cost_usage_and_model(build: Any, config_of: Any) -> None:
    config = config_of(
        provider_extra={"a": {"pricing": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}}
    )
    h = build(config, {})
    reply = await h.router.complete("coder", "hi")
    assert reply.model == "a-model"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 5)
    assert reply.cost_usd == pytest.approx((10 * 2.0 + 5 * 8.0) / 1e6)
    assert reply.finish_reason == "stop"


def test_selection_takes_microseconds(build: Any, config_of: Any) -> None:
    roles = {"reviewer": {"providers": ["a", "b", "c"], "strategy": "round_robin"}}
    h = build(config_of(roles=roles, default="a"), {})
    chain = h.router.chain
    runs = 20_000
    started = time.perf_counter()
    for _ in range(runs):
        chain("reviewer")
    per_call_us = (time.perf_counter() - started) / runs * 1e6
    assert per_call_us < 50  # typically ~1 us; generous for slow CI machines


async def test_primary_stays_first_and_duplicates_collapse(build: Any, config_of: Any) -> None:
    roles = {
        "reviewer": {
            "provider": "a",
            "providers": ["b", "c", "a"],
            "fallback": ["c", "a"],
            "strategy": "round_robin",
        }
    }
    h = build(config_of(roles=roles, default="a"), {})
    assert [h.router.chain("reviewer") for _ in range(2)] == [("a", "b", "c"), ("a", "c", "b")]


async def test_zero_weights_keep_written_order(build: Any, config_of: Any) -> None:
    roles = {
        "reviewer": {"providers": ["c", "a"], "strategy": "weighted", "weights": {"a": 0, "c": 0}}
    }
    h = build(config_of(roles=roles), {})
    assert {h.router.chain("reviewer") for _ in range(20)} == {("c", "a")}
