"""A scripted in-memory provider (a test double of the Provider protocol), a fake clock, and
the three fake vendor servers of ``sim_trio`` for the modules that use them as ``sims``."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any

import pytest
from sim_trio import fresh, started_sims

from rolecall.config.schema import RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.events import Event
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Chunk, Completion, Usage


@pytest.fixture(scope="module")
def trio_servers() -> Iterator[dict[str, SimServer]]:
    """One OpenAI, one Anthropic and one Gemini sim per test module (``sim_trio``)."""
    with started_sims() as servers:
        yield servers


@pytest.fixture
def sims(trio_servers: dict[str, SimServer]) -> dict[str, SimServer]:
    """The module's three sims, with no faults and no counts left from the test before
    (a module that needs other sims defines its own ``sims``)."""
    fresh(trio_servers)
    return trio_servers


@dataclass(frozen=True)
class Step:
    """What one call does: answer (kind None) or fail with ``kind``."""

    kind: ErrorKind | None = None
    text: str = ""
    retry_after: float | None = None
    delay: float = 0.0
    # Streams: fail with ``kind`` after this many chunks were sent.
    after_chunks: int = 0
    message: str = ""


def step(spec: str | Step) -> Step:
    """``"ok"``, ``"server"``, ``"rate_limit:2"`` (retry_after 2 s) or a :class:`Step`."""
    if isinstance(spec, Step):
        return spec
    name, _, arg = spec.partition(":")
    if name == "ok":
        return Step(text=arg)
    return Step(kind=ErrorKind(name), retry_after=float(arg) if arg else None)


def _pieces(text: str) -> tuple[str, ...]:
    third = max(len(text) // 3, 1)
    return (text[:third], text[third : 2 * third], text[2 * third :])


class ScriptedProvider:
    """Plays its script one step per call, then ``default`` forever."""

    def __init__(
        self,
        provider_id: str,
        script: Iterable[str | Step] = (),
        *,
        model: str = "",
        default: str | Step = "ok",
        chunks: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        credential_error: ErrorKind | None = None,
        credential_delay: float = 0.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.id = provider_id
        self.sleep = sleep
        self.model = model or f"{provider_id}-model"
        self.script = [step(s) for s in script]
        self.default = step(default)
        # Streamed pieces; by default the whole answer's text in three pieces, so a
        # provider gives the same answer streamed or whole, as real ones do.
        self.chunks = None if chunks is None else tuple(chunks)
        self.clock = clock
        self.credential_error = credential_error
        self.credential_delay = credential_delay
        self.calls: list[float] = []
        self.requests: list[ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.credential_checks = 0
        self.closed = False

    def _next(self, request: ChatRequest) -> Step:
        self.calls.append(self.clock())
        self.requests.append(request)
        return self.script.pop(0) if self.script else self.default

    def _text(self, current: Step) -> str:
        return current.text or f"answer from {self.id}"

    def _error(self, current: Step) -> ProviderError:
        assert current.kind is not None
        return ProviderError(
            current.message or f"{current.kind.value} from {self.id}",
            kind=current.kind,
            provider=self.id,
            retry_after=current.retry_after,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        current = self._next(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if current.delay:
                await self.sleep(current.delay)
            else:
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        if current.kind is not None:
            raise self._error(current)
        return Completion(
            text=self._text(current),
            model=self.model,
            usage=Usage(input_tokens=10, output_tokens=5),
            finish_reason="stop",
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        current = self._next(request)
        if current.delay:
            await self.sleep(current.delay)
        pieces = self.chunks if self.chunks is not None else _pieces(self._text(current))
        chunks = pieces if current.kind is None else pieces[: current.after_chunks]
        for text in chunks:
            await asyncio.sleep(0)
            yield Chunk(text=text)
        if current.kind is not None:
            raise self._error(current)
        yield Chunk(usage=Usage(input_tokens=10, output_tokens=5), finish_reason="stop")

    async def check_credentials(self) -> None:
        self.credential_checks += 1
        if self.credential_delay:
            await self.sleep(self.credential_delay)
        if self.credential_error is not None:
            raise ProviderError(
                f"{self.credential_error.value} from {self.id}",
                kind=self.credential_error,
                provider=self.id,
            )

    async def aclose(self) -> None:
        self.closed = True


# Event-loop turns the fake clock waits before it moves: every task that can run
# without waiting for time (a scripted provider's answer) runs first.
_IDLE_TURNS = 50
# Where the configs' providers would be reached; the scripted doubles stand in for them.
UNUSED_URL = "http://127.0.0.1:9/v1"


class FakeTime:
    """A virtual clock: time moves only when every task waits on a fake sleep.

    Sleeps wake in the order of their deadlines, each after the event loop has
    gone idle, so a stall timer racing a scripted answer loses to it as it would
    on the real clock. A sleep cancelled before its deadline neither moves the
    clock nor is recorded in :attr:`sleeps`.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._pending: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        self._pushed = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._pending, (self.now + seconds, next(self._order), wake))
        self._pushed += 1
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        await wake
        self.sleeps.append(seconds)

    async def _drive(self) -> None:
        while self._pending:
            # Idle turns counted from the newest sleep: one pushed while the loop was
            # counting (a call started since) gets its full turns before time moves.
            counted = -1
            while counted != self._pushed:
                counted = self._pushed
                for _ in range(_IDLE_TURNS):
                    await asyncio.sleep(0)
            while self._pending and self._pending[0][2].done():
                heapq.heappop(self._pending)  # cancelled meanwhile
            if not self._pending:
                return
            deadline, _, wake = heapq.heappop(self._pending)
            self.now = max(self.now, deadline)
            wake.set_result(None)


