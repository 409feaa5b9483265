"""Stalls and unsendable text against the fake vendor servers, over the real adapters.

Real time with small limits: failover_within 0.3 s against a 60 s stall, so the
bounds below are generous and cannot flake on a loaded machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.routing.router import Router
from rolecall.sim import SimServer

KEY = "test-key"
FAILOVER = 0.3
STALL = "timeout:delay=60"


@pytest.fixture
def sims() -> Iterator[dict[str, SimServer]]:
    servers = {
        "gpt": SimServer("openai", api_key=KEY, reply="one two three four five six seven eight"),
        "claude": SimServer("anthropic", api_key=KEY, reply="hello from claude"),
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


def _router(sims: dict[str, SimServer]) -> Router:
    providers = {
        pid: {
            "type": server.protocol,
            "model": "sim-model",
            "api_key": KEY,
            "base_url": server.base_url,
            "timeout": 120,
        }
        for pid, server in sims.items()
    }
    config = RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": {"coder": {"provider": "gpt", "fallback": ["claude"]}},
            "failover_within": FAILOVER,
        }
    )
    return Router(config)


def _outcomes(attempts: Any) -> list[tuple[str, str, str | None]]:
    return [(a.provider, a.outcome, a.error_kind.value if a.error_kind else None) for a in attempts]


async def test_a_stalled_whole_answer_is_answered_by_the_fallback(
    sims: dict[str, SimServer],
) -> None:
    sims["gpt"].script(STALL)
    async with _router(sims) as router:
        started = time.monotonic()
        reply = await router.complete("coder", "hi")
        elapsed = time.monotonic() - started
    assert reply.provider == "claude"
    assert elapsed < FAILOVER + 5  # against a 60 s stall and a 120 s timeout
    assert _outcomes(reply.attempts) == [("gpt", "cancelled", "stalled"), ("claude", "ok", None)]


async def test_a_stream_stalled_before_headers_is_answered_by_the_fallback(
    sims: dict[str, SimServer],
) -> None:
    sims["gpt"].script(STALL)
    async with _router(sims) as router:
        started = time.monotonic()
        stream = router.stream("coder", "hi")
        text = "".join([chunk async for chunk in stream])
        elapsed = time.monotonic() - started
    assert text == "hello from claude"
    assert elapsed < FAILOVER + 5
    assert _outcomes(stream.reply.attempts) == [
        ("gpt", "cancelled", "stalled"),
        ("claude", "ok", None),
    ]


async def test_a_slow_live_stream_is_not_raced_after_its_first_token(
    sims: dict[str, SimServer],
) -> None:
    sims["gpt"].chunk_delay = 0.2  # eight words over ~1.6 s, far past failover_within
    async with _router(sims) as router:
        stream = router.stream("coder", "hi")
        text = "".join([chunk async for chunk in stream])
    assert text == "one two three four five six seven eight"
    assert stream.reply.provider == "gpt"
    assert _outcomes(stream.reply.attempts) == [("gpt", "ok", None)]
    assert sims["claude"].calls == 0


async def test_a_slow_live_whole_answer_is_not_raced_after_its_first_token(
    sims: dict[str, SimServer],
) -> None:
    sims["gpt"].chunk_delay = 0.2  # a long answer still being written is not a stall
    async with _router(sims) as router:
        reply = await router.complete("coder", "hi")
    assert reply.text == "one two three four five six seven eight"
    assert reply.provider == "gpt"
    assert _outcomes(reply.attempts) == [("gpt", "ok", None)]
    assert sims["claude"].calls == 0


async def test_unsendable_text_is_refused_before_any_provider_is_called(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        for _ in range(6):
            with pytest.raises(ProviderError) as caught:
                await router.complete("coder", "bad \ud800 text")
            assert caught.value.kind is ErrorKind.BAD_REQUEST
            assert "messages[0].content" in caught.value.message
        with pytest.raises(ProviderError):
            router.stream("coder", [{"role": "user", "content": "\ud800"}])
        assert sims["gpt"].calls == sims["claude"].calls == 0
        reply = await router.complete("coder", "hi")
        assert reply.provider == "gpt"  # no open circuit: nothing was blamed on it
        assert router.health.state("gpt") == "ok"
