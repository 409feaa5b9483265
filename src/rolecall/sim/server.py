"""``SimServer``: a fake OpenAI, Anthropic, Gemini, Azure OpenAI, Vertex AI or Bedrock
endpoint on 127.0.0.1 with scripted faults.

Each server runs its own asyncio loop in a daemon thread, so it serves
synchronous tests, async tests and out-of-process clients alike. Every chat
request pops one fault from the FIFO ``script`` queue (or, when the queue is
empty, takes the next sticky fault from ``set_faults``) and otherwise answers
normally, in the vendor's exact wire format. The model endpoints (the
credential check's calls) take faults from their own ``script_models`` queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rolecall.sim._anthropic import AnthropicDialect
from rolecall.sim._azure import AzureOpenAIDialect
from rolecall.sim._bedrock import BedrockDialect
from rolecall.sim._common import (
    Answer,
    Ctx,
    Dialect,
    Route,
    answer_extras,
    count_words,
    minimal_instance,
)
from rolecall.sim._control import INVALID, control, ok, parse_json
from rolecall.sim._deliver import deliver
from rolecall.sim._google import GoogleDialect
from rolecall.sim._http import Exchange, HttpRequest, HttpServer, Rendered
from rolecall.sim._openai import OpenAIDialect
from rolecall.sim._script import FaultScript
from rolecall.sim._vertex import VertexDialect
from rolecall.sim.faults import HANG_KINDS, Fault

__all__ = ["Protocol", "RecordedRequest", "Responder", "SimServer", "request_latency"]

log = logging.getLogger("rolecall.sim")

Protocol = Literal["openai", "anthropic", "google", "azure-openai", "vertex", "bedrock"]
# A dict is {text, input_tokens?, output_tokens?, finish?, tool_calls?, reasoning?,
# cached_input_tokens?, cache_creation_input_tokens?}; finish "length" renders the
# vendor's cut-off marker (finish_reason length, stop_reason max_tokens, MAX_TOKENS),
# "context_window" the marker for an answer cut off by the context window (Anthropic's and
# Bedrock's model_context_window_exceeded; the others say length);
# tool_calls are [{name, arguments (object or JSON text), id?}]; interleave_tool_calls:
# true makes an OpenAI-protocol stream send the calls' argument pieces in turn (call 0,
# call 1, call 0 again...), as vLLM may.
ResponderResult = str | dict[str, Any] | Fault
Responder = Callable[[dict[str, Any]], ResponderResult | Awaitable[ResponderResult]]

_DIALECTS: dict[str, type[Dialect]] = {
    "openai": OpenAIDialect,
    "anthropic": AnthropicDialect,
    "google": GoogleDialect,
    "azure-openai": AzureOpenAIDialect,
    "vertex": VertexDialect,
    "bedrock": BedrockDialect,
}


def request_latency(latency: float, jitter: float, text: str) -> float:
    """The delay before answering a prompt: ``latency`` spread by ``jitter``, fixed by ``text``.

    Uniform in ``latency * [1 - jitter, 1 + jitter)``, the point chosen by a hash
    of ``text``: real latencies vary (which breaks the lock-step convoys a fixed
    delay creates under load), yet a client that knows the prompt knows its delay.
    """
    u = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
    return latency * (1 - jitter + 2 * jitter * u)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it (control requests are not recorded)."""

    method: str
    path: str  # without the query string
    headers: dict[str, str]  # names lowercased
    json: Any  # the parsed body, or None when empty or not JSON
    query: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None  # the key found in the vendor's header (or Gemini's ?key=)
    body: bytes = b""


