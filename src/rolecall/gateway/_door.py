"""What every front door (chat completions, Messages, Responses) shares.

A door translates one vendor API into the router's call and back; the request's
bookkeeping (its generation lease, body budget, metrics), the streaming
response, the client-disconnect watch and the wait for a stream's first content
are the same whatever API the client speaks, and live here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from rolecall._secrets import redact
from rolecall.errors import RolecallError
from rolecall.gateway import openai_format as fmt
from rolecall.gateway._exchange import DoorRequest, Reply, json_reply
from rolecall.gateway._responses import HTTPError
from rolecall.gateway.auth import loopback_host_header, loopback_origin
from rolecall.providers._anthropic_body import THINKING_BUDGETS, effort_budget, thinking_unsigned
from rolecall.types import Chunk
from rolecall.types import Message as Turn

if TYPE_CHECKING:
    from rolecall.gateway._body import BodyReader
    from rolecall.gateway.app import Gateway
    from rolecall.gateway.reload import Generation
    from rolecall.routing._stream import ReplyStream

__all__ = [
    "INTERNAL_ERROR",
    "REQUEST_ID",
    "ROLE_HEADER",
    "THINKING_HEADER",
    "WATCH_DISCONNECT",
    "ClientStalled",
    "DoorHandler",
    "DoorReply",
    "RequestState",
    "SSEResponse",
    "answered",
    "answering_model",
    "door_endpoint",
    "failure_headers",
    "first_content",
    "name_request",
    "new_task_id",
    "no_key",
    "openai_door",
    "openai_error_response",
    "refuse_web_pages",
    "refused",
    "reply_status",
    "start_stream",
    "stream_response",
    "thinking_headers",
    "unless_disconnected",
    "upstreams",
]

# The header OpenAI's SDK reads a request's id from (``_request_id`` of what it returns).
REQUEST_ID = b"x-request-id"
# A client's pick of role, over whatever its `model` names (agents cannot change their model
# names everywhere; a header they can).
ROLE_HEADER = b"x-rolecall-role"
# In a request's scope when it is served from the protocol (gateway/hotpath.py): a function
# taking a callback to call if the client leaves (None: no longer), instead of a watcher task.
WATCH_DISCONNECT = "rolecall.watch_disconnect"

_T = TypeVar("_T")


@dataclass(slots=True)
class RequestState:
    """One request's bookkeeping, settled when the response (or its stream) ends."""

    gateway: Gateway
    started: float
    label: str = "(unknown)"  # metrics label: the requested model once it names something
    role: str = ""  # the role routed to, once known
    status: int = 500
    generation: Generation | None = None
    streaming: bool = False
    body: BodyReader | None = None
    task_id: str = ""  # the task the request is recorded as, and its request id

    def routed(self, role: str, model: str, role_header: str | None) -> None:
        """Note the role the request was routed to and its metrics label: the model asked
        for, or the role when the x-rolecall-role header chose it (any model name passes
        then, and the client's text would make a label, and a series, per request)."""
        self.role = role
        self.label = role if role_header and role_header.strip() else model

    def finish(self) -> None:
        if self.body is not None:
            self.body.release()
        generation, self.generation = self.generation, None
        if generation is not None:
            self.gateway.release(generation)
        elapsed = time.perf_counter() - self.started
        self.gateway.metrics.request_finished(self.label, self.status, elapsed)


class ClientStalled(Exception):
    """A stream's client took none of it for the send timeout (see :class:`SSEResponse`)."""


class SSEResponse(StreamingResponse):
    """A streaming response that awaits ``on_close`` however it ends (done, error, disconnect).

    A client that keeps its connection but reads nothing would hold the provider call
    (and its concurrency slot) for as long as it likes: a send that cannot go out within
    ``send_timeout`` seconds ends the stream (the connection is closed), as a provider
    that sends nothing for its timeout ends it.
    """

    def __init__(
        self,
        content: AsyncIterator[bytes],
        headers: Mapping[str, str],
        on_close: Callable[[], Awaitable[None]],
        send_timeout: float | None = None,
    ) -> None:
        super().__init__(content, headers=dict(headers), media_type="text/event-stream")
        self._on_close = on_close
        self._send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._send_timeout

        async def send_in_time(message: Message) -> None:
            try:
                async with asyncio.timeout(limit):
                    await send(message)
            except TimeoutError:
                raise ClientStalled from None

        try:
            await super().__call__(scope, receive, send if limit is None else send_in_time)
        except ClientStalled:
            log.warning("a client read nothing of its stream for %g s: stream closed", limit)
            raise
        finally:
            await self._on_close()


