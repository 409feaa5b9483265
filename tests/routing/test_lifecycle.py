"""Router lifecycle: from_file, the credential check on enter, closing, complete_sync."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rolecall.errors import ConfigError, CredentialsError, ErrorKind, RolecallError
from rolecall.routing.router import Router, complete_sync
from rolecall.sim import SimServer
from rolecall.types import Reply

KEY = "lifecycle-key-0123456789"


@pytest.fixture
def build(build: Any) -> Any:
    """Providers that stream "Hello world" in three pieces."""
    return functools.partial(build, chunks=("Hel", "lo ", "world"))


@pytest.fixture
def scripted(scripted: Any) -> Any:
    return functools.partial(scripted, chunks=("Hel", "lo ", "world"))


def _write_config(tmp_path: Path, base_url: str, key_var: str = "LIFECYCLE_KEY") -> Path:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  gpt:\n"
        "    type: openai\n"
        "    model: sim-model\n"
        f"    api_key: ${{{key_var}}}\n"
        f"    base_url: {base_url}\n"
        "roles:\n"
        "  coder: {provider: gpt}\n"
    )
    return path


async def test_from_file_checks_credentials_on_enter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SimServer("openai", api_key=KEY) as sim:
        path = _write_config(tmp_path, sim.base_url)
        monkeypatch.setenv("LIFECYCLE_KEY", KEY)
        async with Router.from_file(path) as router:
            assert sim.model_calls == 1  # the credential check, no tokens spent
            reply = await router.complete("coder", "hi")
            assert reply.provider == "gpt"
        monkeypatch.setenv("LIFECYCLE_KEY", "wrong-key-0000000000")
        with pytest.raises(CredentialsError) as caught:
            async with Router.from_file(path):
                pass
        assert "LIFECYCLE_KEY was rejected: set a valid key" in str(caught.value)
        assert caught.value.errors[0].kind is ErrorKind.AUTH
        assert sim.calls == 1  # the failed check made no chat call


def test_from_file_reports_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text("providers:\n  gpt: {type: nope}\n")
    with pytest.raises(ConfigError):
        Router.from_file(path)


@pytest.mark.parametrize(
    ("path", "words"),
    [("rolecall\x00.yaml", "holds a NUL character"), (5, "must be a string or a Path")],
)
def test_from_file_refuses_a_path_no_file_can_have(path: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Router.from_file(path)  # type: ignore[arg-type]


@pytest.mark.parametrize("config", ["rolecall.yaml", Path("rolecall.yaml"), {"providers": {}}])
def test_router_given_a_path_or_a_dict_names_the_fix(config: object) -> None:
    with pytest.raises(RolecallError, match=r"Router.from_file\(path\)") as caught:
        Router(config)  # type: ignore[arg-type]
    assert type(config).__name__ in str(caught.value)


def test_complete_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SimServer("openai", api_key=KEY, reply="sync answer") as sim:
        path = _write_config(tmp_path, sim.base_url)
        monkeypatch.setenv("LIFECYCLE_KEY", KEY)
        reply = complete_sync("coder", "hi", config_path=path, params={"temperature": 0})
    assert (reply.text, reply.provider) == ("sync answer", "gpt")


def test_complete_sync_inside_a_running_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a Jupyter cell: asyncio.run cannot start there, the call still answers."""
    with SimServer("openai", api_key=KEY, reply="sync answer") as sim:
        path = _write_config(tmp_path, sim.base_url)
        monkeypatch.setenv("LIFECYCLE_KEY", KEY)

        async def cell() -> Reply:
            return complete_sync("coder", "hi", config_path=path)

        reply = asyncio.run(cell())
    assert (reply.text, reply.provider) == ("sync answer", "gpt")


async def test_confirmed_providers_skip_the_first_call_gate(
    config_of: Any, scripted: Any, step_of: Any
) -> None:
    config = config_of(("a",), roles={"coder": {"provider": "a"}})
    provider = scripted("a", default=step_of(delay=0.02))
    async with Router(config, providers={"a": provider}, check_credentials=True) as router:
        await asyncio.gather(*(router.complete("coder", "hi") for _ in range(8)))
    assert provider.credential_checks == 1
    assert provider.max_in_flight == 8  # no call waited for a first answer
    assert not provider.closed  # injected providers belong to the caller