class SimServer:
    """A fake provider endpoint. See the module docstring and ``rolecall.sim``."""

    def __init__(
        self,
        protocol: Protocol,
        *,
        api_key: str | None = "test-key",
        models: Sequence[str] = ("sim-model",),
        reply: str = "Hello from the sim.",
        latency: float = 0.0,
        jitter: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_delay: float = 0.0,
        max_recorded: int = 10000,
    ) -> None:
        if protocol not in _DIALECTS:
            known = ", ".join(_DIALECTS)
            raise ValueError(f"unknown protocol {protocol!r}; expected one of: {known}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {jitter!r}")
        self.protocol: Protocol = protocol
        self.api_key = api_key
        self.models: tuple[str, ...] = tuple(models)  # empty: every model exists
        self.reply = reply
        self.latency = latency
        # Each chat request waits request_latency(latency, jitter, its prompt texts joined
        # by newlines); 0 waits exactly ``latency``.
        self.jitter = jitter
        self.chunk_delay = chunk_delay  # seconds between streamed content chunks
        self.max_recorded = max_recorded  # 0 records nothing (benchmarks)
        self.host = host
        self.responder: Responder | None = None
        self.calls = 0
        self.model_calls = 0
        # Chat requests being answered now, and the most at once since the last reset_stats().
        self.in_flight = 0
        self.peak_in_flight = 0
        self.requests: list[RecordedRequest] = []
        self._dialect = _DIALECTS[protocol]()
        self._port = port
        self._faults = FaultScript()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: HttpServer | None = None

    # Lifecycle -----------------------------------------------------------------------------
    def start(self) -> SimServer:
        """Bind and serve in a daemon thread. A restarted server keeps its port."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        http = HttpServer(self._handle)
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._port = loop.run_until_complete(http.open(self.host, self._port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(http.close())
                loop.close()

        thread = threading.Thread(target=run, name=f"rolecall-sim-{self.protocol}", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._http, self._thread = loop, http, thread
        return self

    def stop(self) -> None:
        """Close every connection (hanging ones included) and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = self._http = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the sim server has no port yet; call start() first")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (the control API lives under ``/_sim/``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a user puts in ``base_url``: OpenAI with ``/v1``, the others the host root."""
        return self._dialect.base_url(self.root_url)

    # Scripting -------------------------------------------------------------------------------
    def script(self, *faults: Fault | str) -> None:
        """Queue faults; each chat request (stream or not) takes the next one."""
        self._faults.queue(faults)

    def script_models(self, *faults: Fault | str) -> None:
        """Queue faults for the model endpoints only (list or get a model: the credential
        check); each such request takes the next one before any sticky fault applies."""
        self._faults.queue_models(faults)

    def set_faults(self, *faults: Fault | str) -> None:
        """Faults for every chat request until ``clear()``, in turn; used when the queue is empty.

        Kinds that a credential check would meet (auth, permission, region, server,
        overloaded, timeout, reset) also apply to the model endpoints.
        """
        self._faults.stick(faults)

    def clear(self) -> None:
        """Drop queued and sticky faults."""
        self._faults.clear()

    @property
    def pending(self) -> int:
        """Faults still queued."""
        return self._faults.pending

    def reset_stats(self) -> None:
        self.calls = 0
        self.model_calls = 0
        self.peak_in_flight = self.in_flight
        self.requests.clear()

    # Request handling ----------------------------------------------------------------------
    async def _handle(self, request: HttpRequest, ex: Exchange) -> None:
        if request.path.startswith("/_sim/"):
            await ex.respond(*control(self, request))
            return
        dialect = self._dialect
        parsed = parse_json(request.body)
        key = dialect.api_key(request)
        self._record(request, parsed, key)
        route = dialect.route(request.method, request.path)
        if route is None:
            await ex.respond(*dialect.unknown_route(request.method, request.path))
        elif route.action == "chat":
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                await self._chat(request, ex, route, parsed, key)
            finally:
                self.in_flight -= 1
        else:
            await self._model_endpoint(request, ex, route, key, parsed)
        if log.isEnabledFor(logging.INFO):
            outcome = str(ex.status) if ex.status else "connection dropped"
            log.info("%s %s %s -> %s", self.protocol, request.method, request.target, outcome)

    async def _model_endpoint(
        self, request: HttpRequest, ex: Exchange, route: Route, key: str | None, parsed: Any
    ) -> None:
        self.model_calls += 1
        dialect = self._dialect
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        ctx = Ctx(
            model=route.model or "",
            key=key,
            stream=False,
            body=body,
            input_tokens=count_words(dialect.prompt_texts(body)) if body else 0,
            scope=route.scope,
        )
        fault = self._faults.next_model()
        if fault is not None and fault.kind == "reset":
            ex.reset()
            return
        if fault is not None and fault.kind == "timeout":
            if await ex.wait_client_gone(fault.hang_seconds):
                return
        elif fault is not None and fault.kind != "ok":
            await self._send(ex, dialect.error(fault, ctx), ctx)
            return
        rejected = self._check_key(request, key) or dialect.check_headers(request)
        if rejected is not None:
            await self._send(ex, rejected)
        elif route.action == "models":
            await self._send(ex, ok(dialect.models_list(self.models or ("sim-model",))))
        elif not route.model or (self.models and route.model not in self.models):
            if route.action == "count":  # a POST in the chat's scope: its error names it
                await self._send(ex, dialect.error(Fault("not_found"), ctx))
            else:
                await self._send(ex, dialect.model_not_found(route.model or ""))
        elif route.action == "count":
            await self._send(ex, ok(dialect.count_tokens(ctx)))
        else:
            await self._send(ex, ok(dialect.model_info(route.model)))

    async def _chat(
        self, request: HttpRequest, ex: Exchange, route: Route, parsed: Any, key: str | None
    ) -> None:
        self.calls += 1
        fault = self._faults.next_chat()
        dialect = self._dialect
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        texts = dialect.prompt_texts(body)
        ctx = Ctx(
            model=dialect.model_of(body, route),
            key=key,
            stream=dialect.is_stream(body, route),
            body=body,
            input_tokens=max(count_words(texts), 1),
            scope=route.scope,
        )
        wait = self.latency
        if self.jitter > 0:
            wait = request_latency(wait, self.jitter, "\n".join(texts))
        if fault is not None and fault.kind not in HANG_KINDS:
            wait += fault.delay
        if wait > 0:
            await asyncio.sleep(wait)
        if fault is None or fault.kind == "ok":
            rejected = (
                self._check_key(request, key)
                or dialect.check_headers(request)
                or (dialect.invalid_json() if not isinstance(parsed, dict) else None)
                or dialect.check_body(body, route)
            )
            if rejected is None and self.models and ctx.model not in self.models:
                rejected = dialect.error(Fault("not_found"), ctx)
            if rejected is not None:
                await self._send(ex, rejected, ctx)
                return
            answer = await self._compose(ctx)
            if isinstance(answer, Answer):
                await self._deliver(ex, ctx, dialect.enrich(ctx, answer))
                return
            # The responder chose a fault for this request: its text (a stream cut or
            # stalled after some chunks, a timeout's late answer) is the plain reply, not
            # a second call to the responder, which answers once per request.
            if answer.kind not in HANG_KINDS and answer.delay > 0:
                await asyncio.sleep(answer.delay)
            await self._fault(ex, ctx, answer, ask_responder=False)
            return
        await self._fault(ex, ctx, fault)

    def _check_key(self, request: HttpRequest, key: str | None) -> Rendered | None:
        return self._dialect.check_key(request, key, self.api_key)

    async def _compose(self, ctx: Ctx) -> Answer | Fault:
        """The answer for a valid request: the responder's, the schema's or ``reply``."""
        input_tokens = ctx.input_tokens
        responder = self.responder
        if responder is not None:
            try:
                result = responder(ctx.body)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("sim responder raised")
                return Fault("server")
            if isinstance(result, Fault):
                return result
            if isinstance(result, dict):
                text = str(result.get("text", ""))
                return Answer(
                    text,
                    int(result.get("input_tokens", input_tokens)),
                    int(result.get("output_tokens", count_words([text]))),
                    truncated=result.get("finish") in ("length", "context_window"),
                    variant="context_window" if result.get("finish") == "context_window" else None,
                    **answer_extras(result),
                )
            text = str(result)
        else:
            text = self.reply
            schema = self._dialect.schema_of(ctx.body)
            if schema is not None and not _is_json(text):
                text = json.dumps(minimal_instance(schema))
        return Answer(text, input_tokens, count_words([text]))

    async def _fault(
        self, ex: Exchange, ctx: Ctx, fault: Fault, *, ask_responder: bool = True
    ) -> None:
        kind, dialect = fault.kind, self._dialect
        if kind == "ok":  # a responder's Fault("ok", delay=...): the plain reply, late
            await self._deliver(
                ex, ctx, Answer(self.reply, ctx.input_tokens, count_words([self.reply]))
            )
        elif kind == "reset":
            ex.reset()
        elif kind == "timeout" or (kind == "stall" and not ctx.stream):
            if not await ex.wait_client_gone(fault.hang_seconds):
                await self._deliver(ex, ctx, await self._compose_plain(ctx, ask_responder))
        elif kind == "stall":
            answer = await self._compose_plain(ctx, ask_responder)
            keepalive = dialect.keepalive_event() if fault.variant == "keepalive" else None
            await self._deliver(
                ex,
                ctx,
                answer,
                stall_after=fault.after_chunks,
                stall=fault.hang_seconds,
                keepalive=keepalive,
            )
        elif kind == "content_filter" and (refused := dialect.filtered_error(fault, ctx)):
            await self._send(ex, refused, ctx)
        elif kind in ("malformed", "empty", "content_filter"):
            answer = Answer(
                "" if kind == "empty" else self.reply,
                ctx.input_tokens,
                0 if kind != "malformed" else count_words([self.reply]),
                filtered=kind == "content_filter",
                variant=fault.variant,
            )
            await self._deliver(ex, ctx, answer, malformed=kind == "malformed")
        elif kind == "stream_error":
            answer = await self._compose_plain(ctx, ask_responder)
            if ctx.stream:
                await self._deliver(ex, ctx, answer, fail_after=fault.after_chunks)
            elif dialect.stream_error_event(ctx) is not None:
                await self._send(ex, dialect.error(Fault("overloaded"), ctx), ctx)
            else:
                status, headers, body = ok(dialect.answer(ctx, answer))
                await ex.respond_partial(status, [*headers, *dialect.headers(ctx)], body)
        else:
            await self._send(ex, dialect.error(fault, ctx), ctx)

    async def _compose_plain(self, ctx: Ctx, ask_responder: bool = True) -> Answer:
        answer = await self._compose(ctx) if ask_responder else None
        if isinstance(answer, Answer):
            return answer
        return Answer(self.reply, ctx.input_tokens, count_words([self.reply]))

    async def _deliver(self, ex: Exchange, ctx: Ctx, answer: Answer, **options: Any) -> None:
        """``deliver``'s keyword options: malformed, fail_after, stall_after, stall, keepalive."""
        await deliver(ex, self._dialect, ctx, answer, chunk_delay=self.chunk_delay, **options)

    async def _send(self, ex: Exchange, rendered: Rendered, ctx: Ctx | None = None) -> None:
        status, headers, body = rendered
        await ex.respond(status, [*headers, *self._dialect.headers(ctx)], body)

    def _record(self, request: HttpRequest, parsed: Any, key: str | None) -> None:
        if self.max_recorded <= 0:
            return
        requests = self.requests
        requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                headers=request.headers,
                json=None if parsed is INVALID else parsed,
                query=request.query,
                api_key=key,
                body=request.body,
            )
        )
        if len(requests) > self.max_recorded:
            del requests[: len(requests) - self.max_recorded // 2]

    # Control API -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """What ``GET /_sim/stats`` returns."""
        return {
            "protocol": self.protocol,
            "calls": self.calls,
            "model_calls": self.model_calls,
            "peak_in_flight": self.peak_in_flight,
            **self._faults.to_dict(),
        }

    def __repr__(self) -> str:
        where = self.base_url if self._port else "not started"
        return f"SimServer({self.protocol!r}, {where})"


def _is_json(text: str) -> bool:
    with contextlib.suppress(ValueError):
        json.loads(text)
        return True
    return False