async def unless_disconnected(request: DoorRequest, call: Awaitable[_T]) -> _T:
    """``await call``, cancelled (``ClientDisconnect``) if the client goes away first.

    A request served from the protocol is told by the protocol; through ASGI, the
    body has been read, so the next message is the disconnect and a small task
    waits for it. Either way this task is cancelled, and the provider call with
    it, rather than running to the end for nobody.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def left() -> None:
        nonlocal gone
        gone = True
        task.cancel()

    watcher: asyncio.Task[None] | None = None
    watch_disconnect = request.scope.get(WATCH_DISCONNECT)
    if watch_disconnect is not None:  # served from the protocol: it says when the client left
        watch_disconnect(left)
    else:

        async def watch() -> None:
            # Once the body is read, ASGI's next message is the disconnect; a server that
            # sends anything else cannot report one, and is not asked again.
            if (await request.receive())["type"] == "http.disconnect":
                left()

        watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await call
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientDisconnect from None
        raise
    finally:
        if watcher is not None:
            watcher.cancel()
        elif watch_disconnect is not None:
            watch_disconnect(None)


async def first_content(chunks: AsyncIterator[Chunk]) -> Chunk | None:
    """The first chunk with text, reasoning or a tool call; None when the answer has none."""
    async for chunk in chunks:
        if chunk.has_content:
            return chunk
    return None


def answering_model(generation: Generation, provider: str) -> str:
    """The model name a stream announces before its reply is complete: the provider's model."""
    provider_config = generation.config.providers.get(provider)
    return (provider_config.model if provider_config else None) or provider


# Says a Claude provider (Anthropic's API, Bedrock) answered a thinking request without
# thinking (``off``).
THINKING_HEADER = "x-rolecall-thinking"
# The names the Bedrock adapter reads its maxTokens from, first set first.
_BEDROCK_MAX = ("max_completion_tokens", "max_tokens")


def thinking_headers(
    generation: Generation,
    role: str,
    provider: str,
    messages: Sequence[Turn],
    request_params: Mapping[str, object],
) -> dict[str, str]:
    """``x-rolecall-thinking: off`` when the Anthropic or Bedrock provider that answered
    had to leave thinking out: the tool loop's assistant turn had no thinking block it
    signed (an OpenAI-shaped client keeps none; another vendor wrote the turn before a
    hand-over), or the ``max_tokens`` of a ``reasoning_effort`` left no room for the
    smallest thinking budget. The params are the provider's, the role's and the
    request's merged, as the router merges them for the call."""
    config = generation.config
    provider_config = config.providers.get(provider)
    if provider_config is None or provider_config.type not in ("anthropic", "bedrock"):
        return {}
    params = {**provider_config.params, **config.role_params(role), **request_params}
    effort = params.get("reasoning_effort")
    if params.get("thinking") is None and effort is None:
        return {}
    if thinking_unsigned(messages, provider_config.type):
        return {THINKING_HEADER: "off"}
    if params.get("thinking") is None and effort in THINKING_BUDGETS:
        names = ("max_tokens",) if provider_config.type == "anthropic" else _BEDROCK_MAX
        max_tokens = next((params[name] for name in names if params.get(name)), None)
        if effort_budget(str(effort), max_tokens) is None:
            return {THINKING_HEADER: "off"}
    return {}


def upstreams(gateway: Gateway) -> tuple[str, ...]:
    """The configured providers' addresses, hidden from error messages (error path only)."""
    providers = gateway.generation.config.providers.values()
    return fmt.upstream_hosts(provider.base_url for provider in providers)


