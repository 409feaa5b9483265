"""The embedded model runs one request at a time: a call waits for it as for a full provider.

Its slot is one call, so a queued call waits where ``failover_within`` bounds the wait
(then hands over, no fault) rather than in the model's own queue, where the stall race
took it for a stalled call and the circuit opened on a healthy model. Its first load is
a wait for that slot too, not a call that stalls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.types import ChatRequest, Chunk, Completion, Usage

FAILOVER = 1.0
LOAD = 3.0  # the model's first load
FIRST = 0.2  # each request's first token
REST = 2.0  # and the rest of its long answer, tokens flowing


class OneAtATime:
    """A double of the embedded model: loads once, then runs one request at a time (in
    arrival order, as its worker thread does), each a long answer whose tokens flow."""

    def __init__(self, sleep: Callable[[float], Awaitable[Any]]) -> None:
        self.id = "local"
        self.model = "local-model"
        self._sleep = sleep
        self._loading = asyncio.Lock()
        self._turn = asyncio.Lock()
        self.loads = 0
        self.started = 0  # requests the model began generating

    async def load(self) -> None:
        async with self._loading:
            if not self.loads:
                await self._sleep(LOAD)
                self.loads += 1

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        await self.load()
        async with self._turn:
            self.started += 1
            await self._sleep(FIRST)
            yield Chunk(text="local ")
            await self._sleep(REST)
            yield Chunk(text="answer")
            yield Chunk(usage=Usage(10, 2), finish_reason="stop")

    async def complete(self, request: ChatRequest) -> Completion:
        text = "".join([chunk.text async for chunk in self.stream(request)])
        return Completion(text=text, model=self.model, usage=Usage(10, 2), finish_reason="stop")

    async def check_credentials(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _router(fake_time: Any, scripted: Any) -> tuple[Router, OneAtATime]:
    config = RolecallConfig.model_validate(
        {
            "providers": {
                "local": {"type": "local"},  # max_concurrency 8 by default: still one at a time
                "cloud": {
                    "type": "openai-compatible",
                    "model": "cloud-model",
                    "base_url": "http://127.0.0.1:9/v1",
                },
            },
            "roles": {"coder": {"provider": "local", "fallback": ["cloud"]}},
            "failover_within": FAILOVER,
        }
    )
    local = OneAtATime(fake_time.sleep)
    cloud = scripted("cloud", clock=fake_time.clock, sleep=fake_time.sleep)
    router = Router(
        config,
        providers={"local": local, "cloud": cloud},
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    for pid in ("local", "cloud"):
        router.health.mark_confirmed(pid)
    return router, local


async def test_calls_queued_for_the_local_model_hand_over_without_a_fault(
    fake_time: Any, scripted: Any
) -> None:
    router, local = _router(fake_time, scripted)
    await local.load()  # loaded already: only the queue is at stake here
    replies = await asyncio.gather(*(router.complete("coder", f"t{i}") for i in range(12)))
    # Was: every call went into the model's queue, those behind the first counted as
    # stalled, and the circuit opened on a healthy model (skipped 30 s).
    assert router.health.state("local") == "ok"
    assert router.health.snapshot()["local"]["consecutive_failures"] == 0
    kinds = {a.error_kind for reply in replies for a in reply.attempts}
    assert ErrorKind.STALLED not in kinds
    by_local = [reply for reply in replies if reply.provider == "local"]
    assert len(by_local) == 1 == local.started  # the rest went on to the cloud at once
    assert by_local[0].text == "local answer"  # a long answer whose tokens flow: no stall
    for reply in replies:
        if reply.provider == "cloud":
            skip = reply.attempts[0]
            assert (skip.provider, skip.attempt, skip.outcome, skip.error_kind) == (
                "local",
                0,
                "handover",
                ErrorKind.OVERLOADED,
            )


async def test_the_local_models_first_load_is_a_wait_not_a_stall(
    fake_time: Any, scripted: Any
) -> None:
    router, local = _router(fake_time, scripted)
    first = await router.complete("coder", "while it loads")
    # Was: the call waiting for the load counted as a stall against the model.
    assert first.provider == "cloud"
    assert [(a.provider, a.attempt, a.error_kind) for a in first.attempts] == [
        ("local", 0, ErrorKind.OVERLOADED),
        ("cloud", 1, None),
    ]
    assert router.health.snapshot()["local"]["consecutive_failures"] == 0
    await fake_time.sleep(LOAD)  # the load went on meanwhile
    assert local.loads == 1
    later = await router.complete("coder", "once loaded")
    assert later.provider == "local"
    assert [(a.provider, a.attempt) for a in later.attempts] == [("local", 1)]


async def test_a_model_that_cannot_load_fails_its_call_with_the_loads_error(
    tmp_path: Any,
) -> None:
    config = RolecallConfig.model_validate(
        {
            "providers": {"local": {"type": "local", "model_path": str(tmp_path / "no.gguf")}},
            "default_provider": "local",
        }
    )
    router = Router(config)
    for _ in range(2):  # and again: a failed load is not kept
        with pytest.raises(AllProvidersFailed) as failed:
            await router.complete("coder", "hi")
        assert [(a.provider, a.attempt, a.error_kind) for a in failed.value.attempts] == [
            ("local", 1, ErrorKind.NOT_FOUND),
        ]
        assert "no.gguf" in str(failed.value)
        router.health.reset()
