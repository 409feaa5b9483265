"""A router closed while calls run (in other tasks): they end, recorded as cancelled.

Closing under a call used to leave it running on a closed provider, or (once its task
was cancelled) fail looking the provider up, as a ``bad_response`` that was retried and
handed to the next provider, itself closed; the caller got a KeyError.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import RouterClosed
from rolecall.events import AttemptEvent
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer

KEY = "sk-close-in-flight-0123456789"


class _Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)

    def attempts(self) -> list[tuple[str, str, str | None]]:
        return [
            (e.provider, e.outcome, e.error_kind)
            for e in self.events
            if isinstance(e, AttemptEvent)
        ]


@asynccontextmanager
async def _two_providers() -> AsyncIterator[tuple[Router, _Sink, SimServer, SimServer]]:
    """A router over sims ``a`` then ``b`` (role coder), never racing them."""
    with SimServer("openai", api_key=KEY) as a, SimServer("openai", api_key=KEY) as b:
        config = RolecallConfig.model_validate(
            {
                "providers": {
                    pid: {
                        "type": "openai",
                        "model": f"{pid}-model",
                        "api_key": KEY,
                        "base_url": sim.base_url,
                    }
                    for pid, sim in (("a", a), ("b", b))
                },
                "roles": {"coder": {"provider": "a", "fallback": ["b"]}},
                "failover_within": 600,
            }
        )
        sink = _Sink()
        router = Router(config, sinks=[sink])
        try:
            yield router, sink, a, b
        finally:
            await router.aclose()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for a sim's count (kept in the sim's own thread: there is no event to await)."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def _read_all(router: Router) -> str:
    return "".join([text async for text in router.stream("coder", "hi")])


CALLS: dict[str, Callable[[Router], Awaitable[Any]]] = {
    "complete": lambda router: router.complete("coder", "hi"),
    "stream": _read_all,
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_aclose_ends_a_call_waiting_for_its_answer(
    call: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with _two_providers() as (router, sink, a, b):
        a.set_faults("timeout")  # accepts the request, answers nothing
        running = asyncio.ensure_future(CALLS[call](router))
        await _until(lambda: a.in_flight == 1)
        async with asyncio.timeout(30):  # a guard: the call used to run on for ever
            await router.aclose()
            with pytest.raises(RouterClosed, match="router was closed while this call ran"):
                await running
        await _until(lambda: a.in_flight == 0)  # its connection closed, not left open
    assert sink.attempts() == [("a", "cancelled", None)]
    assert b.calls == 0  # no hand-over to a provider closing too
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_aclose_ends_a_stream_waiting_for_its_next_chunk() -> None:
    async with _two_providers() as (router, sink, a, b):
        a.set_faults(Fault("stall", after_chunks=1))
        stream = router.stream("coder", "hi")
        first = await anext(stream)
        assert first
        reading = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        async with asyncio.timeout(30):
            await router.aclose()
            with pytest.raises(RouterClosed):
                await reading
        await _until(lambda: a.in_flight == 0)
    assert sink.attempts() == [("a", "cancelled", None)]
    assert b.calls == 0


async def test_a_stream_read_after_aclose_raises_and_is_recorded_cancelled() -> None:
    async with _two_providers() as (router, sink, a, _):
        a.set_faults(Fault("stall", after_chunks=1))
        stream = router.stream("coder", "hi")
        assert await anext(stream)
        await router.aclose()  # the reader holds a chunk: nothing of it is inside the router
        with pytest.raises(RouterClosed):
            await anext(stream)
        await _until(lambda: a.in_flight == 0)
    assert sink.attempts() == [("a", "cancelled", None)]


async def test_aclose_twice_at_once_both_wait_for_the_calls_to_end() -> None:
    async with _two_providers() as (router, sink, a, _):
        a.set_faults("timeout")
        running = asyncio.ensure_future(router.complete("coder", "hi"))
        await _until(lambda: a.in_flight == 1)
        async with asyncio.timeout(30):
            await asyncio.gather(router.aclose(), router.aclose())
            assert running.done()  # ended before either aclose() returned
        with pytest.raises(RouterClosed):
            running.result()
        with pytest.raises(RouterClosed):
            await router.complete("coder", "again")
    assert sink.attempts() == [("a", "cancelled", None)]


async def test_a_call_cancelled_by_its_caller_too_stays_cancelled() -> None:
    """Both the caller and the closing cancel it: the caller's cancel is not swallowed."""
    async with _two_providers() as (router, _, a, _b):
        a.set_faults("timeout")
        running = asyncio.ensure_future(router.complete("coder", "hi"))
        await _until(lambda: a.in_flight == 1)
        running.cancel()
        await router.aclose()
        with pytest.raises(asyncio.CancelledError):
            await running


def _in_a_thread(run: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:  # handed to the test's own thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]


@pytest.mark.parametrize("thread", ["same thread", "another thread"])
def test_aclose_ends_a_call_under_a_later_event_loop(
    thread: str, scripted: Any, config_of: Any, step_of: Any
) -> None:
    """A router that answered under one event loop (one ``asyncio.run``), then runs a call
    under another, on the same thread or another: closing it still ends that call."""
    provider = scripted("a", ["ok", step_of(delay=3600)])  # the second call never answers
    sink = _Sink()
    router = Router(config_of(("a",)), providers={"a": provider}, sinks=[sink])
    assert asyncio.run(router.complete("coder", "hi")).text == "answer from a"

    async def close_under_a_call() -> None:
        running = asyncio.ensure_future(router.complete("coder", "hi"))
        await _until(lambda: provider.in_flight == 1)
        async with asyncio.timeout(10):  # a guard: the call used to run on for ever
            await router.aclose()
            with pytest.raises(RouterClosed):
                await running

    if thread == "same thread":
        asyncio.run(close_under_a_call())
    else:
        _in_a_thread(lambda: asyncio.run(close_under_a_call()))
    assert sink.attempts() == [("a", "ok", None), ("a", "cancelled", None)]
