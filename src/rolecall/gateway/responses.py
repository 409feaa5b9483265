"""``POST /v1/responses``: OpenAI's Responses API in, the router's reply out (whole or SSE).

Any provider answers: the request becomes the router's internal turns
(``_responses_request``) and the reply a response object or its stream events
(``responses_format``); each task is recorded with the dialect ``responses``.
Like the chat door (and on the same core, ``_door``), a stream waits for its
first content before sending headers, so a provider that fails before then is
handed over and a failure of the whole chain gets a real HTTP status in
OpenAI's error format. A failure after content ends the stream with
``response.failed``. The gateway keeps no response: every request carries its
whole conversation (``store: false`` semantics, whatever ``store`` says).
Tools no provider can take (``web_search``...) are left out of a request that
does not force one; its answer names them in ``x-rolecall-omitted-tools`` and
the gateway log says so once per tool type.

``POST /v1/responses/input_tokens`` answers an estimate, as the Messages door's
``count_tokens`` does (no provider is called), and says so in an
``x-rolecall-token-count: estimate`` header.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect

from rolecall._json import dumps
from rolecall._secrets import redact
from rolecall.errors import RolecallError
from rolecall.gateway import openai_format as fmt
from rolecall.gateway import responses_format as rfmt
from rolecall.gateway._body import BodyReader, read_json
from rolecall.gateway._door import (
    INTERNAL_ERROR,
    REQUEST_ID,
    ROLE_HEADER,
    DoorReply,
    RequestState,
    answering_model,
    name_request,
    new_task_id,
    openai_door,
    start_stream,
    stream_response,
    thinking_headers,
    unless_disconnected,
    upstreams,
)
from rolecall.gateway._exchange import DoorRequest, Reply, header_value, json_reply
from rolecall.gateway._responses import HTTPError, reply_headers
from rolecall.gateway._responses_request import (
    ROUTER_FIELDS,
    RequestInvalid,
    ResponsesRequest,
    parse_responses_request,
)
from rolecall.gateway.anthropic_format import estimate_input_tokens

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway
    from rolecall.gateway.reload import Generation
    from rolecall.routing._stream import ReplyStream

__all__ = ["input_tokens", "responses"]

log = logging.getLogger("rolecall.gateway")

# Names the tool types a request's provider was not offered (see _responses_tools).
OMITTED_HEADER = "x-rolecall-omitted-tools"
# Tool types each gateway has warned about: one log line per type, not per request.
_warned: weakref.WeakKeyDictionary[Gateway, set[str]] = weakref.WeakKeyDictionary()
_MAX_WARNED = 64  # the types are the client's: past this many, no more lines (or memory)


def responses(gateway: Gateway, request: DoorRequest) -> Awaitable[DoorReply]:
    # No frame of its own.
    return openai_door(gateway, request, _answer, "responses", ROUTER_FIELDS)


async def input_tokens(gateway: Gateway, request: DoorRequest) -> Reply:
    """``{"object": "response.input_tokens", "input_tokens": n}``: an estimate, for a model
    the gateway can route (the key was checked before)."""
    reply = await _input_tokens(gateway, request)
    name_request(reply, REQUEST_ID, new_task_id())  # no task is recorded: an id all the same
    return reply


async def _input_tokens(gateway: Gateway, request: DoorRequest) -> Reply:
    reader = BodyReader(gateway.body_budget)
    try:
        parsed = parse_responses_request(await read_json(request, gateway.limits(), reader))
        gateway.target(gateway.generation.config, parsed.model, request.header(ROLE_HEADER))
    except RequestInvalid as exc:
        body = fmt.error_body(exc.message, "invalid_request_error", None, exc.param)
        return json_reply(400, body)
    except HTTPError as exc:
        return exc.reply()
    except ClientDisconnect:
        return Reply.empty(499)
    finally:
        reader.release()
    body = {"object": "response.input_tokens", "input_tokens": estimate_input_tokens(parsed)}
    return json_reply(200, body, {"x-rolecall-token-count": "estimate"})


async def _answer(gateway: Gateway, request: DoorRequest, state: RequestState) -> DoorReply:
    state.body = BodyReader(gateway.body_budget)
    try:
        parsed = parse_responses_request(await read_json(request, gateway.limits(), state.body))
    except RequestInvalid as exc:
        body = fmt.error_body(exc.message, "invalid_request_error", None, exc.param)
        raise HTTPError(400, body) from None
    # Lease the generation current now: a reload from here on serves new requests only.
    generation = state.generation = gateway.lease()
    role_header = request.header(ROLE_HEADER)
    role, provider = gateway.target(generation.config, parsed.model, role_header)
    state.routed(role, parsed.model, role_header)
    _warn_omitted(gateway, parsed.omitted_tools)
    task_id = state.task_id
    kwargs: dict[str, Any] = {
        "params": parsed.params or None,
        "response_schema": parsed.response_schema,
        "provider": provider,
        "run_id": gateway.task_run_id(),
        "task_id": task_id,
        "dialect": "responses",
    }
    if parsed.stream:
        reply_stream = generation.router.stream(role, parsed.messages, **kwargs)
        return await _stream(request, reply_stream, role, task_id, parsed, state, generation)
    call = generation.router.complete(role, parsed.messages, **kwargs)
    reply = await unless_disconnected(request, call)
    rid = rfmt.response_id(task_id)
    body = rfmt.response_body(
        reply,
        rid,
        int(time.time()),
        parsed.echo,
        parsed.namespaced,
        carry=parsed.carry_reasoning,
        summarize=parsed.summarize,
    )
    headers = _headers(parsed, reply.provider, len(reply.attempts), role, generation)
    return json_reply(200, body, headers)


def _headers(
    parsed: ResponsesRequest, provider: str, attempts: int, role: str, generation: Generation
) -> dict[str, str]:
    headers = reply_headers(provider, attempts, role)
    headers.update(thinking_headers(generation, role, provider, parsed.messages, parsed.params))
    if parsed.omitted_tools:
        # The client's own names: a stream's headers are not escaped on the way out.
        headers[OMITTED_HEADER] = header_value(", ".join(parsed.omitted_tools))
    return headers


def _warn_omitted(gateway: Gateway, omitted: tuple[str, ...]) -> None:
    warned = _warned.setdefault(gateway, set())
    for kind in omitted:
        if kind not in warned and len(warned) < _MAX_WARNED:
            warned.add(kind)
            log.warning(
                "responses: tool type %r is run by OpenAI (or is no function), so no provider "
                "here can take it; requests that do not force it are served without it (%s)",
                kind,
                OMITTED_HEADER,
            )


def _sse(event: dict[str, Any]) -> bytes:
    """One named event, as OpenAI sends them (``event:`` line, then the JSON data)."""
    kind: str = event["type"]
    # dumps: a lone surrogate the client sent (in metadata, say) goes back as its escape.
    return b"event: " + kind.encode() + b"\ndata: " + dumps(event) + b"\n\n"


async def _stream(
    request: DoorRequest,
    reply_stream: ReplyStream,
    role: str,
    task_id: str,
    parsed: ResponsesRequest,
    state: RequestState,
    generation: Generation,
) -> DoorReply:
    started = await start_stream(request, reply_stream)
    chunks, first = started.chunks, started.first
    provider, attempts = started.provider, started.attempts
    model = answering_model(generation, provider)
    built = rfmt.ResponseEvents(
        rfmt.response_id(task_id),
        int(time.time()),
        model,
        parsed.echo,
        parsed.namespaced,
        carry=parsed.carry_reasoning,
        summarize=parsed.summarize,
    )

    async def events() -> AsyncIterator[bytes]:
        state.status = 499  # until the stream ends: a client that leaves closed the request
        for event in built.start():
            yield _sse(event)
        if first is not None:
            for event in built.add(first):
                yield _sse(event)
        try:
            async for piece in chunks:
                if piece.has_content:
                    for event in built.add(piece):
                        yield _sse(event)
        except Exception as exc:  # after content was sent: end with response.failed
            state.status = 502
            yield _sse(built.fail(_failure(exc, upstreams(state.gateway))))
            return
        for event in built.finish(reply_stream.reply):
            yield _sse(event)
        state.status = 200

    return stream_response(
        events(), _headers(parsed, provider, attempts, role, generation), reply_stream, state
    )


def _failure(exc: Exception, hosts: tuple[str, ...]) -> str:
    """What ``response.failed`` says: the router's message (it names the provider)."""
    if not isinstance(exc, RolecallError):
        log.error("stream failed: %s", redact(f"{type(exc).__name__}: {exc}"))
        return INTERNAL_ERROR
    return fmt.without_urls(redact(fmt.failure_message(exc, hosts)))
