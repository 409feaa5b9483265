"""Streaming through the chain: hand over freely until the first content, never after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from typing import Any

from rolecall._secrets import redact_answer
from rolecall.errors import ProviderError, RouterClosed, StreamInterrupted
from rolecall.routing._attempt import Opened, ProviderCalls, _First
from rolecall.routing._chain import walk
from rolecall.routing._surrogates import PairJoiner
from rolecall.routing._task import TaskRun, unexpected_error
from rolecall.types import ChatRequest, Chunk, Reply

__all__ = ["ReplyStream", "run_stream"]


class ReplyStream:
    """An async iterator of text chunks; :attr:`reply` is set once it is exhausted.

    ``async for text in stream`` gives the answer's text; ``async for chunk in
    stream.deltas()`` gives every :class:`~rolecall.types.Chunk` instead (text,
    reasoning and tool-call pieces, usage on the last). Use one or the other.

    Raises :class:`rolecall.errors.AllProvidersFailed` when no provider could start,
    and :class:`rolecall.errors.StreamInterrupted` when one failed after sending content.
    """

    def __init__(self) -> None:
        self._chunks: AsyncGenerator[Chunk, None] | None = None
        self._reply: Reply | None = None
        # Set with the first chunk: who is streaming, and the calls made so far including
        # its own (a proxy must send them in headers before the reply is complete).
        self.provider: str | None = None
        self.attempts_so_far = 0

    def _attach(self, chunks: AsyncGenerator[Chunk, None]) -> None:
        self._chunks = chunks

    def _finish(self, reply: Reply) -> None:
        self._reply = reply

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        assert self._chunks is not None
        while True:
            chunk = await self._chunks.__anext__()
            if chunk.text:
                return chunk.text

    def deltas(self) -> AsyncGenerator[Chunk, None]:
        """Every chunk as it arrives: text, reasoning, tool-call pieces, usage."""
        assert self._chunks is not None
        return self._chunks

    @property
    def reply(self) -> Reply:
        """The whole answer with provider, usage and attempts (after the last chunk)."""
        if self._reply is None:
            raise RuntimeError("the reply is known once the stream has been read to the end")
        return self._reply

    async def aclose(self) -> None:
        """Stop early: closes the provider's stream and frees its concurrency slot."""
        if self._chunks is not None:
            await self._chunks.aclose()

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def run_stream(
    calls: ProviderCalls,
    task: TaskRun,
    chain: tuple[str, ...],
    request_for: Callable[[str], ChatRequest],
    out: ReplyStream,
) -> AsyncGenerator[Chunk, None]:
    """The chunks of the first provider in ``chain`` to send content (stalls raced).

    The reader is inside the router (see ``_inflight``) while it waits for a chunk, not
    while it holds one: closing the router ends a wait at once, and a read after it.
    """
    reads = calls.inflight.reads(asyncio.get_running_loop())
    with reads:
        try:
            opened = await walk(calls, task, chain, request_for, stream=True)
        except asyncio.CancelledError:  # its reader went away, or aclose() ended it
            calls.outcomes.cancel(task)
            raise
    if opened is None:
        raise calls.outcomes.fail(task)
    out.provider, out.attempts_so_far = opened.pid, len(task.attempts) + 1
    first = opened.first
    assembly = first.assembly
    assert assembly is not None  # opened as a stream
    error: ProviderError | None = None
    # A character whose surrogate pair the provider split between two chunks goes out whole.
    pairs = PairJoiner()
    try:
        if first.head is not None:
            # Content proves the key: let waiting tasks through.
            calls.health.mark_confirmed(opened.pid)
            for piece in pairs.feed(_masked(first.head)):
                yield piece
        chunks = first.chunks
        while chunks is not None:
            with reads:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
            assembly.add(chunk)
            for piece in pairs.feed(_masked(chunk)):
                yield piece
        for piece in pairs.rest():
            yield piece
    except ProviderError as exc:
        error = exc
    except RouterClosed:
        await _cancelled(calls, task, opened)
        raise
    except Exception as exc:  # an adapter bug still ends the stream, named
        error = unexpected_error(opened.pid, exc)
    except BaseException:  # the caller stopped reading: its client went away
        await _cancelled(calls, task, opened)
        raise
    await _end(calls, first)
    opened.slot.release()
    now = calls.clock()
    latency_ms = (now - opened.started) * 1000.0
    if error is not None:
        calls.after_failure(
            task, opened.pid, opened.attempt, latency_ms, error, now, now, may_retry=False
        )
        interrupted = StreamInterrupted(error, assembly.received)
        calls.outcomes.task_failed(task, interrupted)
        raise interrupted
    completion = assembly.completion(calls.provider(opened.pid).model)
    calls.health.record_success(opened.pid, latency_ms)
    calls.outcomes.record_ok(task, opened.pid, opened.attempt, latency_ms, completion)
    out._finish(calls.outcomes.succeed(task))


async def _cancelled(calls: ProviderCalls, task: TaskRun, opened: Opened) -> None:
    """Close a stream its reader stopped (or the router's closing ended): the call and its
    task recorded as cancelled."""
    await _end(calls, opened.first)
    opened.slot.release()
    latency_ms = (calls.clock() - opened.started) * 1000.0
    calls.outcomes.record(task, opened.pid, opened.attempt, "cancelled", None, latency_ms)
    calls.outcomes.cancel(task)


def _masked(chunk: Chunk) -> Chunk:
    """The chunk with any registered secret masked out of its text and reasoning."""
    if not (chunk.text or chunk.reasoning):
        return chunk
    text, reasoning = redact_answer(chunk.text), redact_answer(chunk.reasoning)
    if text is chunk.text and reasoning is chunk.reasoning:
        return chunk
    return replace(chunk, text=text, reasoning=reasoning)


async def _end(calls: ProviderCalls, first: _First) -> None:
    if first.chunks is not None:
        aclose: Callable[[], Any] | None = getattr(first.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
