"""One provider's calls for one task: admission, concurrency slot, retries and records.

:class:`ProviderCalls` is the single attempt loop that whole answers and streams
share. It calls one provider until that provider has produced its first item (the
whole answer, or a stream's first text), retrying under the global policy, and
returns an :class:`Opened` call that still holds the provider's slot, or None
when the task must move on (the failure is then recorded as a hand-over).

A call that is not the last hope of its chain waits for a busy provider (``_slot``)
for ``failover_within`` at most, then hands over without calling it (a skip, as an
unsupported request is: the provider is busy, not at fault). Once called it is
watched: when it has produced nothing ``failover_within`` after it started it comes
back as :class:`Waiting` (still running) and the chain walker (``_chain``) races it
against the next provider. Only time to the first item is bounded so; once text
flows the provider's own ``timeout`` bounds the gaps between chunks, keep-alives or
not (``_idle``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rolecall.config.schema import RetryConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.health.memory import HealthTracker
from rolecall.providers.base import Provider
from rolecall.routing._assemble import Assembly
from rolecall.routing._capabilities import Capabilities
from rolecall.routing._idle import IdleGuard
from rolecall.routing._inflight import InFlight
from rolecall.routing._limits import ConcurrencyLimit
from rolecall.routing._outcomes import Outcomes
from rolecall.routing._slot import Slot, take_slot
from rolecall.routing._task import TaskRun, unexpected_error
from rolecall.routing.retry import retry_delay, should_retry, within_budget
from rolecall.types import ChatRequest, Chunk, Completion

__all__ = ["Opened", "ProviderCalls", "Waiting", "read_rest"]

log = logging.getLogger("rolecall.router")

Sleep = Callable[[float], Awaitable[Any]]
# Wraps a stream that has sent content: the rest is read through it.
_Guard = Callable[[AsyncIterator[Chunk]], AsyncIterator[Chunk]]
# How long a provider cools down after a 429 that named no reset time.
DEFAULT_RATE_LIMIT_COOLDOWN = 1.0
# Health states in which no new call may start.
_DOWN = frozenset({"unavailable", "cooling_down", "open"})


@dataclass(slots=True)
class _First:
    """What a call produced first: a whole answer, or a stream's first content and the rest."""

    completion: Completion | None = None
    head: Chunk | None = None  # the stream's first chunk with content
    chunks: AsyncIterator[Chunk] | None = None
    assembly: Assembly | None = None  # a stream's chunks (a whole answer needs none)


@dataclass(slots=True)
class Opened:
    """A call that produced its first item; holds its slot until finished or abandoned."""

    pid: str
    attempt: int
    started: float
    first: _First
    slot: Slot


@dataclass(slots=True)
class Waiting:
    """A call with nothing to show ``failover_within`` after it started; still running."""

    pid: str
    attempt: int
    started: float
    call: asyncio.Future[_First]
    slot: Slot


async def _close(chunks: AsyncIterator[Chunk]) -> None:
    aclose: Callable[[], Any] | None = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _first_of(
    provider: Provider, request: ChatRequest, stream: bool, guard: _Guard
) -> _First:
    """Call the provider and read until its first item (the stream stays open after it).

    A whole answer that may be raced is asked for as a stream too: only its first
    token tells a live provider writing a long answer from a stalled one. Text,
    reasoning or a tool call all count as a first token. The rest of the stream is
    read through ``guard``, which bounds the gaps between its chunks.
    """
    if not stream:
        return _First(completion=await provider.complete(request))
    assembly = Assembly()
    first = _First(assembly=assembly)
    chunks = provider.stream(request)
    try:
        async for chunk in chunks:
            assembly.add(chunk)
            if chunk.has_content:
                first.head, first.chunks = chunk, guard(chunks)
                return first
    except BaseException:
        await _close(chunks)
        raise
    await _close(chunks)
    return first


async def read_rest(opened: Opened, default_model: str) -> Completion:
    """The whole answer of a call opened as a stream: its first chunk and every one after."""
    first = opened.first
    if first.completion is not None:
        return first.completion
    assembly = first.assembly
    assert assembly is not None  # opened as a stream
    if first.chunks is not None:
        try:
            async for chunk in first.chunks:
                assembly.add(chunk)
        finally:
            await _close(first.chunks)
    return assembly.completion(default_model)