def openai_error_response(
    exc: RolecallError,
    role: str,
    upstreams: tuple[str, ...],
    fields: Mapping[str, str] | None = None,
) -> Reply:
    """A router failure as an OpenAI error body (chat completions and Responses); ``fields``:
    the door's names for the router's params (see :func:`fmt.refused_field`)."""
    mapped = fmt.error_for_exception(exc, upstreams, fields)
    if mapped is None:  # a RolecallError the router should not raise at call time
        body = fmt.error_body(exc.message, "api_error")
        return json_reply(500, body, {"x-should-retry": "false"})
    return json_reply(mapped.status, mapped.body, failure_headers(exc, role, mapped.retry_after))


def failure_headers(exc: RolecallError, role: str, retry_after: float | None) -> dict[str, str]:
    """The headers of every door's answer to a router failure: the role, how many attempts
    were made, whether a retry may be answered (``x-should-retry``, which the vendors' SDKs
    obey over the status) and when to try again (whole seconds, at least one) when the
    vendor said."""
    headers = {"x-rolecall-role": role}
    attempts = getattr(exc, "attempts", None)
    if attempts is not None:
        headers["x-rolecall-attempts"] = str(len(attempts))
    headers["x-should-retry"] = "true" if fmt.retry_may_help(exc) else "false"
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
    return headers


def no_key() -> HTTPError:
    """The 401 of a request without a gateway key (OpenAI's shape; the Messages door restates
    it in Anthropic's)."""
    body = fmt.error_body(
        "invalid or missing API key: send 'Authorization: Bearer KEY' (or "
        "'x-api-key: KEY') with a key listed under gateway.keys",
        "invalid_request_error",
        "invalid_api_key",
    )
    return HTTPError(401, body, {"www-authenticate": "Bearer"})


def new_task_id() -> str:
    """A task's id: a uuid4's randomness without building a UUID."""
    return os.urandom(8).hex()


def name_request(reply: DoorReply, header: bytes, task_id: str) -> None:
    """Put the request's id, ``req_<task id>``, on its answer under ``header``: what the
    client's SDK reads as the request id (OpenAI's ``x-request-id``, Anthropic's
    ``request-id``), so ``rolecall runs show`` finds the task a client names."""
    value = b"req_" + task_id.encode()
    if isinstance(reply, Reply):
        reply.head += header + b": " + value + b"\r\n"
    else:
        reply.raw_headers.append((header, value))


def refuse_web_pages(host: str | None, origin: str | None) -> None:
    """Raise the 403 of a gateway without keys for a request a web page may have sent: under
    a name of its own pointed at 127.0.0.1 (``host``), or from its own site (``origin``)."""
    if not loopback_host_header(host):
        raise foreign_host(host)
    if not loopback_origin(origin):
        raise foreign_origin(origin or "")


def foreign_host(host: str | None) -> HTTPError:
    """The 403 of a gateway without keys asked under a name that is not loopback: a web
    page that pointed a name of its own at 127.0.0.1 (DNS rebinding)."""
    message = (
        f"Host {host!r} is not a loopback name and this gateway has no API keys: call it "
        "at 127.0.0.1:PORT (or localhost:PORT), or set gateway.keys"
    )  # no scheme: an error body shows no URL (error_body replaces each)
    return HTTPError(403, fmt.error_body(message, "permission_error", "foreign_host"))


def foreign_origin(origin: str) -> HTTPError:
    """The 403 of a gateway without keys sent a request by a web page of another site (its
    ``Origin``): a page may not spend the credits behind the gateway."""
    site = origin.partition("://")[2] or origin  # no URL: an error body shows none
    message = (
        f"a web page of {site!r} sent this request from a browser and this gateway has no "
        "API keys, so it answers only pages served from this machine; set gateway.keys "
        "for a browser client (it then sends a key)"
    )
    return HTTPError(403, fmt.error_body(message, "permission_error", "foreign_origin"))


async def answered(reply: DoorReply) -> DoorReply:
    """``reply``, awaitable (a door that answers before any work)."""
    return reply


