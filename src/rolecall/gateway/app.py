"""The OpenAI-compatible gateway: an ASGI app (Starlette) over the router.

Routes: ``POST /v1/chat/completions`` (plain and SSE), ``GET /v1/models``,
``GET /v1/models/{id}``, ``GET /healthz`` (no key needed) and ``GET /metrics``
(Prometheus text). ``model`` names a role (routed through its chain), a
provider id (that provider alone, recorded with the provider id as its role)
or an alias for either from ``gateway.model_aliases``; a name that is both is
taken as the role; an ``x-rolecall-role`` header overrides ``model``. Keys
come as ``Authorization: Bearer`` or ``x-api-key`` (Anthropic's clients).

The front doors' POSTs (chat completions, Messages, Responses) are dispatched
before Starlette's router and middleware: they cost ~0.1 ms of CPU per call, and
each door catches its own errors; :attr:`Gateway.doors` lists them for the HTTP
protocol, which under ``rolecall serve`` calls them without the ASGI app
(:mod:`rolecall.gateway.hotpath`). Every other path (and the lifespan) goes
through Starlette.

The gateway decides nothing about routing (it calls the router) and stores
nothing (it attaches the recorder). Runs: a run of kind ``gateway`` per
process, rolled over to a new run every 100,000 tasks or 24 hours so that no
run log grows without bound (:mod:`rolecall.gateway._run`; finished ones can be
deleted); every chat request is one task, and the completion id is
``chatcmpl-<task id>`` so a client's response can be found with
``rolecall runs show``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rolecall._text import visible
from rolecall.errors import ConfigError, ConfigIssue, MissingExtra, RolecallError

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from starlette.types import ASGIApp, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("gateway", "starlette", "rolecall serve") from exc

from rolecall.config.schema import BUILTIN_ROLES
from rolecall.dashboard.routes import dashboard_routes
from rolecall.gateway import openai_format as fmt
from rolecall.gateway._body import BodyBudget
from rolecall.gateway._door import (
    DoorHandler,
    DoorReply,
    door_endpoint,
    no_key,
    refuse_web_pages,
    refused,
)
from rolecall.gateway._exchange import DoorRequest
from rolecall.gateway._responses import HTTPError
from rolecall.gateway._run import RUN_MAX_SECONDS, RUN_MAX_TASKS, GatewayRun
from rolecall.gateway.auth import (
    KeyChecker,
    is_loopback,
    unsafe_bind_message,
)
from rolecall.gateway.chat import chat_completions
from rolecall.gateway.messages import messages, messages_routes
from rolecall.gateway.models import error_response as models_error
from rolecall.gateway.models import get_model, list_models
from rolecall.gateway.prom import GatewayMetrics
from rolecall.gateway.reload import ConfigWatcher, Generation, RouterSlot, restart_only_changes
from rolecall.gateway.responses import input_tokens, responses
from rolecall.gateway.status import healthz, prometheus

if TYPE_CHECKING:
    from rolecall.config.schema import GatewayConfig, MetricsConfig, RolecallConfig
    from rolecall.events import EventSink
    from rolecall.gateway.prom_share import SharedMetrics
    from rolecall.providers.base import Provider
    from rolecall.recording.recorder import RecordQueue

__all__ = ["Gateway", "create_app"]

log = logging.getLogger("rolecall.gateway")


class Gateway:
    """The gateway's state: current router generation, keys, metrics, recorder, watcher.

    ``await start()`` builds the first router (running the credential check
    unless ``offline``), opens the gateway run and starts watching the config
    file; ``await aclose()`` undoes all of it. :attr:`app` is the ASGI app; its
    lifespan calls both when the server runs lifespan events.
    """

    def __init__(
        self,
        config: RolecallConfig,
        *,
        config_path: str | Path | None = None,
        offline: bool = False,
        host: str = "127.0.0.1",
        poll_interval: float = 1.0,
        record: bool = True,
        providers: Mapping[str, Provider] | None = None,
        run_max_tasks: int = RUN_MAX_TASKS,
        run_max_seconds: float = RUN_MAX_SECONDS,
        open_recorder: Callable[[MetricsConfig], RecordQueue] | None = None,
        metrics_dir: str | Path | None = None,
        workers: int = 1,
        quiet: bool = False,
    ) -> None:
        self.config_path = Path(config_path).resolve() if config_path else None
        # Another worker reports what every worker would: a bad edit, a telemetry setting.
        self.quiet = quiet
        self.offline = offline
        self.host = host
        self.poll_interval = poll_interval
        self.metrics = GatewayMetrics()
        # Bytes of request bodies in flight: this worker's share of the limit.
        self.body_budget = BodyBudget(workers)
        self._run_max_tasks = run_max_tasks
        self._run_max_seconds = run_max_seconds
        self._initial = config
        self._record = record
        self._providers = providers  # injected adapters (embedding, benchmarks); else built
        self._open_recorder = open_recorder  # else a Recorder writing from this process
        self._run: GatewayRun | None = None
        self._last_run_id: str | None = None  # after aclose(), the run it finished
        # A worker of `serve --workers N`: /metrics sums every worker's files in this directory.
        self._metrics_dir = metrics_dir
        self.shared_metrics: SharedMetrics | None = None
        self._slot: RouterSlot | None = None
        self._watcher: ConfigWatcher | None = None
        self._generations = 0
        self._started_at = time.time()
        self.app = self._build_app()

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def started_at(self) -> float:
        """When the gateway was made (epoch seconds): its models' ``created``."""
        return self._started_at

    @property
    def started(self) -> bool:
        return self._slot is not None

    @property
    def generation(self) -> Generation:
        """The generation new requests use."""
        if self._slot is None:
            raise RuntimeError("the gateway is not started: await Gateway.start() first")
        return self._slot.current

    async def start(self, *, check: bool = True) -> None:
        """Build the router (credential check unless offline, or ``check=False`` when it was
        done already), open the run, watch the file."""
        if self._slot is not None:
            return
        config = self._initial
        if not is_loopback(self.host) and not config.gateway.keys:
            source = str(self.config_path) if self.config_path else None
            raise ConfigError([ConfigIssue("gateway.keys", unsafe_bind_message(self.host))], source)
        generation = await self._build_generation(config, check=check)
        if self._record and config.metrics.enabled:
            # Opened once the router is ready, so a failed start leaves no empty run behind.
            self._run = self._open_run(config)
            generation.router.events.add(self._run.recorder)
        self._slot = RouterSlot(generation)
        if self.config_path is not None:
            self._watcher = ConfigWatcher(
                self.config_path,
                self.apply_config,
                interval=self.poll_interval,
                quiet=self.quiet,
            )
            self._watcher.start()
        if self._metrics_dir is not None:
            from rolecall.gateway.prom_share import SharedMetrics

            self.shared_metrics = SharedMetrics(self._metrics_dir, self.metrics)
            self.shared_metrics.start()

    async def aclose(self) -> None:
        """Stop watching, close every router generation, finish the run."""
        if self._watcher is not None:
            await self._watcher.stop()
            self._watcher = None
        slot = self._slot
        if slot is not None:
            # Requests still in flight (a forced stop) end here, answered while the gateway
            # is still started (a 503 names no upstream), and are recorded before the run ends.
            await slot.aclose()
        self._slot = None
        run, self._run = self._run, None
        if run is not None:
            self._last_run_id = run.run_id
            run.close()
        shared, self.shared_metrics = self.shared_metrics, None
        if shared is not None:  # after the requests in flight: its last counts are final
            await shared.stop()
        from rolecall.recording.sinks import flush_telemetry

        flush_telemetry()

    def _open_run(self, config: RolecallConfig) -> GatewayRun:
        from rolecall.recording.recorder import Recorder

        # Relative metrics paths resolve against the working directory, as for every command;
        # uvicorn owns the signals, and aclose() finishes the run and flushes.
        recorder: RecordQueue
        if self._open_recorder is not None:
            recorder = self._open_recorder(config.metrics)
        else:
            recorder = Recorder(config.metrics, install_signal_handlers=False)
        return GatewayRun(
            recorder, max_tasks=self._run_max_tasks, max_seconds=self._run_max_seconds
        )

    @property
    def run_id(self) -> str | None:
        """The gateway's current run (None when nothing is recorded)."""
        return self._run.run_id if self._run is not None else self._last_run_id

    def task_run_id(self) -> str | None:
        """The run a new task belongs to (see :class:`GatewayRun`)."""
        return self._run.task_run_id() if self._run is not None else None

    async def _build_generation(self, config: RolecallConfig, *, check: bool = True) -> Generation:
        from rolecall.recording.sinks import telemetry_sink
        from rolecall.routing.router import Router

        sinks: list[EventSink] = [self.metrics]
        if self._run is not None:
            sinks.append(self._run.recorder)
        tracing = telemetry_sink(config, quiet=self.quiet)
        if tracing is not None:
            sinks.append(tracing)
        router = Router(config, providers=self._providers, sinks=sinks)
        try:
            if check and not self.offline:
                await router.check_credentials()
            await router.connect_health()
        except BaseException:
            await router.aclose()
            raise
        self._generations += 1
        return Generation(router, config, KeyChecker(config.gateway.keys), self._generations)

    def reload_now(self) -> None:
        """Read the config file now instead of at the next poll (SIGHUP to ``rolecall serve``)."""
        if self._watcher is not None:
            log.info("reading config %s now (SIGHUP)", self.config_path)
            self._watcher.poll_soon()

    async def apply_config(self, config: RolecallConfig) -> None:
        """Serve ``config`` from now on (the watcher calls this); on any failure keep the old."""
        if self._slot is None or config == self._slot.current.config:
            return
        path = self.config_path or "config"
        if not is_loopback(self.host) and not config.gateway.keys:
            self.metrics.reloads.inc(("rejected",))
            log.warning(
                "config %s changed but was not applied: gateway.keys is empty while listening "
                "on %s; keeping the previous config",
                path,
                self.host,
            )
            return
        try:
            generation = await self._build_generation(config)
        except RolecallError as exc:
            self.metrics.reloads.inc(("rejected",))
            log.warning(
                "config %s changed but was not applied; keeping the previous config: %s",
                path,
                " ".join(exc.message.split()),
            )
            return
        if self._slot is None:  # the gateway closed while the new router was being checked
            await generation.router.aclose()
            return
        old = self._slot.swap(generation)
        self.metrics.reloads.inc(("ok",))
        log.info("config %s reloaded (generation %d)", path, generation.number)
        if pending := restart_only_changes(old.config, config):
            log.warning(
                "config %s: %s changed but take effect only when rolecall serve restarts; "
                "recording continues to the metrics store and runs directory it started with",
                path,
                ", ".join(pending),
            )

    def limits(self) -> GatewayConfig:
        """The ``gateway:`` settings now in force (the initial ones until started)."""
        slot = self._slot
        return (slot.current.config if slot is not None else self._initial).gateway

    # ---- what a request may name -----------------------------------------------------------

    @staticmethod
    def roles(config: RolecallConfig) -> list[str]:
        """Routable roles: configured ones, and built-in ones the default provider serves."""
        builtin = [r for r in BUILTIN_ROLES if r in config.roles or config.default_provider]
        return builtin + sorted(r for r in config.roles if r not in BUILTIN_ROLES)

    def target(
        self, config: RolecallConfig, model: str, role_header: str | None = None
    ) -> tuple[str, str | None]:
        """(role, provider or None) for a request; 404 when it names nothing.

        ``role_header`` (the ``x-rolecall-role`` header) wins over ``model``; else
        ``model`` is a role, a provider id, or an alias from ``gateway.model_aliases``
        (the names agents send by default) for either.
        """
        name = role_header.strip() if role_header and role_header.strip() else model
        name = config.gateway.model_aliases.get(name, name)
        if name in config.roles or name in BUILTIN_ROLES:
            return name, None
        if name in config.providers:
            return name, name
        raise self.unknown_model(config, name)

    def authorized(self, request: Request) -> bool:
        """The request carries a gateway key: ``Authorization: Bearer`` or ``x-api-key``.

        Without keys every request is let through that names the gateway by a loopback
        name and comes from no web page of another site; any other ``Host`` or ``Origin``
        raises a 403 :class:`HTTPError` (:func:`~rolecall.gateway._door.refuse_web_pages`).
        """
        keys = self.generation.keys
        headers = request.headers
        if not keys.enabled:
            refuse_web_pages(headers.get("host"), headers.get("origin"))
        if keys.allows(headers.get("authorization")):
            return True
        api_key = headers.get("x-api-key")
        return api_key is not None and keys.allows(f"Bearer {api_key}")

    def door_authorized(self, request: DoorRequest) -> bool:
        """:meth:`authorized`, for a request to a front door."""
        keys = self.generation.keys
        if not keys.enabled:
            refuse_web_pages(request.header(b"host"), request.header(b"origin"))
        if keys.allows(request.header(b"authorization")):
            return True
        api_key = request.header(b"x-api-key")
        return api_key is not None and keys.allows(f"Bearer {api_key}")

    def unknown_model(self, config: RolecallConfig, name: str) -> HTTPError:
        roles = ", ".join(self.roles(config)) or "none"
        providers = ", ".join(config.providers) or "none"
        body = fmt.error_body(
            f"model '{visible(name)}' is neither a role nor a provider of this gateway; use a role "
            f"({roles}) or a provider id ({providers}); GET /v1/models lists them",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
        return HTTPError(404, body)

    # ---- leases on the current router ------------------------------------------------------

    def lease(self) -> Generation:
        """The current generation, held until :meth:`release` (a reload waits for it)."""
        if self._slot is None:
            raise RuntimeError("the gateway is not started")
        return self._slot.acquire()

    def release(self, generation: Generation) -> None:
        if self._slot is not None:
            self._slot.release(generation)
        else:  # the gateway closed while the request ran; its router is closed already
            generation.in_flight -= 1

    # ---- the app ---------------------------------------------------------------------------

    def _build_app(self) -> ASGIApp:
        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            owned = not self.started
            await self.start()
            try:
                yield
            finally:
                if owned:
                    await self.aclose()

        async def no_route(request: Request, exc: Exception) -> Response:
            status = int(getattr(exc, "status_code", 404))
            # The path as received (request.url drops a CR or LF), its controls escaped.
            message = f"no route {request.method} {visible(request.scope['path'])}"
            # A 405 names the methods the path takes (Starlette puts them in Allow); an
            # Anthropic client gets Anthropic's shape, as from the model list.
            body = fmt.error_body(message, "invalid_request_error", "not_found")
            return models_error(request, HTTPError(status, body, getattr(exc, "headers", None)))

        chat = self._door_guarded(lambda r: chat_completions(self, r))
        answer = self._door_guarded(lambda r: responses(self, r))
        counted = self._door_guarded(lambda r: input_tokens(self, r))
        door_routes = messages_routes(self)
        routed = Starlette(
            routes=[
                Route("/v1/chat/completions", door_endpoint(chat), methods=["POST"]),
                Route("/v1/responses", door_endpoint(answer), methods=["POST"]),
                Route("/v1/responses/input_tokens", door_endpoint(counted), methods=["POST"]),
                Route(
                    "/v1/models",
                    self._guarded(lambda r: list_models(self, r), models_error),
                    methods=["GET"],
                ),
                Route(
                    "/v1/models/{model:path}",
                    self._guarded(lambda r: get_model(self, r), models_error),
                    methods=["GET"],
                ),
                Route("/metrics", self._guarded(partial(prometheus, self)), methods=["GET"]),
                Route("/healthz", partial(healthz, self), methods=["GET"]),
                *door_routes,
                *dashboard_routes(self),
            ],
            exception_handlers={404: no_route, 405: no_route},
            lifespan=lifespan,
        )
        # No redirect of "/path/" to "/path" (a 307 answered before any key check, its Location
        # built from the client's Host header): a path with a slash too many is a 404.
        routed.router.redirect_slashes = False
        # The front doors' POSTs, answered without Starlette's routing (each catches its own
        # errors); served by the HTTP protocol itself under `rolecall serve` (gateway.hotpath).
        doors: dict[str, DoorHandler] = {
            "/v1/chat/completions": chat,
            "/v1/responses": answer,
            "/v1/messages": lambda r: messages(self, r),
        }
        self.doors: Mapping[str, DoorHandler] = doors

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            door = doors.get(scope["path"]) if scope["type"] == "http" else None
            if door is not None and scope["method"] == "POST":
                reply = await door(DoorRequest(scope, receive))
                await reply(scope, receive, send)
            else:
                await routed(scope, receive, send)

        return app

    def _guarded(
        self,
        endpoint: Callable[[Request], Awaitable[Response]],
        answer_error: Callable[[Request, HTTPError], Response] | None = None,
    ) -> Callable[[Request], Awaitable[Response]]:
        """``endpoint`` behind the key check; early answers raised as HTTPError become JSON
        (OpenAI's shape, or what ``answer_error`` makes of them)."""

        async def guarded(request: Request) -> Response:
            try:
                if not self.authorized(request):
                    raise no_key()
                return await endpoint(request)
            except HTTPError as exc:
                return exc.response() if answer_error is None else answer_error(request, exc)

        return guarded

    def _door_guarded(self, door: DoorHandler) -> DoorHandler:
        """A front door behind the key check (each door answers its own errors after it)."""

        def guarded(request: DoorRequest) -> Awaitable[DoorReply]:
            try:
                if not self.door_authorized(request):
                    return refused(no_key())
            except HTTPError as exc:
                return refused(exc)
            return door(request)  # a let-through request costs no frame of its own

        return guarded


def create_app(
    config_path: str | Path | None = None,
    *,
    offline: bool = False,
    host: str = "127.0.0.1",
    poll_interval: float = 1.0,
) -> ASGIApp:
    """An ASGI app for any ASGI server: loads the config now, starts in the lifespan."""
    from rolecall.config.load import find_config_path, load_config

    path = find_config_path(str(config_path) if config_path else None)
    gateway = Gateway(
        load_config(path), config_path=path, offline=offline, host=host, poll_interval=poll_interval
    )
    return gateway.app
