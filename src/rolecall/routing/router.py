"""The router: the only place that decides which provider answers a task.

For each call it resolves the role's chain (precomputed per role, reordered by the
role's strategy), skips providers the health says cannot answer now, and calls the
rest in order under the global retry policy, handing over to the next provider when
a failure cannot be retried, when retrying would break ``failover_within``, or when
the provider's attempts are used up. Every call becomes an :class:`Attempt` and an
:class:`AttemptEvent`; every task ends with one :class:`TaskEvent`.

Selection is a dict lookup and a tuple rotation: no I/O, and no lock is ever held
across an await (the only waits are the per-provider concurrency semaphore, the
first-call gate's event and the retry sleep). The attempt loop lives in ``_attempt``
and the chain walk (with its stall race) in ``_chain``; whole answers and streams
share both.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from rolecall._secrets import redact
from rolecall.config._schema_errors import did_you_mean
from rolecall.config.schema import RolecallConfig
from rolecall.errors import (
    ConfigError,
    ConfigIssue,
    CredentialsError,
    NoProviderForRole,
    RolecallError,
    RouterClosed,
)
from rolecall.events import EventBus, EventSink
from rolecall.health.memory import HealthTracker
from rolecall.health.shared import make_health
from rolecall.providers.base import Provider
from rolecall.routing._attempt import ProviderCalls
from rolecall.routing._capabilities import Capabilities
from rolecall.routing._chain import complete_on_chain
from rolecall.routing._hints import explain_all
from rolecall.routing._inflight import InFlight
from rolecall.routing._limits import concurrency_limits
from rolecall.routing._outcomes import Outcomes
from rolecall.routing._strategy import ChainPlan, plan_for_role
from rolecall.routing._stream import ReplyStream, run_stream
from rolecall.routing._task import TaskRun, checked_messages, refused, short_id
from rolecall.routing.credentials import (
    _build_provider,
    check_config_credentials,
    checked_provider_ids,
    split_failures,
    transient_warning,
)
from rolecall.types import ChatRequest, Message, Reply

__all__ = ["ReplyStream", "Router", "complete_sync"]

log = logging.getLogger("rolecall.router")

Messages = str | Sequence[Message | Mapping[str, Any]]
Sleep = Callable[[float], Awaitable[Any]]

_DEFAULT_MAX_CONCURRENCY = 8
_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


class Router:
    """Routes each task to its role's providers; share one instance across tasks."""

    def __init__(
        self,
        config: RolecallConfig,
        *,
        providers: Mapping[str, Provider] | None = None,
        sinks: Sequence[EventSink] = (),
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        health: HealthTracker | None = None,
        check_credentials: bool = False,
        checked_roles: Collection[str] | None = None,
    ) -> None:
        if not isinstance(config, RolecallConfig):
            raise RolecallError(
                f"Router takes a loaded config, not {type(config).__name__}: use "
                "Router.from_file(path) for a config file, or Router(rolecall.load_config(path))"
            )
        self._config = config
        self._clock = clock
        self._rng = rng
        self._check_on_enter = check_credentials
        self._checked_roles = tuple(checked_roles) if checked_roles is not None else None
        self._inflight = InFlight()
        self._closing: asyncio.Future[None] | None = None
        self.events = EventBus(list(sinks))
        # Chosen by config.state (in memory, or shared through Redis); closed with the router.
        self._owns_health = health is None
        self._health: HealthTracker = health if health is not None else make_health(config, clock)
        self._providers: dict[str, Provider] = dict(providers or {})
        self._built: list[str] = []
        known = dict.fromkeys([*config.providers, *self._providers])
        self._semaphores = concurrency_limits(
            config,
            {
                pid: config.providers[pid].max_concurrency
                if pid in config.providers
                else _DEFAULT_MAX_CONCURRENCY
                for pid in known
            },
            self._provider,
        )
        self._plans: dict[str, ChainPlan] = {
            role: plan_for_role(role_config, config.default_provider)
            for role, role_config in config.roles.items()
        }
        self._default_plan = plan_for_role(None, config.default_provider)
        self._check_references(known)
        self._outcomes = Outcomes(config, self.events, self._providers, clock)
        self._capabilities = Capabilities(config)
        self._calls = ProviderCalls(
            provider=self._provider,
            semaphores=self._semaphores,
            health=self._health,
            outcomes=self._outcomes,
            capabilities=self._capabilities,
            retry=config.retry,
            failover_within=config.failover_within,
            timeouts={pid: entry.timeout for pid, entry in config.providers.items()},
            clock=clock,
            sleep=sleep,
            rng=rng,
            inflight=self._inflight,
        )
        self._params: dict[tuple[str, str], Mapping[str, Any]] = {}
        for role, plan in self._plans.items():
            for pid in plan.fixed:
                self._params[(role, pid)] = self._merged_params(role, pid)

    def _check_references(self, known: Mapping[str, None]) -> None:
        issues = [
            ConfigIssue(
                location=location,
                problem=f"provider '{pid}' is not defined",
                fix=f"define it under providers (defined: {', '.join(known) or 'none'})",
            )
            for location, plan in [
                *((f"roles.{role}", plan) for role, plan in self._plans.items()),
                ("default_provider", self._default_plan),
            ]
            for pid in plan.fixed
            if pid not in known
        ]
        if issues:
            raise ConfigError(issues)

    def _merged_params(self, role: str, pid: str) -> Mapping[str, Any]:
        provider_config = self._config.providers.get(pid)
        merged = dict(provider_config.params) if provider_config else {}
        merged.update(self._config.role_params(role))
        return MappingProxyType(merged)

    # ---- construction helpers ------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | Path | None = None,
        *,
        check_credentials: bool = True,
        sinks: Sequence[EventSink] = (),
        checked_roles: Collection[str] | None = None,
    ) -> Router:
        """A router for the config at ``path`` (or ``ROLECALL_CONFIG``, or ./rolecall.yaml).

        With ``check_credentials`` (the default) ``async with`` checks every provider's
        key first (only those ``checked_roles`` reach, when given: a caller that calls no
        other role) and raises :class:`CredentialsError` naming each one that fails.
        """
        from rolecall.config.load import load_config

        config = load_config(path)
        return cls(
            config, sinks=sinks, check_credentials=check_credentials, checked_roles=checked_roles
        )

    async def __aenter__(self) -> Router:
        # Shared health answers first (while the keys are checked), so a one-shot command's
        # only call already goes by what other processes found.
        connecting = asyncio.ensure_future(self.connect_health())
        try:
            if self._check_on_enter:
                await self.check_credentials()
            await connecting
        except BaseException:
            connecting.cancel()
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def config(self) -> RolecallConfig:
        return self._config

    @property
    def health(self) -> HealthTracker:
        return self._health

    def _provider(self, pid: str) -> Provider:
        if self._inflight.closed:
            raise RouterClosed("the router is closed: create a new one")
        provider = self._providers.get(pid)
        if provider is None:
            # Built on first use: a provider no call reaches (an unused local model) costs nothing.
            provider = _build_provider(pid, self._config.providers[pid])
            self._providers[pid] = provider
            self._built.append(pid)
        return provider

    async def connect_health(self) -> None:
        """Wait until shared health (``state.redis_url``) has answered once, at most its
        timeout; calls never wait on it, so one made before goes by this process alone."""
        connect: Callable[[], Awaitable[bool]] | None = getattr(self._health, "connect", None)
        if connect is not None:
            await connect()

    async def check_credentials(self) -> None:
        """Check every configured provider (or those the router's ``checked_roles`` reach);
        raise :class:`CredentialsError` on wrong credentials.

        Providers that pass skip the first-call gate; those whose key, model or quota
        was refused are marked unavailable, so no task calls them, and the error names
        each with its fix. A provider that could not be checked (timeout, 5xx, 429,
        network) is no reason to stop: it is logged as one warning and starts in
        cooldown (its ``retry_after``, else ``failover_within``) while the others answer.
        """
        ids = checked_provider_ids(self._config, self._checked_roles)
        providers = {pid: self._provider(pid) for pid in ids}
        errors = await check_config_credentials(self._config, providers, self._checked_roles)
        rejected, transient = split_failures(errors)
        failed = {error.provider for error in errors}
        for pid in ids:
            if pid not in failed:
                self._health.mark_confirmed(pid)
        for error in rejected:
            self._health.mark_unavailable(error.provider, error)
        now = self._clock()
        for error in transient:
            cooldown = error.retry_after or self._config.failover_within
            self._health.cool_down(error.provider, now + cooldown)
            log.warning("%s", transient_warning(error, cooldown))
        if rejected:
            head = f"credential check failed for {len(rejected)} provider(s):"
            raise CredentialsError(rejected, message=explain_all(head, rejected, self._config))

    async def aclose(self) -> None:
        """End the calls in flight, then close the providers this router built (injected
        ones belong to the caller).

        A call still running (in another task) is cancelled and recorded as cancelled, with
        no retry and no hand-over, and raises :class:`RouterClosed` to its caller; a stream
        read after this raises it too. Calling ``aclose`` again (even at the same time)
        waits for the same closing.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        await self._inflight.close()
        built, self._built = self._built, []
        # Kept in the table: the records of calls ended by the close still name their model.
        providers = [self._providers[pid] for pid in built]
        results = await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("closing a provider failed: %s", redact(str(result)))
        close_health = getattr(self._health, "aclose", None) if self._owns_health else None
        if close_health is not None:
            await close_health()

    # ---- selection -----------------------------------------------------------------------

    def chain(self, role: str, *, provider: str | None = None) -> tuple[str, ...]:
        """The providers one call for ``role`` would try, in order (strategy applied)."""
        if not (isinstance(role, str) and role in self._plans):  # a configured role passes
            self._check_role(role)
        if provider is not None:
            if not isinstance(provider, str) or provider not in self._semaphores:
                valid = ", ".join(self._semaphores) or "none"
                raise RolecallError(f"unknown provider '{provider}': valid ids are {valid}")
            return (provider,)
        plan = self._plans.get(role, self._default_plan)
        if not plan.fixed:
            raise NoProviderForRole(role, near=did_you_mean(role, self._plans))
        return plan.order(self._health.latency_ms, self._rng, self._health.is_down)

    def _check_role(self, role: object) -> None:
        if not isinstance(role, str) or not role.strip() or not role.isprintable():
            assigned = ", ".join(self._plans) or "none assigned"
            raise RolecallError(
                f"role must be a non-empty name such as 'coder', not {role!r}: "
                f"pass one of the config's roles ({assigned})"
            )

    def _request(
        self,
        role: str,
        pid: str,
        messages: tuple[Message, ...],
        params: Mapping[str, Any] | None,
        response_schema: Mapping[str, Any] | None,
    ) -> ChatRequest:
        base = self._params.get((role, pid))
        if base is None:
            base = self._merged_params(role, pid) if role in self._plans else self._base(pid)
        merged = {**base, **params} if params else base
        return ChatRequest(messages=messages, params=merged, response_schema=response_schema)

    def _base(self, pid: str) -> Mapping[str, Any]:
        provider_config = self._config.providers.get(pid)
        return MappingProxyType(provider_config.params) if provider_config else _NO_PARAMS

    def _new_task(
        self,
        role: str,
        run_id: str | None,
        task_id: str | None,
        stage: str | None,
        dialect: str | None,
        params: Mapping[str, Any] | None,
    ) -> TaskRun:
        return TaskRun(
            role=role,
            run_id=run_id or short_id(),
            task_id=task_id or short_id(),
            stage=stage,
            started=self._clock(),
            dialect=dialect,
            params=params,
        )

    # ---- calls ---------------------------------------------------------------------------

    async def complete(
        self,
        role: str,
        messages: Messages,
        *,
        params: Mapping[str, Any] | None = None,
        response_schema: Mapping[str, Any] | None = None,
        provider: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        stage: str | None = None,
        dialect: str | None = None,
    ) -> Reply:
        """One answer for ``role``, from the first provider in its chain that gives one.

        Raises :class:`NoProviderForRole` for a role with no provider and no default,
        :class:`UnknownParameter` for a ``params`` name no provider takes (before any
        call; ``drop_params`` in the config drops listed names instead), a
        :class:`ProviderError` of kind ``bad_request`` for messages, params or a schema
        it cannot send (also before any call), and
        :class:`AllProvidersFailed` (with ``errors`` and ``attempts``) when the
        chain is exhausted.
        """
        chain = self.chain(role, provider=provider)
        params = self._capabilities.check_call(params)
        normalized = checked_messages(messages)
        _check_schema(response_schema)
        task = self._new_task(role, run_id, task_id, stage, dialect, params)

        def request_for(pid: str) -> ChatRequest:
            return self._request(role, pid, normalized, params, response_schema)

        with self._inflight:
            try:
                return await complete_on_chain(self._calls, task, chain, request_for)
            except asyncio.CancelledError:  # its caller went away, or aclose() ended it
                self._outcomes.cancel(task)
                raise

    def stream(
        self,
        role: str,
        messages: Messages,
        *,
        params: Mapping[str, Any] | None = None,
        response_schema: Mapping[str, Any] | None = None,
        provider: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        stage: str | None = None,
        dialect: str | None = None,
    ) -> ReplyStream:
        """Text chunks for ``role`` as they arrive; ``.reply`` once the stream is exhausted.

        A failure before the first chunk is retried or handed over like any failure;
        after text has been yielded it raises :class:`StreamInterrupted` instead, so
        the caller never receives duplicated text.
        """
        chain = self.chain(role, provider=provider)
        params = self._capabilities.check_call(params)
        normalized = checked_messages(messages)
        _check_schema(response_schema)
        task = self._new_task(role, run_id, task_id, stage, dialect, params)

        def request_for(pid: str) -> ChatRequest:
            return self._request(role, pid, normalized, params, response_schema)

        reply_stream = ReplyStream()
        reply_stream._attach(run_stream(self._calls, task, chain, request_for, reply_stream))
        return reply_stream


def _check_schema(schema: Any) -> None:
    if schema is not None and not isinstance(schema, Mapping):
        raise refused(
            f"response_schema must be a JSON Schema object (a dict), not {type(schema).__name__}"
        )


def complete_sync(
    role: str, prompt: Messages, *, config_path: str | Path | None = None, **kwargs: Any
) -> Reply:
    """One routed call from synchronous code (runs its own event loop; no credential check).

    Called where an event loop is already running (a Jupyter cell, an async function),
    where ``asyncio.run`` cannot start another, the call runs on a thread of its own and
    this blocks until it ends; in async code ``await router.complete(...)`` does not block.
    """

    async def _run() -> Reply:
        async with Router.from_file(config_path, check_credentials=False) as router:
            return await router.complete(role, prompt, **kwargs)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_run())
    context = contextvars.copy_context()  # the caller's context (a current span) goes along
    with ThreadPoolExecutor(1, thread_name_prefix="rolecall-sync") as pool:
        return pool.submit(context.run, asyncio.run, _run()).result()
