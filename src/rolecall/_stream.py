"""Streaming through the chain: hand over freely until the first text, never after it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from rolecall._task import unexpected_error
from rolecall.errors import ProviderError, StreamInterrupted
from rolecall.types import ChatRequest, Chunk, Completion, Reply, Usage

if TYPE_CHECKING:
    from rolecall._task import TaskRun
    from rolecall.router import Router

__all__ = ["ReplyStream", "run_stream"]


class ReplyStream:
    """An async iterator of text chunks; :attr:`reply` is set once it is exhausted.

    Raises :class:`rolecall.errors.AllProvidersFailed` when no provider could start,
    and :class:`rolecall.errors.StreamInterrupted` when one failed after sending text.
    """

    def __init__(self) -> None:
        self._chunks: AsyncGenerator[str, None] | None = None
        self._reply: Reply | None = None
        # Set with the first chunk: who is streaming, and the calls made so far including
        # its own (a proxy must send them in headers before the reply is complete).
        self.provider: str | None = None
        self.attempts_so_far = 0

    def _attach(self, chunks: AsyncGenerator[str, None]) -> None:
        self._chunks = chunks

    def _finish(self, reply: Reply) -> None:
        self._reply = reply

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        assert self._chunks is not None
        return await self._chunks.__anext__()

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


async def _close(chunks: AsyncIterator[Chunk]) -> None:
    aclose: Callable[[], Any] | None = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def run_stream(
    router: Router,
    task: TaskRun,
    chain: tuple[str, ...],
    request_for: Callable[[str], ChatRequest],
    out: ReplyStream,
) -> AsyncGenerator[str, None]:
    """The chunks of the first provider in ``chain`` that streams an answer."""
    pending = list(chain)
    second_pass = False
    while pending:
        pid = pending.pop(0)
        # Second pass: rate-limited providers skipped above, if their reset is near.
        if second_pass and not await router._await_cooldown(pid):
            continue
        async with aclosing(_stream_on(router, task, pid, request_for(pid))) as chunks:
            async for text in chunks:
                if out.provider is None:
                    out.provider, out.attempts_so_far = pid, len(task.attempts) + 1
                yield text
        if task.answer is not None:
            out._finish(router._outcomes.succeed(task))
            return
        if not pending and not second_pass:
            pending, second_pass = task.take_deferred(), True
    raise router._outcomes.fail(task)


async def _stream_on(
    router: Router, task: TaskRun, pid: str, request: ChatRequest
) -> AsyncGenerator[str, None]:
    """One provider's stream under the retry policy; sets ``task.answer`` when it completes."""
    provider = router._provider(pid)
    semaphore = router._semaphores[pid]
    health = router._health
    clock = router._clock
    attempt = 0
    first_failure_at: float | None = None
    last_error: ProviderError | None = None
    while True:
        admission = await health.admit(pid)
        if admission is None:
            router._skipped(task, pid, last_error)
            return
        received = 0
        try:
            async with semaphore:
                attempt += 1
                started = clock()
                parts: list[str] = []
                usage: Usage | None = None
                finish: str | None = None
                model: str | None = None
                error: ProviderError | None = None
                try:
                    chunks = provider.stream(request)
                    try:
                        async for chunk in chunks:
                            if chunk.usage is not None:
                                usage = chunk.usage
                            if chunk.finish_reason:
                                finish = chunk.finish_reason
                            if chunk.model:
                                model = chunk.model
                            if chunk.text:
                                if not received:
                                    # Text proves the key: let waiting tasks through.
                                    health.mark_confirmed(pid)
                                received += len(chunk.text)
                                parts.append(chunk.text)
                                yield chunk.text
                    finally:
                        await _close(chunks)
                except ProviderError as exc:
                    error = exc
                except Exception as exc:  # an adapter bug still hands over, named
                    error = unexpected_error(pid, exc)
                now = clock()
                latency_ms = (now - started) * 1000.0
                if error is None:
                    health.record_success(pid, latency_ms)
                    completion = Completion(
                        text="".join(parts),
                        model=model or provider.model,
                        usage=usage or Usage(),
                        finish_reason=finish,
                    )
                    router._outcomes.record_ok(task, pid, attempt, latency_ms, completion)
                    return
            if first_failure_at is None:
                first_failure_at = now
            delay = router._after_failure(
                task,
                pid,
                attempt,
                latency_ms,
                error,
                now,
                first_failure_at,
                may_retry=not received,
            )
        finally:
            admission.release()
        if received:
            interrupted = StreamInterrupted(error, received)
            router._outcomes.task_failed(task, interrupted)
            raise interrupted
        last_error = error
        if delay is None:
            return
        await router._sleep(delay)
