"""A Router with Vertex AI first and OpenAI behind it, both real adapters against the sims:
what Vertex refuses for good hands over at once, and a token that expires mid-run is
renewed on the run's clock without the run noticing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from google_credentials import FakeCredentials
from rolecall.config.schema import RolecallConfig
from rolecall.errors import CredentialsError, ErrorKind
from rolecall.providers.vertex import VertexProvider
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer

KEY = "sk-openai-fallback-key"
T0 = 1_767_225_600.0  # the wall-clock instant the run's clock starts at (2026-01-01 UTC)


class Clock:
    """The run's clock: moves only when the test moves it. The router's own short waits
    (backoff, the stall timer racing a real socket) stay real: the sims answer at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return T0 + self.now


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SimServer]]:
    vertex = SimServer("vertex", api_key="ya29.one", reply="hello from vertex").start()
    gpt = SimServer("openai", api_key=KEY, reply="hello from gpt").start()
    yield {"vertex": vertex, "gpt": gpt}
    vertex.stop()
    gpt.stop()


@pytest.fixture
def sims(servers: dict[str, SimServer]) -> dict[str, SimServer]:
    for server in servers.values():
        server.clear()
        server.reset_stats()
    servers["vertex"].api_key = "ya29.one"
    return servers


def _config(sims: dict[str, SimServer]) -> RolecallConfig:
    return RolecallConfig.model_validate(
        {
            "providers": {
                "vertex": {
                    "type": "vertex",
                    "model": "sim-model",
                    "project": "sim-project",
                    "endpoint": sims["vertex"].base_url,
                    "timeout": 5,
                },
                "gpt": {
                    "type": "openai",
                    "model": "sim-model",
                    "api_key": KEY,
                    "base_url": sims["gpt"].base_url,
                    "timeout": 5,
                },
            },
            "roles": {"coder": {"provider": "vertex", "fallback": ["gpt"]}},
            "retry": {"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.05},
            "failover_within": 5.0,
        }
    )


def _router(
    sims: dict[str, SimServer], credentials: FakeCredentials, clock: Clock, **kwargs: Any
) -> Router:
    config = _config(sims)
    vertex = VertexProvider(
        "vertex",
        config.providers["vertex"],  # type: ignore[arg-type]
        credentials=credentials,
        clock=clock.wall,
    )
    return Router(config, providers={"vertex": vertex}, clock=clock, **kwargs)


def _attempts(reply: Any) -> list[str]:
    return [
        f"{a.provider} {a.outcome}" + (f" {a.error_kind.value}" if a.error_kind else "")
        for a in reply.attempts
    ]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault("auth"), ErrorKind.AUTH),
        (Fault("auth", variant="expired"), ErrorKind.AUTH),
        (Fault("permission"), ErrorKind.PERMISSION),
        (Fault("quota"), ErrorKind.QUOTA),
        (Fault("region"), ErrorKind.NOT_FOUND),
        (Fault("context_length"), ErrorKind.CONTEXT_LENGTH),
        (Fault("content_filter"), ErrorKind.CONTENT_FILTER),
    ],
    ids=lambda value: value.kind if isinstance(value, Fault) else None,
)
async def test_a_lasting_refusal_hands_over_at_once(
    sims: dict[str, SimServer], fault: Fault, kind: ErrorKind
) -> None:
    clock = Clock()
    sims["vertex"].script(fault)
    async with _router(sims, FakeCredentials(["ya29.one"], clock=clock.wall), clock) as router:
        reply = await router.complete("coder", "hi")
    assert reply.text == "hello from gpt"
    assert _attempts(reply) == [f"vertex handover {kind.value}", "gpt ok"]
    assert sims["vertex"].calls == 1


async def test_rate_limited_with_a_long_hint_hands_over_and_cools_down(
    sims: dict[str, SimServer],
) -> None:
    clock = Clock()
    sims["vertex"].script(Fault("rate_limit", retry_after=60))
    async with _router(sims, FakeCredentials(["ya29.one"], clock=clock.wall), clock) as router:
        first = await router.complete("coder", "hi")
        second = await router.complete("coder", "hi again")
    assert _attempts(first) == ["vertex handover rate_limit", "gpt ok"]
    assert second.provider == "gpt"  # vertex is cooling down: not even tried
    assert sims["vertex"].calls == 1


async def test_overloaded_is_retried_on_vertex_first(sims: dict[str, SimServer]) -> None:
    clock = Clock()
    sims["vertex"].script(Fault("overloaded"))
    async with _router(sims, FakeCredentials(["ya29.one"], clock=clock.wall), clock) as router:
        reply = await router.complete("coder", "hi")
    assert _attempts(reply) == ["vertex retry overloaded", "vertex ok"]


async def test_a_token_that_expires_mid_run_is_renewed_and_the_run_goes_on(
    sims: dict[str, SimServer],
) -> None:
    clock = Clock()
    credentials = FakeCredentials(["ya29.one", "ya29.two"], lifetime=3600, clock=clock.wall)
    async with _router(sims, credentials, clock) as router:
        assert (await router.complete("coder", "plan")).provider == "vertex"
        clock.now += 1800
        assert (await router.complete("coder", "code")).provider == "vertex"
        clock.now += 1800  # past the expiry: the server no longer takes the first token
        sims["vertex"].api_key = "ya29.two"
        reply = await router.complete("coder", "review")
        stream = router.stream("coder", "summarize")
        text = "".join([piece async for piece in stream])
    assert _attempts(reply) == ["vertex ok"]
    assert text == "hello from vertex" and stream.reply.provider == "vertex"
    assert credentials.refreshes == 2
    assert [r.api_key for r in sims["vertex"].requests] == [
        "ya29.one",
        "ya29.one",
        "ya29.two",
        "ya29.two",
    ]
    assert sims["gpt"].calls == 0


async def test_the_startup_check_names_google_cloud_s_fix(sims: dict[str, SimServer]) -> None:
    clock = Clock()
    credentials = FakeCredentials(["ya29.unknown"], clock=clock.wall)
    router = _router(sims, credentials, clock, check_credentials=True)
    with pytest.raises(CredentialsError) as caught:
        async with router:
            pass
    text = str(caught.value)
    assert "Google Cloud credentials of provider 'vertex' were rejected" in text
    assert "gcloud auth application-default login" in text
    assert "ya29.unknown" not in text
    assert sims["vertex"].calls == 0