async def _cancel(future: asyncio.Future[Any]) -> None:
    """Cancel ``future`` and wait until it has finished its own clean-up."""
    future.cancel()
    await asyncio.gather(future, return_exceptions=True)


class ProviderCalls:
    """The attempt loop and its records; built once per router, shared by every task."""

    def __init__(
        self,
        *,
        provider: Callable[[str], Provider],
        semaphores: Mapping[str, ConcurrencyLimit],
        health: HealthTracker,
        outcomes: Outcomes,
        capabilities: Capabilities,
        retry: RetryConfig,
        failover_within: float,
        timeouts: Mapping[str, float],
        clock: Callable[[], float],
        sleep: Sleep,
        rng: Callable[[], float],
        inflight: InFlight,
    ) -> None:
        self.provider = provider
        self._timeouts = timeouts  # each provider's own: the longest gap once text flows
        self.inflight = inflight
        self._semaphores = semaphores
        self.health = health
        self.outcomes = outcomes
        self._events = outcomes.events
        self._capabilities = capabilities
        self._retry = retry
        self.failover_within = failover_within
        self.clock = clock
        self.sleep = sleep
        self._rng = rng

    def fit(self, task: TaskRun, pid: str, request: ChatRequest) -> ChatRequest | None:
        """``request`` as ``pid`` takes it, or None when ``pid`` lacks a feature it needs or
        cannot take one of the caller's params.

        A skipped provider is recorded as a hand-over of kind ``unsupported`` at attempt
        0 with no latency: no call was made, and its health is left alone.
        """
        fitted = self._capabilities.fit(pid, request, task.params)
        if isinstance(fitted, ChatRequest):
            return fitted
        log.info("%s skipped: %s", pid, fitted.message)
        self.provider(pid)  # built (no call made), so the record can name its model
        self.outcomes.record(task, pid, 0, "handover", fitted.kind, 0.0, error=fitted)
        task.failed[pid] = fitted
        task.handovers += 1
        return None

    async def open(
        self, task: TaskRun, pid: str, request: ChatRequest, *, stream: bool, raceable: bool
    ) -> Opened | Waiting | None:
        """Call ``pid`` until it produces its first item, fails for good or stalls (raceable)."""
        provider = self.provider(pid)
        attempt = 0
        first_failure_at: float | None = None
        retrying: tuple[int, float, ProviderError] | None = None
        while True:
            try:
                slot = await take_slot(
                    self.health,
                    self._semaphores[pid],
                    pid,
                    self.failover_within if raceable else None,
                    self.sleep,
                )
            except BaseException:
                if retrying is not None:
                    self._record_earlier(task, pid, retrying, "cancelled")
                raise
            if slot is None:
                self._skipped(task, pid, retrying)
                return None
            if isinstance(slot, str):  # busy: no slot within failover_within
                self._full(task, pid, retrying, slot)
                return None
            if self.health.state(pid) in _DOWN:
                # It went down (429, dead key, open circuit) while this call waited for a
                # slot: the admission predates that, so skip it as if it came now.
                slot.release()
                self._skipped(task, pid, retrying)
                return None
            if retrying is not None:
                self._record_earlier(task, pid, retrying, "retry")
                retrying = None
            attempt += 1
            started = self.clock()
            if self._events.starts:  # a killed process's call leaves its start in the records
                self.outcomes.record_start(task, pid, attempt)
            try:
                if stream or raceable:
                    got = await self._attempt(
                        task, pid, provider, request, stream, raceable, attempt
                    )
                else:  # a whole answer nobody races: the adapter's, without a frame between
                    try:
                        got = _First(completion=await provider.complete(request))
                    except asyncio.CancelledError:  # the client went away
                        latency_ms = (self.clock() - started) * 1000.0
                        self.outcomes.record(task, pid, attempt, "cancelled", None, latency_ms)
                        raise
            except ProviderError as exc:
                error = exc
            except asyncio.CancelledError:
                slot.release()
                raise
            except Exception as exc:  # an adapter bug still hands over, named
                error = unexpected_error(pid, exc)
            else:
                if isinstance(got, _First):
                    return Opened(pid, attempt, started, got, slot)
                return Waiting(pid, attempt, started, got, slot)
            slot.release()
            now = self.clock()
            if first_failure_at is None:
                first_failure_at = now
            latency_ms = (now - started) * 1000.0
            delay = self.after_failure(task, pid, attempt, latency_ms, error, now, first_failure_at)
            if delay is None:
                return None
            retrying = (attempt, latency_ms, error)
            try:
                await self.sleep(delay)
            except asyncio.CancelledError:
                self._record_earlier(task, pid, retrying, "cancelled")
                raise

    async def _attempt(
        self,
        task: TaskRun,
        pid: str,
        provider: Provider,
        request: ChatRequest,
        stream: bool,
        raceable: bool,
        attempt: int,
    ) -> _First | asyncio.Future[_First]:
        """One call: its first item, or (raceable, nothing yet) the still-running call."""
        started = self.clock()
        limit = self._timeouts.get(pid)

        def guard(chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
            if limit is None:
                return chunks
            return IdleGuard(chunks, pid, limit, self.clock, self.sleep)

        if not raceable:
            try:
                return await _first_of(provider, request, stream, guard)
            except asyncio.CancelledError:  # the client went away
                latency_ms = (self.clock() - started) * 1000.0
                self.outcomes.record(task, pid, attempt, "cancelled", None, latency_ms)
                raise
        call = asyncio.ensure_future(_first_of(provider, request, True, guard))
        timer = asyncio.ensure_future(self.sleep(self.failover_within))
        try:
            await asyncio.wait((call, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            timer.cancel()
            await _cancel(call)
            latency_ms = (self.clock() - started) * 1000.0
            self.outcomes.record(task, pid, attempt, "cancelled", None, latency_ms)
            raise
        if call.done():
            timer.cancel()
            return call.result()
        return call

    # ---- settling a call that was raced ----------------------------------------------------

    def settle(self, task: TaskRun, waiting: Waiting) -> Opened | None:
        """The outcome of a raced call that finished: opened, or failed (a hand-over)."""
        assert waiting.call.done()
        try:
            return Opened(
                waiting.pid, waiting.attempt, waiting.started, waiting.call.result(), waiting.slot
            )
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # an adapter bug still hands over, named
            error = unexpected_error(waiting.pid, exc)
        waiting.slot.release()
        now = self.clock()
        self.after_failure(
            task,
            waiting.pid,
            waiting.attempt,
            (now - waiting.started) * 1000.0,
            error,
            now,
            now,
            may_retry=False,
        )
        return None

    async def abandon_stalled(self, task: TaskRun, waiting: Waiting) -> None:
        """The next provider answered first: cancel the stalled call and record the stall."""
        await _cancel(waiting.call)
        waiting.slot.release()
        if waiting.call.done() and not waiting.call.cancelled():
            opened = self.settle(task, waiting)  # it answered or failed in the same instant
            if opened is None:
                return
            await self.abandon(task, opened, stalled=False)
            return
        latency_ms = (self.clock() - waiting.started) * 1000.0
        error = ProviderError(
            f"no first token within failover_within ({self.failover_within:g} s); "
            "the next provider answered first",
            kind=ErrorKind.STALLED,
            provider=waiting.pid,
        )
        self.health.record_failure(waiting.pid, error)
        log.info("%s attempt %d stalled, handed over", waiting.pid, waiting.attempt)
        self.outcomes.record(
            task, waiting.pid, waiting.attempt, "cancelled", ErrorKind.STALLED, latency_ms
        )
        task.failed[waiting.pid] = error
        task.handovers += 1

    async def drop(self, task: TaskRun, waiting: Waiting) -> None:
        """The task itself was cancelled (its client went away) while ``waiting`` ran."""
        await _cancel(waiting.call)
        waiting.slot.release()
        latency_ms = (self.clock() - waiting.started) * 1000.0
        self.outcomes.record(task, waiting.pid, waiting.attempt, "cancelled", None, latency_ms)

    async def abandon(self, task: TaskRun, opened: Opened, *, stalled: bool = False) -> None:
        """Close a call that lost the race after producing its first item (no tokens billed)."""
        if opened.first.chunks is not None:
            await _close(opened.first.chunks)
        opened.slot.release()
        latency_ms = (self.clock() - opened.started) * 1000.0
        kind = ErrorKind.STALLED if stalled else None
        self.outcomes.record(task, opened.pid, opened.attempt, "cancelled", kind, latency_ms)

    # ---- failures -------------------------------------------------------------------------

    def after_failure(
        self,
        task: TaskRun,
        pid: str,
        attempt: int,
        latency_ms: float,
        error: ProviderError,
        now: float,
        first_failure_at: float,
        *,
        may_retry: bool = True,
    ) -> float | None:
        """Note a failed call; the seconds to wait before retrying, or None to hand over.

        A hand-over is recorded at once; a retry is recorded by the caller once the
        provider is admitted again (or as a hand-over if it went down meanwhile).
        """
        if not error.provider:
            error.provider = pid
        health = self.health
        kind = error.kind
        if kind.disables_provider:
            health.mark_unavailable(pid, error)
        elif kind is ErrorKind.RATE_LIMIT:
            cooldown = error.retry_after
            health.cool_down(
                pid, now + (DEFAULT_RATE_LIMIT_COOLDOWN if cooldown is None else cooldown)
            )
        # The request (unsupported) or this process (local), not the provider: health untouched.
        if kind is not ErrorKind.UNSUPPORTED and not error.local:
            health.record_failure(pid, error)
        delay: float | None = None
        if (
            may_retry
            and should_retry(error, attempt, self._retry)
            and health.state(pid) in ("ok", "cooling_down")
        ):
            floor = max(error.retry_after or 0.0, health.cooldown_remaining(pid))
            wait = retry_delay(attempt, self._retry, floor or None, self._rng)
            if within_budget(now, first_failure_at, wait, self.failover_within):
                delay = wait
        log.info(
            "%s attempt %d failed (%s), %s: %s",
            pid,
            attempt,
            kind.value,
            f"retry in {delay:.2f} s" if delay is not None else "handing over",
            error.message,
        )
        if delay is None:
            self.outcomes.record(task, pid, attempt, "handover", kind, latency_ms, error=error)
            task.failed[pid] = error
            task.handovers += 1
        return delay

    def _skipped(
        self, task: TaskRun, pid: str, retrying: tuple[int, float, ProviderError] | None
    ) -> None:
        if retrying is not None:  # it failed, then went down while we waited: a hand-over
            self._hand_over_earlier(task, pid, retrying)
            return
        reason = self.health.reason(pid) or ProviderError(
            "skipped: not available", kind=ErrorKind.SERVER, provider=pid
        )
        task.failed.setdefault(pid, reason)
        if self.health.state(pid) == "cooling_down" and pid not in task.deferred:
            task.deferred.append(pid)

    def _full(
        self,
        task: TaskRun,
        pid: str,
        retrying: tuple[int, float, ProviderError] | None,
        busy: str,
    ) -> None:
        """No slot came within ``failover_within`` (``busy`` says why): hand over as a skip,
        no call made.

        The provider is only busy, not at fault: its health is left alone, and it is
        waited for once more, without a bound, if the rest of the chain fails.
        """
        if retrying is not None:  # it failed, and its slots were all taken meanwhile
            self._hand_over_earlier(task, pid, retrying)
            return
        error = ProviderError(
            f"{busy} for failover_within ({self.failover_within:g} s): handed over "
            "without calling it",
            kind=ErrorKind.OVERLOADED,
            provider=pid,
            local=True,
        )
        log.info("%s skipped: %s", pid, error.message)
        self.outcomes.record(task, pid, 0, "handover", error.kind, 0.0, error=error)
        task.failed[pid] = error
        task.handovers += 1
        if pid not in task.deferred:
            task.deferred.append(pid)

    def _hand_over_earlier(
        self, task: TaskRun, pid: str, retrying: tuple[int, float, ProviderError]
    ) -> None:
        self._record_earlier(task, pid, retrying, "handover")
        task.failed[pid] = retrying[2]
        task.handovers += 1

    def _record_earlier(
        self,
        task: TaskRun,
        pid: str,
        retrying: tuple[int, float, ProviderError],
        outcome: Literal["retry", "handover", "cancelled"],
    ) -> None:
        """Record a failed call once what follows it is known (retried, skipped, cancelled)."""
        attempt, latency_ms, error = retrying
        self.outcomes.record(task, pid, attempt, outcome, error.kind, latency_ms, error=error)

    async def await_cooldown(self, pid: str) -> bool:
        """Wait for a provider's rate-limit reset if it comes within ``failover_within``."""
        remaining = self.health.cooldown_remaining(pid)
        if remaining > self.failover_within:
            return False
        if remaining > 0:
            await self.sleep(remaining)
        return True
