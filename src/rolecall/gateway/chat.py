"""``POST /v1/chat/completions``: OpenAI's request in, the router's reply out (plain or SSE).

Each request leases the router generation current when its body has been read
and keeps it to the last byte, so a config reload never cuts a request short.
A stream waits for its first content (text, reasoning or a tool call) before
sending headers: until then the router may still hand over, and a failure gets a
real HTTP status. After content has been sent, a failure ends the stream with an
error event naming the provider (OpenAI's SDK raises it as ``APIError``).

A client that disconnects before its answer cancels the router call (so the
provider call too) rather than leaving it to run for nobody; such a request,
whole or streamed, is counted with status 499 ("client closed request", as
nginx logs it), never as a 200.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from rolecall._secrets import redact
from rolecall.errors import RolecallError, StreamInterrupted
from rolecall.gateway import openai_format as fmt
from rolecall.gateway._body import BodyReader, read_json
from rolecall.gateway._responses import HTTPError, json_response, reply_headers, sse_event
from rolecall.types import Chunk

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway
    from rolecall.gateway.reload import Generation
    from rolecall.routing._stream import ReplyStream

__all__ = ["chat_completions"]

log = logging.getLogger("rolecall.gateway")

_T = TypeVar("_T")

_INTERNAL = "internal gateway error; see the gateway log"


@dataclass(slots=True)
class _RequestState:
    """One request's bookkeeping, settled when the response (or its stream) ends."""

    gateway: Gateway
    started: float
    label: str = "(unknown)"  # metrics label: the requested model once it names something
    status: int = 500
    generation: Generation | None = None
    streaming: bool = False
    body: BodyReader | None = None

    def finish(self) -> None:
        if self.body is not None:
            self.body.release()
        generation, self.generation = self.generation, None
        if generation is not None:
            self.gateway.release(generation)
        elapsed = time.perf_counter() - self.started
        self.gateway.metrics.request_finished(self.label, self.status, elapsed)


class _SSEResponse(StreamingResponse):
    """A streaming response that awaits ``on_close`` however it ends (done, error, disconnect)."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        headers: Mapping[str, str],
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(content, headers=dict(headers), media_type="text/event-stream")
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()


async def chat_completions(gateway: Gateway, request: Request) -> Response:
    state = _RequestState(gateway, time.perf_counter())
    gateway.metrics.request_started()
    try:
        try:
            response = await _answer(gateway, request, state)
        except HTTPError as exc:
            response = exc.response()
        except ClientDisconnect:
            response = Response(status_code=499)  # nginx's "client closed request"
        except RolecallError as exc:  # from the router: mapped to OpenAI's statuses
            response = _error_response(exc, state.label, _upstreams(gateway))
        except Exception as exc:
            log.error("chat request failed: %s", redact(f"{type(exc).__name__}: {exc}"))
            response = json_response(500, fmt.error_body(_INTERNAL, "api_error"))
        state.status = response.status_code
        return response
    finally:
        if not state.streaming:
            state.finish()


async def _answer(gateway: Gateway, request: Request, state: _RequestState) -> Response:
    state.body = BodyReader(gateway.body_budget)
    try:
        parsed = fmt.parse_chat_request(await read_json(request, gateway.limits(), state.body))
    except fmt.RequestInvalid as exc:
        body = fmt.error_body(exc.message, "invalid_request_error", None, exc.param)
        raise HTTPError(400, body) from None
    # Lease the generation current now: a reload from here on serves new requests only.
    generation = state.generation = gateway.lease()
    role, provider = gateway.target(generation.config, parsed.model)
    state.label = parsed.model
    task_id = os.urandom(8).hex()  # a uuid4's randomness without building a UUID
    kwargs: dict[str, Any] = {
        "params": parsed.params or None,
        "response_schema": parsed.response_schema,
        "provider": provider,
        "run_id": gateway.task_run_id(),
        "task_id": task_id,
    }
    if parsed.stream:
        reply_stream = generation.router.stream(role, parsed.messages, **kwargs)
        return await _stream(request, reply_stream, role, task_id, parsed, state, generation)
    call = generation.router.complete(role, parsed.messages, **kwargs)
    reply = await _unless_disconnected(request, call)
    body = fmt.completion_body(reply, f"chatcmpl-{task_id}", int(time.time()))
    return json_response(200, body, reply_headers(reply.provider, len(reply.attempts), role))


async def _unless_disconnected(request: Request, call: Awaitable[_T]) -> _T:
    """``await call``, cancelled (``ClientDisconnect``) if the client goes away first.

    The body has been read, so the next ASGI message is the disconnect; a small
    task waits for it and cancels this one, so the provider call is cancelled
    with it rather than running to the end for nobody.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        # Once the body is read, ASGI's next message is the disconnect; a server that sends
        # anything else cannot report one, and is not asked again.
        if (await request.receive())["type"] == "http.disconnect":
            gone = True
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await call
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientDisconnect from None
        raise
    finally:
        watcher.cancel()