class _Clock:
    """Moves only when the router sleeps."""

    now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_failed_check_marks_provider_unavailable(config_of: Any, scripted: Any) -> None:
    config = config_of(("a", "b"), roles={"coder": {"provider": "a", "fallback": ["b"]}})
    providers = {
        "a": scripted("a", credential_error=ErrorKind.QUOTA),
        "b": scripted("b", credential_error=ErrorKind.TIMEOUT),
    }
    fake = _Clock()
    router = Router(config, providers=providers, clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(CredentialsError) as caught:
        await router.check_credentials()
    # A slow check is not a verdict on the key: only a's quota stops the start.
    assert [e.provider for e in caught.value.errors] == ["a"]
    assert "provider 'a' has no credit/quota left" in str(caught.value)
    assert router.health.state("a") == "unavailable"
    assert router.health.state("b") == "cooling_down"
    assert router.health.cooldown_remaining("b") == config.failover_within
    reply = await router.complete("coder", "hi")  # waits out b's cooldown, then b answers
    assert reply.provider == "b" and providers["a"].calls == []


async def test_transient_check_failure_does_not_stop_the_start(
    config_of: Any, scripted: Any
) -> None:
    config = config_of(("a", "b"), roles={"coder": {"provider": "a", "fallback": ["b"]}})
    providers = {"a": scripted("a"), "b": scripted("b", credential_error=ErrorKind.SERVER)}
    fake = _Clock()
    router = Router(config, providers=providers, clock=fake.clock, sleep=fake.sleep)
    await router.check_credentials()
    assert router.health.state("b") == "cooling_down"
    reply = await router.complete("coder", "hi")
    assert reply.provider == "a" and providers["b"].calls == []


async def test_aclose_closes_built_providers(tmp_path: Path) -> None:
    from rolecall.config.schema import RolecallConfig

    with SimServer("openai", api_key=KEY) as sim:
        config = RolecallConfig.model_validate(
            {
                "providers": {
                    "gpt": {
                        "type": "openai",
                        "model": "sim-model",
                        "api_key": KEY,
                        "base_url": sim.base_url,
                    }
                },
                "roles": {"coder": {"provider": "gpt"}},
            }
        )
        router = Router(config)
        await router.complete("coder", "hi")
        await router.aclose()
        with pytest.raises(Exception, match="router is closed"):
            await router.complete("coder", "hi")


async def test_stream_waits_for_a_near_reset(config_of: Any, scripted: Any) -> None:
    config = config_of(("a",), roles={"coder": {"provider": "a"}})
    provider = scripted("a")
    router = Router(config, providers={"a": provider})
    clock = asyncio.get_running_loop().time
    router.health.cool_down("a", time.monotonic() + 0.1)
    started = clock()
    chunks = [c async for c in router.stream("coder", "hi")]
    assert "".join(chunks) == "Hello world"
    assert clock() - started >= 0.09


def test_a_router_used_again_from_a_new_event_loop_calls_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One router, two ``asyncio.run`` calls: the second must not try a connection the
    first loop owned (it failed as a bad_response, retried, and counted against the
    provider's health)."""
    with SimServer("openai", api_key=KEY) as sim:
        monkeypatch.setenv("LIFECYCLE_KEY", KEY)
        router = Router.from_file(_write_config(tmp_path, sim.base_url))
        assert asyncio.run(router.complete("coder", "one")).provider == "gpt"
        second = asyncio.run(router.complete("coder", "two"))
        asyncio.run(router.aclose())
        assert sim.calls == 2
    assert [(a.outcome, a.error_kind) for a in second.attempts] == [("ok", None)]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_router_used_again_from_a_new_event_loop_waits_for_its_slots(
    config_of: Any, scripted: Any
) -> None:
    """Two ``asyncio.run`` calls, each with more calls at once than ``max_concurrency``:
    the second loop's calls wait for a slot as the first's did (a RuntimeError "bound to
    a different event loop" came out of the semaphore the first loop had waited on)."""
    config = config_of(["a"], provider_extra={"a": {"max_concurrency": 1}})
    provider = scripted("a")
    router = Router(config, providers={"a": provider})
    router.health.mark_confirmed("a")  # no first-call gate: the second call waits for the slot

    async def two_at_once() -> list[str]:
        replies = await asyncio.gather(
            router.complete("coder", "one"), router.complete("coder", "two")
        )
        return [reply.provider for reply in replies]

    assert asyncio.run(two_at_once()) == ["a", "a"]
    assert asyncio.run(two_at_once()) == ["a", "a"]
    assert provider.max_in_flight == 1


def test_a_router_in_use_on_another_threads_loop_refuses_with_the_fix(
    config_of: Any, scripted: Any, step_of: Any
) -> None:
    """Threads each running their own loop share one router: its slots, gates and connections
    belong to one loop, so a call while another loop's call runs is refused, naming the fix
    (it went ahead on the other loop's state: a wait there never woke)."""
    entered = threading.Event()
    release = asyncio.Event()

    async def held(seconds: float) -> None:
        entered.set()
        await release.wait()

    provider = scripted("a", [step_of(delay=1.0)], sleep=held)
    router = Router(config_of(["a"]), providers={"a": provider})
    router.health.mark_confirmed("a")
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        first = asyncio.run_coroutine_threadsafe(router.complete("coder", "one"), other)
        entered.wait()
        with pytest.raises(RolecallError, match="another event loop") as caught:
            asyncio.run(router.complete("coder", "two"))
        assert "one Router per" in str(caught.value)
        other.call_soon_threadsafe(release.set)
        assert first.result().provider == "a"
        # Once the other loop's calls are done, this loop may use the router.
        assert asyncio.run(router.complete("coder", "three")).provider == "a"
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join()
        other.close()
    assert len(provider.calls) == 2
