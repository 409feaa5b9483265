"""``POST /v1/messages``: Anthropic's Messages API in, the router's reply out (whole or SSE).

Any provider of any protocol answers: the body is translated to the internal form
(``_messages_request``) and the reply back to Anthropic's shapes
(``anthropic_format``), so routing, hand-over, records and metrics are those of
every door; each task is recorded with dialect ``messages``, and its id is the
message id (``msg_<task id>``) and the ``request-id`` header (``req_<task id>``),
so ``rolecall runs show`` finds it.

As on the chat door, a stream waits for its first content before sending headers
(until then the router may still hand over, and a failure gets a real status);
after content a failure ends the stream with Anthropic's ``error`` event. Every
error, the key check's included, comes in Anthropic's error shape and statuses, so
Anthropic's SDKs raise their typed exceptions.

``POST /v1/messages/count_tokens`` answers an estimate (about four characters a
token, no provider is called, whichever protocol would serve the model), and says
so in an ``x-rolecall-token-count: estimate`` header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.routing import Route

from rolecall._secrets import redact
from rolecall.errors import RolecallError
from rolecall.gateway import anthropic_format as fmt
from rolecall.gateway._body import BodyReader, read_json
from rolecall.gateway._door import (
    INTERNAL_ERROR,
    ROLE_HEADER,
    DoorReply,
    RequestState,
    answering_model,
    failure_headers,
    name_request,
    new_task_id,
    reply_status,
    start_stream,
    stream_response,
    thinking_headers,
    unless_disconnected,
    upstreams,
)
from rolecall.gateway._exchange import DoorRequest, Reply, json_reply
from rolecall.gateway._messages_request import (
    ROUTER_FIELDS,
    MessagesRequest,
    RequestInvalid,
    parse_messages_request,
)
from rolecall.gateway._responses import HTTPError, reply_headers

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway
    from rolecall.routing._stream import ReplyStream

__all__ = ["count_tokens", "messages", "messages_routes"]

log = logging.getLogger("rolecall.gateway")

DIALECT = "messages"
# The header Anthropic's SDK reads a request's id from (``_request_id`` of what it returns).
REQUEST_ID = b"request-id"
_NO_KEY = (
    "invalid x-api-key: send 'x-api-key: KEY' (or 'Authorization: Bearer KEY') with a key "
    "listed under gateway.keys"
)


def messages_routes(gateway: Gateway) -> list[Route]:
    """The Messages door's routes, each answering its own errors in Anthropic's shape (the
    gateway's app serves a POST to the door itself, before these routes: see app.py)."""

    async def create(request: Request) -> DoorReply:
        return await messages(gateway, DoorRequest(request.scope, request.receive))

    async def count(request: Request) -> Reply:
        return await count_tokens(gateway, DoorRequest(request.scope, request.receive))

    return [
        Route("/v1/messages", create, methods=["POST"]),
        Route("/v1/messages/count_tokens", count, methods=["POST"]),
    ]


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return json_reply(status, fmt.error_body(status, message), headers)


def _restated(exc: HTTPError) -> Reply:
    """An early answer (body limits, unknown model: OpenAI's shape) in Anthropic's."""
    restated = fmt.error_from_openai(exc.status, exc.body)
    return json_reply(restated.status, restated.body, exc.headers)


async def messages(gateway: Gateway, request: DoorRequest) -> DoorReply:
    state = RequestState(gateway, time.perf_counter())
    gateway.metrics.request_started()
    task_id = new_task_id()
    try:
        response: DoorReply
        try:
            if not gateway.door_authorized(request):
                response = _error(401, _NO_KEY)
            else:
                response = await _answer(gateway, request, state, task_id)
        except HTTPError as exc:
            response = _restated(exc)
        except ClientDisconnect:
            response = Reply.empty(499)  # nginx's "client closed request"
        except RolecallError as exc:  # from the router: mapped to Anthropic's statuses
            response = _error_response(exc, state.role or state.label, upstreams(gateway))
        except Exception as exc:
            log.error("messages request failed: %s", redact(f"{type(exc).__name__}: {exc}"))
            response = _error(500, INTERNAL_ERROR)
        if isinstance(response, Reply):  # a stream names it already
            name_request(response, REQUEST_ID, task_id)
        state.status = reply_status(response)
        return response
    finally:
        if not state.streaming:
            state.finish()


async def _read(
    gateway: Gateway, request: DoorRequest, state: RequestState, counting: bool
) -> MessagesRequest:
    state.body = BodyReader(gateway.body_budget)
    body = await read_json(request, gateway.limits(), state.body)
    try:
        return parse_messages_request(body, counting=counting)
    except RequestInvalid as exc:
        raise HTTPError(400, fmt.error_body(400, exc.message)) from None


async def _answer(
    gateway: Gateway, request: DoorRequest, state: RequestState, task_id: str
) -> DoorReply:
    parsed = await _read(gateway, request, state, counting=False)
    # Lease the generation current now: a reload from here on serves new requests only.
    generation = state.generation = gateway.lease()
    role_header = request.header(ROLE_HEADER)
    role, provider = gateway.target(generation.config, parsed.model, role_header)
    state.routed(role, parsed.model, role_header)
    kwargs: dict[str, Any] = {
        "params": parsed.params or None,
        "response_schema": parsed.response_schema,
        "provider": provider,
        "run_id": gateway.task_run_id(),
        "task_id": task_id,
        "dialect": DIALECT,
    }
    message_id = f"msg_{task_id}"
    if parsed.stream:
        reply_stream = generation.router.stream(role, parsed.messages, **kwargs)
        return await _stream(request, reply_stream, role, message_id, state, parsed)
    call = generation.router.complete(role, parsed.messages, **kwargs)
    reply = await unless_disconnected(request, call)
    body = fmt.message_body(reply, message_id, thinking=parsed.asks_thinking)
    headers = reply_headers(reply.provider, len(reply.attempts), role)
    headers.update(
        thinking_headers(generation, role, reply.provider, parsed.messages, parsed.params)
    )
    return json_reply(200, body, headers)


async def _stream(
    request: DoorRequest,
    reply_stream: ReplyStream,
    role: str,
    message_id: str,
    state: RequestState,
    parsed: MessagesRequest,
) -> DoorReply:
    generation = state.generation
    assert generation is not None  # leased before the call
    started = await start_stream(request, reply_stream)
    chunks, first = started.chunks, started.first
    provider, attempts = started.provider, started.attempts
    model = answering_model(generation, provider)
    rendered = fmt.MessageEvents(message_id, model, thinking=parsed.asks_thinking)

    async def events() -> AsyncIterator[bytes]:
        state.status = 499  # until the stream ends: a client that leaves closed the request
        yield rendered.start()
        for event in rendered.add(first) if first is not None else ():
            yield event
        try:
            async for piece in chunks:
                for event in rendered.add(piece):
                    yield event
        except Exception as exc:  # after content was sent: end with an error event
            state.status = 502
            if not isinstance(exc, RolecallError):
                log.error("stream failed: %s", redact(f"{type(exc).__name__}: {exc}"))
            yield fmt.sse("error", fmt.stream_error_body(exc, upstreams(state.gateway)))
            return
        for event in rendered.finish(reply_stream.reply):
            yield event
        state.status = 200

    headers = {
        **reply_headers(provider, attempts, role),
        "request-id": f"req_{message_id.removeprefix('msg_')}",
        **thinking_headers(generation, role, provider, parsed.messages, parsed.params),
    }
    return stream_response(events(), headers, reply_stream, state)


def _error_response(exc: RolecallError, role: str, hosts: tuple[str, ...]) -> Reply:
    mapped = fmt.error_for_exception(exc, hosts, ROUTER_FIELDS)
    headers = failure_headers(exc, role, mapped.retry_after)
    return json_reply(mapped.status, mapped.body, headers)


async def count_tokens(gateway: Gateway, request: DoorRequest) -> Reply:
    """``{"input_tokens": n}``: an estimate, for a model the gateway can route."""
    state = RequestState(gateway, time.perf_counter())
    try:
        reply = await _count(gateway, request, state)
    finally:
        if state.body is not None:
            state.body.release()
    name_request(reply, REQUEST_ID, new_task_id())  # no task is recorded: an id all the same
    return reply


async def _count(gateway: Gateway, request: DoorRequest, state: RequestState) -> Reply:
    try:
        if not gateway.door_authorized(request):
            return _error(401, _NO_KEY)
        parsed = await _read(gateway, request, state, counting=True)
        gateway.target(gateway.generation.config, parsed.model, request.header(ROLE_HEADER))
        body = {"input_tokens": fmt.estimate_input_tokens(parsed)}
        return json_reply(200, body, {"x-rolecall-token-count": "estimate"})
    except HTTPError as exc:
        return _restated(exc)
    except ClientDisconnect:
        return Reply.empty(499)
