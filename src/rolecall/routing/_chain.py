"""Walking a role's chain: the first provider to produce its first item answers the task.

A call that has produced nothing ``failover_within`` after it started (not the
chain's last provider) is raced: the rest of the chain starts, and whichever
produces its first item first wins; the other is cancelled and recorded. If the
rest of the chain fails, the stalled call is still awaited, up to its timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from rolecall.errors import ProviderError
from rolecall.routing._attempt import Opened, ProviderCalls, Waiting, read_rest
from rolecall.routing._task import TaskRun, unexpected_error
from rolecall.types import ChatRequest, Reply

__all__ = ["complete_on_chain", "walk"]


async def walk(
    calls: ProviderCalls,
    task: TaskRun,
    chain: tuple[str, ...],
    request_for: Callable[[str], ChatRequest],
    stream: bool,
) -> Opened | None:
    """The first call in ``chain`` to produce its first item, or None when all failed."""
    for index, pid in enumerate(chain):
        request = calls.fit(task, pid, request_for(pid))
        if request is None:
            continue
        raceable = index + 1 < len(chain)
        got = await calls.open(task, pid, request, stream=stream, raceable=raceable)
        if isinstance(got, Waiting):
            rest = walk(calls, task, chain[index + 1 :], request_for, stream)
            return await _race(calls, task, got, rest)
        if got is not None:
            return got
    # Rate-limited providers skipped above, once more if their reset is near.
    for pid in task.take_deferred():
        request = calls.fit(task, pid, request_for(pid))
        if request is not None and await calls.await_cooldown(pid):
            got = await calls.open(task, pid, request, stream=stream, raceable=False)
            assert not isinstance(got, Waiting)
            if got is not None:
                return got
    return None


async def _race(
    calls: ProviderCalls,
    task: TaskRun,
    waiting: Waiting,
    rest: Coroutine[Any, Any, Opened | None],
) -> Opened | None:
    challenger: asyncio.Future[Opened | None] = asyncio.ensure_future(rest)
    try:
        await asyncio.wait((waiting.call, challenger), return_when=asyncio.FIRST_COMPLETED)
        if waiting.call.done():
            opened = calls.settle(task, waiting)
            if opened is None:
                return await challenger
            await _stop(calls, task, challenger)
            return opened
        winner = challenger.result()
        if winner is not None:
            await calls.abandon_stalled(task, waiting)
            return winner
        await asyncio.wait((waiting.call,))
        return calls.settle(task, waiting)
    except BaseException:
        if not challenger.done():
            challenger.cancel()
            await asyncio.gather(challenger, return_exceptions=True)
        if waiting.slot.held and not waiting.call.done():
            await calls.drop(task, waiting)
        raise


async def _stop(
    calls: ProviderCalls, task: TaskRun, challenger: asyncio.Future[Opened | None]
) -> None:
    """The stalled call answered after all: stop the challenger (it records its own end)."""
    challenger.cancel()
    results = await asyncio.gather(challenger, return_exceptions=True)
    late = results[0]
    if isinstance(late, Opened):  # it produced its first item in the same instant
        await calls.abandon(task, late)


async def complete_on_chain(
    calls: ProviderCalls,
    task: TaskRun,
    chain: tuple[str, ...],
    request_for: Callable[[str], ChatRequest],
) -> Reply:
    """A whole answer from the first provider in ``chain`` that gives one.

    A call that could be raced was opened as a stream; it is read to its end here. If
    it breaks after its first token nothing has reached the caller yet, so the task
    hands over to the providers after it, like any failure.
    """
    remaining = chain
    while True:
        opened = await walk(calls, task, remaining, request_for, stream=False)
        if opened is None:
            raise calls.outcomes.fail(task)
        try:
            completion = opened.first.completion  # a whole answer: nothing left to read
            if completion is None:
                completion = await read_rest(opened, calls.provider(opened.pid).model)
        except BaseException as exc:
            opened.slot.release()
            if not isinstance(exc, Exception):  # cancelled: its client went away
                latency_ms = (calls.clock() - opened.started) * 1000.0
                calls.outcomes.record(
                    task, opened.pid, opened.attempt, "cancelled", None, latency_ms
                )
                raise
            error = exc if isinstance(exc, ProviderError) else unexpected_error(opened.pid, exc)
            now = calls.clock()
            latency_ms = (now - opened.started) * 1000.0
            calls.after_failure(
                task, opened.pid, opened.attempt, latency_ms, error, now, now, may_retry=False
            )
            remaining = remaining[remaining.index(opened.pid) + 1 :]
            continue
        opened.slot.release()
        latency_ms = (calls.clock() - opened.started) * 1000.0
        calls.health.record_success(opened.pid, latency_ms)
        calls.outcomes.record_ok(task, opened.pid, opened.attempt, latency_ms, completion)
        return calls.outcomes.succeed(task)
