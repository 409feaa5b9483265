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

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from rolecall._secrets import redact
from rolecall.errors import RolecallError, RouterClosed, StreamInterrupted
from rolecall.gateway import openai_format as fmt
from rolecall.gateway._body import BodyReader, read_json
from rolecall.gateway._door import (
    INTERNAL_ERROR,
    ROLE_HEADER,
    DoorReply,
    RequestState,
    answering_model,
    openai_door,
    start_stream,
    stream_response,
    unless_disconnected,
    upstreams,
)
from rolecall.gateway._exchange import DoorRequest, json_reply
from rolecall.gateway._responses import HTTPError, reply_headers, sse_event

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway
    from rolecall.gateway.reload import Generation
    from rolecall.routing._stream import ReplyStream

__all__ = ["chat_completions"]

log = logging.getLogger("rolecall.gateway")


def chat_completions(gateway: Gateway, request: DoorRequest) -> Awaitable[DoorReply]:
    return openai_door(gateway, request, _answer, "chat")  # no frame of its own


async def _answer(gateway: Gateway, request: DoorRequest, state: RequestState) -> DoorReply:
    state.body = BodyReader(gateway.body_budget)
    try:
        parsed = fmt.parse_chat_request(await read_json(request, gateway.limits(), state.body))
    except fmt.RequestInvalid as exc:
        body = fmt.error_body(exc.message, "invalid_request_error", None, exc.param)
        raise HTTPError(400, body) from None
    # Lease the generation current now: a reload from here on serves new requests only.
    generation = state.generation = gateway.lease()
    role_header = request.header(ROLE_HEADER)
    role, provider = gateway.target(generation.config, parsed.model, role_header)
    state.routed(role, parsed.model, role_header)
    task_id = state.task_id
    kwargs: dict[str, Any] = {
        "params": parsed.params or None,
        "response_schema": parsed.response_schema,
        "provider": provider,
        "run_id": gateway.task_run_id(),
        "task_id": task_id,
        "dialect": "chat",
    }
    if parsed.stream:
        reply_stream = generation.router.stream(role, parsed.messages, **kwargs)
        return await _stream(request, reply_stream, role, task_id, parsed, state, generation)
    call = generation.router.complete(role, parsed.messages, **kwargs)
    reply = await unless_disconnected(request, call)
    body = fmt.completion_body(reply, f"chatcmpl-{task_id}", int(time.time()))
    return json_reply(200, body, reply_headers(reply.provider, len(reply.attempts), role))


async def _stream(
    request: DoorRequest,
    reply_stream: ReplyStream,
    role: str,
    task_id: str,
    parsed: fmt.ParsedRequest,
    state: RequestState,
    generation: Generation,
) -> DoorReply:
    started = await start_stream(request, reply_stream)
    chunks, first = started.chunks, started.first
    provider, attempts = started.provider, started.attempts
    model = answering_model(generation, provider)
    completion_id = f"chatcmpl-{task_id}"
    created = int(time.time())

    def chunk(delta: Mapping[str, Any], finish: str | None = None, name: str = model) -> bytes:
        return sse_event(fmt.chunk_body(completion_id, created, name, delta, finish))

    async def events() -> AsyncIterator[bytes]:
        state.status = 499  # until the stream ends: a client that leaves closed the request
        # OpenAI opens an answer that starts with a tool call with null content, so the
        # SDKs' accumulated message has the whole answer's null content when no text follows.
        opens_with_call = first is not None and bool(first.tool_calls) and not first.text
        yield chunk({"role": "assistant", "content": None if opens_with_call else ""})
        if first is not None:
            yield chunk(fmt.chunk_delta(first))
        try:
            async for piece in chunks:
                # Per chunk: a key split across two chunks is not seen (one within a chunk is).
                if piece.has_content:
                    yield chunk(fmt.chunk_delta(piece))
        except Exception as exc:  # after text was sent: end with an error event
            state.status = 502
            yield sse_event(_stream_error(exc, upstreams(state.gateway)))
            return
        reply = reply_stream.reply
        finish = fmt.finish_reason(reply.finish_reason, bool(reply.tool_calls))
        yield chunk({}, finish, reply.model)
        if parsed.include_usage:
            yield sse_event(fmt.usage_chunk_body(completion_id, created, reply.model, reply.usage))
        yield b"data: [DONE]\n\n"
        state.status = 200

    return stream_response(events(), reply_headers(provider, attempts, role), reply_stream, state)


def _stream_error(exc: Exception, upstreams: tuple[str, ...]) -> dict[str, Any]:
    """The error event that ends a stream which failed after sending text."""
    if not isinstance(exc, RolecallError):
        log.error("stream failed: %s", redact(f"{type(exc).__name__}: {exc}"))
        return fmt.error_body(INTERNAL_ERROR, "api_error")
    if isinstance(exc, RouterClosed):  # the gateway stopped mid-stream
        return fmt.error_body(fmt.failure_message(exc, upstreams), "api_error", "shutting_down")
    code = "stream_interrupted" if isinstance(exc, StreamInterrupted) else "api_error"
    body = fmt.error_body(fmt.hide_upstreams(exc.message, upstreams), "api_error", code)
    body["error"]["provider"] = getattr(exc, "provider", None)
    return body