class Recorder:
    """An event sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.type == kind]


def make_config(
    provider_ids: Sequence[str] = ("a", "b", "c"),
    *,
    roles: Mapping[str, Any] | None = None,
    default: str | None = None,
    retry: Mapping[str, Any] | None = None,
    failover_within: float = 5.0,
    provider_extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> RolecallConfig:
    """A config of openai-compatible providers (the scripted doubles replace them)."""
    providers: dict[str, Any] = {}
    for pid in provider_ids:
        entry: dict[str, Any] = {
            "type": "openai-compatible",
            "model": f"{pid}-model",
            "base_url": UNUSED_URL,
        }
        entry.update((provider_extra or {}).get(pid, {}))
        providers[pid] = entry
    data: dict[str, Any] = {
        "providers": providers,
        "roles": dict(roles) if roles is not None else {"coder": {"provider": provider_ids[0]}},
        "failover_within": failover_within,
        "retry": dict(retry or {}),
    }
    if default is not None:
        data["default_provider"] = default
    return RolecallConfig.model_validate(data)


@dataclass
class Harness:
    router: Router
    providers: dict[str, ScriptedProvider]
    time: FakeTime
    recorder: Recorder = field(default_factory=Recorder)


def harness(
    config: RolecallConfig,
    scripts: Mapping[str, Iterable[str | Step]],
    *,
    fake: FakeTime | None = None,
    rng: Callable[[], float] = lambda: 1.0,
    **provider_kwargs: Any,
) -> Harness:
    """A router over scripted providers with a fake clock and an event recorder."""
    fake = fake or FakeTime()
    providers = {
        pid: ScriptedProvider(
            pid, scripts.get(pid, ()), clock=fake.clock, sleep=fake.sleep, **provider_kwargs
        )
        for pid in config.providers
    }
    recorder = Recorder()
    router = Router(
        config,
        providers=providers,
        sinks=[recorder],
        sleep=fake.sleep,
        clock=fake.clock,
        rng=rng,
    )
    return Harness(router=router, providers=providers, time=fake, recorder=recorder)


# Test modules get the helpers through fixtures (conftest modules are not importable by name).


@pytest.fixture
def build() -> Callable[..., Harness]:
    return harness


@pytest.fixture
def config_of() -> Callable[..., RolecallConfig]:
    return make_config


@pytest.fixture
def scripted() -> type[ScriptedProvider]:
    return ScriptedProvider


@pytest.fixture
def step_of() -> type[Step]:
    return Step


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