def refused(exc: HTTPError) -> Awaitable[DoorReply]:
    """The answer of a door (OpenAI's shape) that refuses a request before any work (no key,
    a foreign Host): no task is made, but the answer has a request id as every answer does."""
    reply = exc.reply()
    name_request(reply, REQUEST_ID, new_task_id())
    return answered(reply)


def door_endpoint(door: DoorHandler) -> Callable[[Request], Awaitable[DoorReply]]:
    """A door as a Starlette endpoint (its reply, whole or streamed, is an ASGI app)."""

    async def endpoint(request: Request) -> DoorReply:
        return await door(DoorRequest(request.scope, request.receive))

    return endpoint


def reply_status(reply: DoorReply) -> int:
    return reply.status if isinstance(reply, Reply) else reply.status_code


# What a client is told of a gateway bug; the details go to the gateway log.
INTERNAL_ERROR = "internal gateway error; see the gateway log"
log = logging.getLogger("rolecall.gateway")

# What a door answers: a whole reply, or a stream.
DoorReply = Reply | SSEResponse
DoorHandler = Callable[[DoorRequest], Awaitable[DoorReply]]
DoorAnswer = Callable[["Gateway", DoorRequest, RequestState], Awaitable[DoorReply]]


async def openai_door(
    gateway: Gateway,
    request: DoorRequest,
    answer: DoorAnswer,
    name: str,
    fields: Mapping[str, str] | None = None,
) -> DoorReply:
    """Run a door that answers in OpenAI's error format (chat completions, Responses):
    the request's bookkeeping, and every failure as the status and body OpenAI's
    clients expect (499 for a client gone, 500 without details for a bug); ``fields``
    maps the router's param names to the door's fields, for the errors that name one."""
    state = RequestState(gateway, time.perf_counter(), task_id=new_task_id())
    gateway.metrics.request_started()
    try:
        response: DoorReply
        try:
            response = await answer(gateway, request, state)
        except HTTPError as exc:
            response = exc.reply()
        except ClientDisconnect:
            response = Reply.empty(499)  # nginx's "client closed request"
        except RolecallError as exc:  # from the router: mapped to OpenAI's statuses
            role = state.role or state.label
            response = openai_error_response(exc, role, upstreams(gateway), fields)
        except Exception as exc:
            log.error("%s request failed: %s", name, redact(f"{type(exc).__name__}: {exc}"))
            response = json_reply(500, fmt.error_body(INTERNAL_ERROR, "api_error"))
        name_request(response, REQUEST_ID, state.task_id)
        state.status = reply_status(response)
        return response
    finally:
        if not state.streaming:
            state.finish()


@dataclass(slots=True)
class StreamStart:
    """A stream up to its first content: what is left of it, and who is answering."""

    chunks: AsyncIterator[Chunk]  # the rest, after ``first``
    first: Chunk | None  # None: the answer was empty and the reply is complete
    provider: str
    attempts: int


async def start_stream(request: DoorRequest, reply_stream: ReplyStream) -> StreamStart:
    """Wait for a stream's first content (a client that leaves closes the stream), so the
    response's headers can name the provider that answers."""
    chunks = reply_stream.deltas()
    try:
        first = await unless_disconnected(request, first_content(chunks))
    except BaseException:
        await reply_stream.aclose()
        raise
    if first is None:  # an empty answer: the reply is already complete
        reply = reply_stream.reply
        return StreamStart(chunks, None, reply.provider, len(reply.attempts))
    return StreamStart(chunks, first, reply_stream.provider or "", reply_stream.attempts_so_far)


def stream_response(
    events: AsyncIterator[bytes],
    headers: Mapping[str, str],
    reply_stream: ReplyStream,
    state: RequestState,
) -> SSEResponse:
    """A door's SSE response: not cached or buffered by proxies; when it closes, the
    provider call is freed (a client that left early) and the request is counted."""

    async def on_close() -> None:
        try:
            await reply_stream.aclose()
        finally:
            state.finish()

    state.status = 200
    state.streaming = True
    # The client may take as long to read as the provider may take to send.
    generation = state.generation
    provider = generation and generation.config.providers.get(reply_stream.provider or "")
    return SSEResponse(
        events,
        {**headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
        on_close,
        provider.timeout if provider else None,
    )
