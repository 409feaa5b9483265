"""Provider health shared through Redis (``state.redis_url``).

Redis comes from $ROLECALL_TEST_REDIS_URL (see ``tests/redis_helpers.py``); the
outage cases start their own ``redis-server`` on a free port and kill it by pid.

The cross-process cases run two real Python processes, each with its own Router on
the same config, against fake vendor servers (rolecall.sim) that count the calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_helpers import DedicatedRedis, free_port, redis_keys, redis_package
from rolecall.config.schema import RolecallConfig
from rolecall.errors import ConfigError, ErrorKind, MissingExtra, ProviderError
from rolecall.health.memory import ProviderHealth
from rolecall.health.shared import RedisHealth, make_health, provider_fingerprint
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer

KEY = "test-key"


# ---- fake vendors and worker processes ----------------------------------------------------


@pytest.fixture
def sims() -> Iterator[dict[str, SimServer]]:
    servers = {
        "x": SimServer("openai", api_key=KEY, reply="from x"),
        "y": SimServer("anthropic", api_key=KEY, reply="from y"),
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


def _config_data(sims: dict[str, SimServer], redis_url: str | None, prefix: str) -> dict[str, Any]:
    return {
        "providers": {
            "x": {
                "type": "openai",
                "model": "sim-model",
                "api_key": KEY,
                "base_url": sims["x"].base_url,
                "timeout": 5,
            },
            "y": {
                "type": "anthropic",
                "model": "sim-model",
                "api_key": KEY,
                "base_url": sims["y"].base_url,
                "timeout": 5,
            },
        },
        "roles": {"coder": {"provider": "x", "fallback": ["y"]}},
        "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
        # A rate limit resetting later than this hands over to y instead of waiting.
        "failover_within": 0.5,
        "state": {"redis_url": redis_url, "key_prefix": prefix},
    }


WORKER = r"""
import asyncio, json, logging, sys

from rolecall.config.schema import RolecallConfig
from rolecall.routing.router import Router


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


async def main():
    collect = Collect()
    logging.getLogger("rolecall.health").addHandler(collect)
    with open(sys.argv[1]) as file:
        config = RolecallConfig.model_validate(json.load(file))
    loop = asyncio.get_running_loop()
    async with Router(config, check_credentials=False) as router:
        await router.health.connect()  # shared from the first call on
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command["op"] == "call":
                started = loop.time()
                try:
                    reply = await router.complete("coder", "hi")
                    out = {"provider": reply.provider}
                except Exception as exc:
                    out = {"error": f"{type(exc).__name__}: {exc}"}
                out["seconds"] = loop.time() - started
            else:
                out = {"warnings": collect.messages}
            print(json.dumps(out), flush=True)


