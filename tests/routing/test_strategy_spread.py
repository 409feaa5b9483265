"""The role strategies spread calls as their names promise, around providers that are down.

A provider that cannot take a call (cooling down after a 429, a dead key, an open
circuit) gives its turn (round_robin) or its weight (weighted) to the others, not a
double share to its neighbour; ``fastest`` measures again a provider it once found
slow instead of passing it over for ever.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from sim_trio import providers_for

from rolecall.config.schema import RolecallConfig
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer

POOL = ["a", "b", "c"]
WIDE = {"max_concurrency": 1000}


def _shares(replies: list[Any]) -> Counter[str]:
    return Counter(reply.provider for reply in replies)


@pytest.mark.parametrize("down", ["rate_limit:600", "auth"])
async def test_round_robin_gives_a_down_providers_turns_to_the_others_evenly(
    build: Any, config_of: Any, down: str
) -> None:
    roles = {"reviewer": {"providers": POOL, "strategy": "round_robin"}}
    # Room for every call at once: none waits for a slot.
    h = build(config_of(roles=roles, provider_extra=dict.fromkeys(POOL, WIDE)), {"b": [down]})
    await h.router.complete("reviewer", "hi")  # a's turn
    await h.router.complete("reviewer", "hi")  # b's turn: b goes down, c answers
    replies = await asyncio.gather(*(h.router.complete("reviewer", "hi") for _ in range(600)))
    assert _shares(replies) == {"a": 300, "c": 300}
    assert len(h.providers["b"].calls) == 1


async def test_round_robin_over_sims_skips_a_rate_limited_vendor_evenly(
    sims: dict[str, SimServer],
) -> None:
    config = RolecallConfig.model_validate(
        {
            "providers": providers_for(sims),
            "roles": {"reviewer": {"providers": list(sims), "strategy": "round_robin"}},
        }
    )
    sims["claude"].set_faults(Fault("rate_limit", retry_after=600))
    async with Router(config) as router:
        replies = [await router.complete("reviewer", "hi") for _ in range(61)]
    # claude's first turn ends its 429 in a hand-over to gemini; then it is passed over.
    assert _shares(replies) == {"gpt": 30, "gemini": 31}
    assert sims["claude"].stats()["calls"] == 1


async def test_weighted_shares_a_down_providers_weight_by_the_others_weights(
    build: Any, config_of: Any
) -> None:
    roles = {
        "reviewer": {"providers": POOL, "strategy": "weighted", "weights": {"a": 1, "b": 2, "c": 1}}
    }
    h = build(config_of(roles=roles), {}, rng=random.Random(11).random)
    h.router.health.cool_down("b", h.time.now + 600)
    replies = [await h.router.complete("reviewer", "hi") for _ in range(4000)]
    shares = _shares(replies)
    # 1:1 between a and c (binomial sd ~32), not a taking b's whole share (3:1).
    assert 1850 < shares["a"] < 2150
    assert shares["a"] + shares["c"] == 4000


async def test_weighted_splits_huge_weights_by_their_ratio(build: Any, config_of: Any) -> None:
    roles = {
        "reviewer": {
            "providers": ["a", "b"],
            "strategy": "weighted",
            "weights": {"a": 1e308, "b": 1e308},
        }
    }
    h = build(config_of(roles=roles), {}, rng=random.Random(5).random)
    firsts = Counter(h.router.chain("reviewer")[0] for _ in range(2000))
    assert 900 < firsts["a"] < 1100


async def test_fastest_measures_again_a_provider_once_slow(
    build: Any, config_of: Any, step_of: Any
) -> None:
    roles = {"reviewer": {"providers": ["a", "b"], "strategy": "fastest"}}
    h = build(config_of(("a", "b"), roles=roles), {})
    h.providers["a"].default = step_of(delay=1.0)
    # b's first answer is slow (a cold start), every later one ten times faster than a's.
    h.providers["b"].script = [step_of(delay=4.0)]
    h.providers["b"].default = step_of(delay=0.1)
    answered = [(await h.router.complete("reviewer", "hi")).provider for _ in range(400)]
    assert answered[:2] == ["a", "b"]  # each measured once, in written order
    assert Counter(answered[300:]) == {"b": 95, "a": 5}  # b leads; a is measured again too
