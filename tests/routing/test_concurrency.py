"""Many concurrent tasks share one router: health is shared, bad providers are called once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from rolecall.health.host import HealthTable, share_on_host
from rolecall.routing.router import Router

TASKS = 50


async def test_bad_key_is_called_once_by_50_tasks(
    config_of: Any, scripted: Any, step_of: Any
) -> None:
    config = config_of(("a", "b"), roles={"coder": {"provider": "a", "fallback": ["b"]}})
    providers = {
        "a": scripted("a", default=step_of(kind=_kind("auth"), delay=0.02)),
        "b": scripted("b", default=step_of(delay=0.005)),
    }
    router = Router(config, providers=providers)
    replies = await asyncio.gather(*(router.complete("coder", f"t{i}") for i in range(TASKS)))
    assert len(providers["a"].calls) == 1
    assert {r.provider for r in replies} == {"b"}
    assert len(providers["b"].calls) == TASKS


async def test_gate_opens_for_everyone_after_first_success(
    config_of: Any, scripted: Any, step_of: Any
) -> None:
    config = config_of(("a",), roles={"coder": {"provider": "a"}})
    provider = scripted("a", default=step_of(delay=0.02))
    router = Router(config, providers={"a": provider})
    await asyncio.gather(*(router.complete("coder", "hi") for _ in range(TASKS)))
    assert len(provider.calls) == TASKS
    assert provider.max_in_flight == 8  # after the first answer, up to max_concurrency at once


async def test_rate_limited_provider_is_not_called_before_its_reset(
    config_of: Any, scripted: Any, step_of: Any
) -> None:
    reset = 0.3
    config = config_of(
        ("a", "b"),
        roles={"coder": {"provider": "a", "fallback": ["b"]}},
        retry={"initial_backoff": 0.05},
    )
    providers = {
        "a": scripted("a", [f"rate_limit:{reset}"], default=step_of(delay=0.005)),
        "b": scripted("b", default=step_of(delay=0.005)),
    }
    router = Router(config, providers=providers)
    replies = await asyncio.gather(*(router.complete("coder", f"t{i}") for i in range(TASKS)))
    calls = providers["a"].calls
    first = calls[0]
    assert all(at >= first + reset - 0.01 for at in calls[1:])
    # The rate-limited task waited for the reset and got its answer from a; the rest moved on.
    assert len(calls) == 2
    assert sorted(r.provider for r in replies) == ["a"] + ["b"] * (TASKS - 1)


async def test_tasks_wait_for_a_near_reset_when_nothing_else_is_left(
    config_of: Any, scripted: Any, step_of: Any
) -> None:
    reset = 0.25
    config = config_of(("a",), roles={"coder": {"provider": "a"}}, retry={"initial_backoff": 0.05})
    provider = scripted("a", [f"rate_limit:{reset}"], default=step_of(delay=0.005))
    router = Router(config, providers={"a": provider})
    started = time.monotonic()
    replies = await asyncio.gather(*(router.complete("coder", f"t{i}") for i in range(TASKS)))
    assert {r.provider for r in replies} == {"a"}
    first = provider.calls[0]
    assert all(at >= first + reset - 0.01 for at in provider.calls[1:])
    assert len(provider.calls) == TASKS + 1  # the first task's 429, then one call per task
    assert time.monotonic() - started < 2.0


async def test_half_open_admits_exactly_one_probe(
    config_of: Any, scripted: Any, step_of: Any
) -> None:
    config = config_of(
        ("a", "b"), roles={"coder": {"provider": "a", "fallback": ["b"]}}, retry={"max_attempts": 1}
    )
    providers = {
        "a": scripted("a", ["server"] * 5, default=step_of(delay=0.05)),
        "b": scripted("b"),
    }
    clock = [0.0]
    router = Router(config, providers=providers, clock=lambda: clock[0])
    for _ in range(5):
        await router.complete("coder", "hi")
    assert router.health.state("a") == "open"
    clock[0] += 31
    replies = await asyncio.gather(*(router.complete("coder", "hi") for _ in range(10)))
    assert len(providers["a"].calls) == 6  # five failures, then a single probe
    assert sorted(r.provider for r in replies) == ["a"] + ["b"] * 9
    assert router.health.state("a") == "ok"


def _kind(name: str) -> Any:
    from rolecall.errors import ErrorKind

    return ErrorKind(name)


async def test_max_concurrency_holds_for_the_routers_of_every_worker_together(
    tmp_path: Path, config_of: Any, scripted: Any, step_of: Any
) -> None:
    config = config_of(("a",), provider_extra={"a": {"max_concurrency": 2}})
    provider = scripted("a", default=step_of(delay=0.02))
    table = HealthTable.create(str(tmp_path / "health"))
    routers = []
    try:
        for worker in (0, 1):  # as each worker of `rolecall serve --workers 2` builds its own
            share_on_host(table, worker=worker)
            routers.append(Router(config, providers={"a": provider}))
    finally:
        share_on_host(None)
    calls = [router.complete("coder", f"t{i}") for i in range(10) for router in routers]
    replies = await asyncio.gather(*calls)
    assert {reply.provider for reply in replies} == {"a"}
    assert provider.max_in_flight == 2  # not 2 per router
    table.close()