asyncio.run(main())
"""


class Worker:
    """A separate Python process with its own Router, driven one JSON line at a time."""

    def __init__(self, config_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(config_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def _next(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=20)
        except queue.Empty:
            raise AssertionError("the worker process did not answer in 20 s") from None
        result: dict[str, Any] = json.loads(line)
        return result

    def wait_ready(self) -> None:
        assert self._next() == {"ready": True}

    def _send(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._next()

    def call(self) -> dict[str, Any]:
        """One ``complete`` for role coder: {"provider": ..., "seconds": ...} or {"error": ...}."""
        return self._send({"op": "call"})

    def provider(self) -> str:
        result = self.call()
        assert "provider" in result, result
        provider: str = result["provider"]
        return provider

    def warnings(self) -> list[str]:
        messages: list[str] = self._send({"op": "warnings"})["warnings"]
        return messages

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _workers(config: dict[str, Any], tmp_path: Path, count: int) -> list[Worker]:
    path = tmp_path / "rolecall.json"
    path.write_text(json.dumps(config))
    workers = [Worker(path) for _ in range(count)]
    for worker in workers:
        worker.wait_ready()
    return workers


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    started: list[Worker] = []

    def start(config: dict[str, Any], count: int = 2) -> list[Worker]:
        workers = _workers(config, tmp_path, count)
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        worker.close()


# ---- two processes, one Redis -------------------------------------------------------------


def test_bad_key_seen_by_one_process_is_never_called_by_the_other(
    sims: dict[str, SimServer], redis_url: str, prefix: str, spawn: Any
) -> None:
    sims["x"].set_faults("auth")
    first, second = spawn(_config_data(sims, redis_url, prefix))

    assert first.provider() == "y"
    assert sims["x"].calls == 1

    for _ in range(3):
        assert second.provider() == "y"
    assert first.provider() == "y"
    assert sims["x"].calls == 1  # the second process never called x
    assert sims["y"].calls == 5
    assert any("seen by another process" in message for message in second.warnings())


def test_rate_limit_reset_is_honoured_by_every_process(
    sims: dict[str, SimServer], redis_url: str, prefix: str, spawn: Any
) -> None:
    reset_in = 2.0
    first, second = spawn(_config_data(sims, redis_url, prefix))
    sims["x"].script(Fault("rate_limit", retry_after=reset_in))

    before = time.monotonic()
    assert first.provider() == "y"
    after = time.monotonic()
    assert sims["x"].calls == 1

    # Until the reset, both processes keep working, and neither calls x.
    used: set[str] = set()
    while time.monotonic() < before + reset_in - 0.3:
        used.add(second.provider())
        used.add(first.provider())
        time.sleep(0.1)
    assert used == {"y"}
    assert sims["x"].calls == 1

    # After it, both go back to x.
    time.sleep(max(after + reset_in + 0.3 - time.monotonic(), 0.0))
    assert second.provider() == "x"
    assert first.provider() == "x"
    assert sims["x"].calls == 3


def test_redis_killed_mid_run_calls_keep_succeeding_with_one_warning(
    sims: dict[str, SimServer], dedicated_redis: DedicatedRedis, prefix: str, spawn: Any
) -> None:
    (worker,) = spawn(_config_data(sims, dedicated_redis.url, prefix), count=1)
    sims["x"].script(Fault("rate_limit", retry_after=0.6))
    assert worker.provider() == "y"
    time.sleep(0.1)
    # The cooldown really went to Redis before it died.
    assert any(key.endswith(":cooldown") for key in redis_keys(dedicated_redis.url, prefix))

    dedicated_redis.kill()
    results = []
    deadline = time.monotonic() + 1.5  # past the cooldown and several background polls
    while time.monotonic() < deadline:
        results.append(worker.call())
        time.sleep(0.1)

    assert all("provider" in result for result in results), results
    assert {result["provider"] for result in results} >= {"x"}  # back on x after the reset
    assert max(result["seconds"] for result in results) < 1.5
    warnings = worker.warnings()
    assert len(warnings) == 1, warnings
    assert "unreachable" in warnings[0]
    assert "in this process" in warnings[0]


# ---- one process: what is shared, and how ------------------------------------------------


async def _tracker(url: str, prefix: str, **options: Any) -> RedisHealth:
    """A tracker once Redis has answered it (before, its calls go by its own health)."""
    tracker = RedisHealth(url, key_prefix=prefix, fingerprints={"x": "fp-x"}, **options)
    assert await tracker.connect()
    return tracker


async def test_a_routers_first_call_already_goes_by_what_other_processes_found(
    sims: dict[str, SimServer], redis_url: str, prefix: str
) -> None:
    """A one-shot command (`rolecall ask`) makes one call, right after ``async with``: it
    must not be the call that spends a key another process already found refused."""
    config = RolecallConfig.model_validate(_config_data(sims, redis_url, prefix))
    fingerprint = provider_fingerprint(config.providers["x"])
    other = RedisHealth(redis_url, key_prefix=prefix, fingerprints={"x": fingerprint})
    try:
        assert await other.connect()
        other.mark_unavailable("x", ProviderError("bad key", kind=ErrorKind.AUTH, provider="x"))
        await other._store.flush()
    finally:
        await other.aclose()

    async with Router(config, check_credentials=False) as router:
        reply = await router.complete("coder", "hi")

    assert reply.provider == "y"
    assert sims["x"].calls == 0


async def test_cooldown_expiry_is_the_later_reset(redis_url: str, prefix: str) -> None:
    first, second = await _tracker(redis_url, prefix), await _tracker(redis_url, prefix)
    try:
        first.cool_down("x", time.monotonic() + 5.0)
        second.cool_down("x", time.monotonic() + 1.0)
        await first._store.flush()
        await second._store.flush()
        (ttl,) = redis_keys(redis_url, prefix).values()
        assert 4000 < ttl <= 5000

        third = await _tracker(redis_url, prefix)
        assert await third.admit("x") is None
        assert third.state("x") == "cooling_down"
        assert 4.0 < third.cooldown_remaining("x") <= 5.0
        await third.aclose()
    finally:
        await first.aclose()
        await second.aclose()


async def test_open_circuit_is_shared_and_one_process_probes(redis_url: str, prefix: str) -> None:
    options = {"failure_threshold": 2, "open_for": 0.5}
    first = await _tracker(redis_url, prefix, **options)
    second = await _tracker(redis_url, prefix, **options)
    try:
        for _ in range(2):
            first.record_failure("x", ProviderError("down", kind=ErrorKind.SERVER, provider="x"))
        assert first.state("x") == "open"
        await first._store.flush()

        assert await second.admit("x") is None
        assert second.state("x") == "open"
        reason = second.reason("x")
        assert reason is not None and "down" in reason.message

        await asyncio.sleep(0.6)
        assert first.state("x") == second.state("x") == "half_open"
        probe = await second.admit("x")
        assert probe is not None
        assert await first.admit("x") is None  # the other process holds the probe
        second.record_success("x", 10.0)
        probe.release()
        await second._store.flush()
        assert redis_keys(redis_url, prefix) == {}
        admission = await first.admit("x")  # closed again for everyone
        assert admission is not None
        admission.release()
    finally:
        await first.aclose()
        await second.aclose()


async def test_background_poll_updates_sync_lookups(redis_url: str, prefix: str) -> None:
    first = await _tracker(redis_url, prefix)
    second = await _tracker(redis_url, prefix, poll_interval=0.05)
    try:
        admission = await second.admit("y")  # starts the background task
        assert admission is not None
        admission.release()
        first.mark_unavailable("x", ProviderError("bad key", kind=ErrorKind.AUTH, provider="x"))
        for _ in range(100):  # up to 2 s; no admit() on x, only the poll
            if not second.is_available("x"):
                break
            await asyncio.sleep(0.02)
        assert second.state("x") == "unavailable"
        reason = second.reason("x")
        assert reason is not None and reason.kind is ErrorKind.AUTH
    finally:
        await first.aclose()
        await second.aclose()


async def test_changed_provider_config_starts_clean(redis_url: str, prefix: str) -> None:
    old = RedisHealth(redis_url, key_prefix=prefix, fingerprints={"x": "old-key"})
    new = RedisHealth(redis_url, key_prefix=prefix, fingerprints={"x": "new-key"})
    try:
        old.mark_unavailable("x", ProviderError("bad key", kind=ErrorKind.AUTH, provider="x"))
        await old._store.flush()
        admission = await new.admit("x")
        assert admission is not None
        admission.release()
        assert new.state("x") == "ok"
    finally:
        await old.aclose()
        await new.aclose()


async def test_reset_clears_shared_state(redis_url: str, prefix: str) -> None:
    tracker = await _tracker(redis_url, prefix)
    try:
        tracker.mark_unavailable("x", ProviderError("bad", kind=ErrorKind.AUTH, provider="x"))
        tracker.cool_down("z", time.monotonic() + 30)
        await tracker._store.flush()
        assert len(redis_keys(redis_url, prefix)) == 2
        tracker.reset()
        await tracker._store.flush()
        assert redis_keys(redis_url, prefix) == {}
        assert tracker.state("x") == "ok"
    finally:
        await tracker.aclose()


async def test_unavailable_mark_expires_and_holds_no_secret(redis_url: str, prefix: str) -> None:
    config = RolecallConfig.model_validate(
        {
            "providers": {"x": {"type": "openai", "model": "m", "api_key": "sk-very-secret-1"}},
            "state": {"redis_url": redis_url, "key_prefix": prefix},
        }
    )
    tracker = make_health(config)
    assert isinstance(tracker, RedisHealth)
    try:
        tracker.mark_unavailable("x", ProviderError("bad", kind=ErrorKind.AUTH, provider="x"))
        await tracker._store.flush()
        (key, ttl) = next(iter(redis_keys(redis_url, prefix).items()))
        assert key.endswith(":unavailable")
        assert 0 < ttl <= 3600 * 1000
        assert "sk-very-secret-1" not in key
        assert provider_fingerprint(config.providers["x"]) in key
    finally:
        await tracker.aclose()


async def test_redis_back_after_an_outage_is_used_again_quietly(
    dedicated_redis: DedicatedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rolecall.health")
    tracker = RedisHealth(
        dedicated_redis.url, key_prefix="p", reconnect_after=0.3, poll_interval=0.05
    )
    try:
        assert await tracker.connect()
        admission = await tracker.admit("x")
        assert admission is not None
        admission.release()
        dedicated_redis.kill()
        for _ in range(5):
            admission = await tracker.admit("x")
            assert admission is not None
            admission.release()
            await asyncio.sleep(0.1)  # background polls fail too, past the reconnect time
        assert not tracker.shared

        restarted = DedicatedRedis(dedicated_redis.port)
        try:
            await asyncio.sleep(0.4)
            assert (await tracker.admit("x")) is not None
            assert tracker.shared
            tracker.mark_unavailable("z", ProviderError("bad", kind=ErrorKind.AUTH, provider="z"))
            await tracker._store.flush()
            assert list(redis_keys(restarted.url, "p")) == ["p:health:z:-:unavailable"]
        finally:
            restarted.kill()
    finally:
        await tracker.aclose()
    health_warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "Redis" in r.getMessage()
    ]
    assert len(health_warnings) == 1, health_warnings
    assert any("reachable again" in r.getMessage() for r in caplog.records)


# ---- no Redis server needed -----------------------------------------------------------


def _sim_config(sims: dict[str, SimServer], redis_url: str | None) -> RolecallConfig:
    return RolecallConfig.model_validate(_config_data(sims, redis_url, "rolecall"))


async def test_unreachable_redis_at_start_never_fails_a_call(
    sims: dict[str, SimServer], caplog: pytest.LogCaptureFixture
) -> None:
    redis_package()
    caplog.set_level(logging.WARNING, logger="rolecall.health")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with Router(_sim_config(sims, url)) as router:
        assert isinstance(router.health, RedisHealth)
        for _ in range(3):
            reply = await router.complete("coder", "hi")
            assert reply.provider == "x"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"redis://127.0.0.1:{url.split(':')[2]}" in warnings[0]


def test_without_redis_url_health_stays_in_memory(sims: dict[str, SimServer]) -> None:
    config = _sim_config(sims, None)
    assert type(make_health(config)) is ProviderHealth
    assert type(Router(config).health) is ProviderHealth


def test_missing_redis_package_names_the_extra(
    sims: dict[str, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingExtra) as caught:
        Router(_sim_config(sims, "redis://127.0.0.1:6379/0"))
    assert caught.value.extra == "redis"
    assert "pip install 'rolecall[redis]'" in caught.value.message
    assert "shared provider health" in caught.value.message


def test_a_url_that_is_not_redis_is_a_config_error() -> None:
    # The config refuses it too (tests/health/test_redis_url.py); a tracker built directly
    # says the same.
    with pytest.raises(ConfigError) as caught:
        RedisHealth("http://127.0.0.1:6379")
    assert "state.redis_url" in caught.value.message


def test_redis_password_masked_in_config_show(sims: dict[str, SimServer], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rolecall.cli.config import config as config_group

    data = _config_data(sims, "redis://:hunter2-pass@cache.internal:6379/0", "rolecall")
    data["metrics"] = {"url": "postgresql://user:pg-secret@db/rolecall"}
    path = tmp_path / "rolecall.yaml"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(config_group, ["show", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["state"]["redis_url"] == "redis://:***@cache.internal:6379/0"
    assert shown["metrics"]["url"] == "postgresql://user:***@db/rolecall"
    assert "hunter2-pass" not in result.output


async def test_an_acl_user_without_access_to_our_keys_gets_one_warning(
    dedicated_redis: DedicatedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rolecall.health")
    admin = redis_package().Redis(host="127.0.0.1", port=dedicated_redis.port)
    try:  # a user that may touch only another app's keys
        admin.acl_setuser(
            "narrow",
            enabled=True,
            passwords=["+narrow-pass-1"],
            keys=["other:*"],
            commands=["+@all"],
        )
    finally:
        admin.close()
    url = f"redis://narrow:narrow-pass-1@127.0.0.1:{dedicated_redis.port}/0"
    tracker = RedisHealth(url, key_prefix="p", fingerprints={"x": "fp-x"})
    try:
        tracker.mark_unavailable("z", ProviderError("bad", kind=ErrorKind.AUTH, provider="z"))
        for _ in range(3):
            admission = await tracker.admit("x")
            assert admission is not None  # calls go on, on this process's own health
            admission.release()
        assert not await tracker.connect()
        assert not tracker.shared
    finally:
        await tracker.aclose()
    warnings = [r.getMessage() for r in caplog.records if "Redis" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "permission" in warnings[0].lower()
    assert "in this process" in warnings[0]
    assert "narrow-pass-1" not in warnings[0]