async def _first_content(chunks: AsyncIterator[Chunk]) -> Chunk | None:
    """The first chunk with text, reasoning or a tool call; None when the answer has none."""
    async for chunk in chunks:
        if chunk.has_content:
            return chunk
    return None


async def _stream(
    request: Request,
    reply_stream: ReplyStream,
    role: str,
    task_id: str,
    parsed: fmt.ParsedRequest,
    state: _RequestState,
    generation: Generation,
) -> Response:
    chunks = reply_stream.deltas()
    try:
        first = await _unless_disconnected(request, _first_content(chunks))
    except BaseException:
        await reply_stream.aclose()
        raise
    if first is None:  # an empty answer: the reply is already complete
        provider, attempts = reply_stream.reply.provider, len(reply_stream.reply.attempts)
    else:
        provider, attempts = reply_stream.provider or "", reply_stream.attempts_so_far
    provider_config = generation.config.providers.get(provider)
    model = (provider_config.model if provider_config else None) or provider
    completion_id = f"chatcmpl-{task_id}"
    created = int(time.time())

    def chunk(delta: Mapping[str, Any], finish: str | None = None, name: str = model) -> bytes:
        return sse_event(fmt.chunk_body(completion_id, created, name, delta, finish))

    async def events() -> AsyncIterator[bytes]:
        state.status = 499  # until the stream ends: a client that leaves closed the request
        yield chunk({"role": "assistant", "content": ""})
        if first is not None:
            yield chunk(fmt.chunk_delta(first))
        try:
            async for piece in chunks:
                # Per chunk: a key split across two chunks is not seen (one within a chunk is).
                if piece.has_content:
                    yield chunk(fmt.chunk_delta(piece))
        except Exception as exc:  # after text was sent: end with an error event
            state.status = 502
            yield sse_event(_stream_error(exc, _upstreams(state.gateway)))
            return
        reply = reply_stream.reply
        finish = fmt.finish_reason(reply.finish_reason, bool(reply.tool_calls))
        yield chunk({}, finish, reply.model)
        if parsed.include_usage:
            yield sse_event(fmt.usage_chunk_body(completion_id, created, reply.model, reply.usage))
        yield b"data: [DONE]\n\n"
        state.status = 200

    async def on_close() -> None:
        try:
            await reply_stream.aclose()  # frees the provider if the client left early
        finally:
            state.finish()

    headers = {
        **reply_headers(provider, attempts, role),
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }
    state.status = 200
    state.streaming = True
    return _SSEResponse(events(), headers, on_close)


def _stream_error(exc: Exception, upstreams: tuple[str, ...]) -> dict[str, Any]:
    """The error event that ends a stream which failed after sending text."""
    if not isinstance(exc, RolecallError):
        log.error("stream failed: %s", redact(f"{type(exc).__name__}: {exc}"))
        return fmt.error_body(_INTERNAL, "api_error")
    code = "stream_interrupted" if isinstance(exc, StreamInterrupted) else "api_error"
    body = fmt.error_body(fmt.hide_upstreams(exc.message, upstreams), "api_error", code)
    body["error"]["provider"] = getattr(exc, "provider", None)
    return body


def _upstreams(gateway: Gateway) -> tuple[str, ...]:
    """The configured providers' addresses, hidden from error messages (error path only)."""
    providers = gateway.generation.config.providers.values()
    return fmt.upstream_hosts(provider.base_url for provider in providers)


def _error_response(exc: RolecallError, role: str, upstreams: tuple[str, ...]) -> Response:
    mapped = fmt.error_for_exception(exc, upstreams)
    if mapped is None:  # a RolecallError the router should not raise at call time
        return json_response(500, fmt.error_body(exc.message, "api_error"))
    headers = {"x-rolecall-role": role}
    attempts = getattr(exc, "attempts", None)
    if attempts is not None:
        headers["x-rolecall-attempts"] = str(len(attempts))
    if mapped.retry_after is not None:
        headers["retry-after"] = str(max(1, round(mapped.retry_after)))
    return json_response(mapped.status, mapped.body, headers)
