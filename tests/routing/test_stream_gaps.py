"""Once text flows, the provider's ``timeout`` bounds the gaps between chunks (fake clock).

A vendor that stops writing but keeps its connection alive (Anthropic's ``ping`` events,
SSE comment lines) yields nothing to the router: to it the stream just goes quiet, so
the doubles here go quiet on the fake clock after their first piece.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rolecall.errors import ErrorKind, StreamInterrupted
from rolecall.routing.router import Router
from rolecall.types import ChatRequest, Chunk, Usage

TIMEOUT = 30.0
QUIET = 3600.0  # far past the timeout: a stream still waiting here was never bounded


class GoesQuiet:
    """Streams "Hel", then nothing for ``quiet`` seconds, then "lo" and the end."""

    def __init__(self, provider_id: str, sleep: Any, quiet: float) -> None:
        self.id = provider_id
        self.model = f"{provider_id}-model"
        self._sleep = sleep
        self._quiet = quiet
        self.closed_streams = 0

    async def complete(self, request: ChatRequest) -> Any:
        raise AssertionError("only streamed here")

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        try:
            yield Chunk(text="Hel")
            await self._sleep(self._quiet)
            yield Chunk(text="lo")
            yield Chunk(usage=Usage(input_tokens=3, output_tokens=2), finish_reason="stop")
        finally:
            self.closed_streams += 1

    async def check_credentials(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _router(config_of: Any, fake_time: Any, quiet: float) -> tuple[Router, GoesQuiet]:
    config = config_of(("a",), provider_extra={"a": {"timeout": TIMEOUT}})
    provider = GoesQuiet("a", fake_time.sleep, quiet)
    router = Router(config, providers={"a": provider}, sleep=fake_time.sleep, clock=fake_time.clock)
    return router, provider


async def test_a_stream_that_goes_quiet_after_text_fails_at_the_providers_timeout(
    config_of: Any, fake_time: Any
) -> None:
    router, provider = _router(config_of, fake_time, QUIET)
    started = fake_time.clock()
    stream = router.stream("coder", "hi")
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for text in stream:
            received.append(text)
    assert received == ["Hel"]
    assert fake_time.clock() - started == TIMEOUT  # not QUIET: the gap was bounded
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert "no content for 30 s" in caught.value.message
    assert provider.closed_streams == 1  # the provider's stream was closed, not left open


async def test_a_gap_shorter_than_the_timeout_is_waited_out(config_of: Any, fake_time: Any) -> None:
    router, _ = _router(config_of, fake_time, TIMEOUT - 1)
    stream = router.stream("coder", "hi")
    assert "".join([text async for text in stream]) == "Hello"
    assert stream.reply.finish_reason == "stop"


async def test_a_whole_answer_that_goes_quiet_hands_over_at_the_providers_timeout(
    config_of: Any, fake_time: Any, scripted: Any
) -> None:
    # A whole answer that may be raced is read as a stream: its gaps are bounded too, and
    # since no text reached the caller yet, the next provider answers.
    config = config_of(
        ("a", "b"),
        roles={"coder": {"provider": "a", "fallback": ["b"]}},
        provider_extra={"a": {"timeout": TIMEOUT}},
    )
    providers = {
        "a": GoesQuiet("a", fake_time.sleep, QUIET),
        "b": scripted("b", clock=fake_time.clock, sleep=fake_time.sleep),
    }
    router = Router(config, providers=providers, sleep=fake_time.sleep, clock=fake_time.clock)
    reply = await router.complete("coder", "hi")
    assert (reply.provider, reply.text) == ("b", "answer from b")
    assert reply.latency_ms == TIMEOUT * 1000
    outcomes = [(a.provider, a.outcome, a.error_kind) for a in reply.attempts]
    assert outcomes == [("a", "handover", ErrorKind.TIMEOUT), ("b", "ok", None)]


# On the router's default clock the guard is a timer on the event loop, not a task on an
# injected sleep: the same bounds, in real (short) time. A guard that never fired would
# leave the stream waiting for ever: asyncio.wait_for turns that into a failure instead.
LOOP_TIMEOUT = 0.5
NEVER = 3600.0


class Trickles:
    """Streams ``pieces`` pieces with ``gap`` seconds of real time before each after the first."""

    def __init__(self, pieces: int, gap: float) -> None:
        self.id = "a"
        self.model = "a-model"
        self._pieces = pieces
        self._gap = gap

    async def complete(self, request: ChatRequest) -> Any:
        raise AssertionError("only streamed here")

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        for index in range(self._pieces):
            if index:
                await asyncio.sleep(self._gap)
            yield Chunk(text=f"{index} ")
        yield Chunk(usage=Usage(input_tokens=3, output_tokens=2), finish_reason="stop")

    async def check_credentials(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _loop_clock_router(config_of: Any, provider: Any) -> Router:
    config = config_of(("a",), provider_extra={"a": {"timeout": LOOP_TIMEOUT}})
    return Router(config, providers={"a": provider})


async def test_on_the_loop_clock_a_quiet_stream_fails_at_the_providers_timeout(
    config_of: Any,
) -> None:
    router = _loop_clock_router(config_of, Trickles(2, gap=NEVER))
    stream = router.stream("coder", "hi")
    received: list[str] = []

    async def read() -> None:
        async for text in stream:
            received.append(text)

    with pytest.raises(StreamInterrupted) as caught:
        await asyncio.wait_for(read(), 60)
    assert received == ["0 "]
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert "no content for 0.5 s" in caught.value.message


async def test_on_the_loop_clock_a_stream_longer_than_the_timeout_flows_on(
    config_of: Any,
) -> None:
    # Every gap is a fifth of the timeout, the whole stream more than twice it: the timer
    # wakes while a young read is pending and waits again instead of firing.
    router = _loop_clock_router(config_of, Trickles(13, gap=LOOP_TIMEOUT / 5))
    stream = router.stream("coder", "hi")
    text = "".join([piece async for piece in stream])
    assert text == "".join(f"{index} " for index in range(13))
    assert stream.reply.finish_reason == "stop"
