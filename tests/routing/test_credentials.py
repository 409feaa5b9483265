"""The startup credential check: concurrent, bounded, every configured provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.routing.credentials import (
    check_config_credentials,
    check_providers,
    checked_provider_ids,
    split_failures,
    transient_warning,
    used_provider_ids,
)
from rolecall.types import ChatRequest, Chunk, Completion


class Checked:
    """A provider whose credential check waits ``delay`` then fails with ``kind`` (or passes)."""

    def __init__(self, pid: str, kind: ErrorKind | None = None, delay: float = 0.0) -> None:
        self.id = pid
        self.model = "m"
        self.kind = kind
        self.delay = delay
        self.checked = 0
        self.closed = False

    async def complete(self, request: ChatRequest) -> Completion:
        raise NotImplementedError

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        raise NotImplementedError
        yield Chunk()

    async def check_credentials(self) -> None:
        self.checked += 1
        await asyncio.sleep(self.delay)
        if self.kind is not None:
            raise ProviderError(f"{self.kind.value}!", kind=self.kind)

    async def aclose(self) -> None:
        self.closed = True


async def test_checks_run_concurrently_and_report_in_order() -> None:
    providers: dict[str, Any] = {
        "a": Checked("a", ErrorKind.AUTH, delay=0.1),
        "b": Checked("b", delay=0.1),
        "c": Checked("c", ErrorKind.QUOTA, delay=0.1),
    }
    started = time.monotonic()
    errors = await check_providers(providers, timeout=5)
    assert time.monotonic() - started < 0.25  # concurrently, not 0.3 s in a row
    assert [(e.provider, e.kind) for e in errors] == [("a", ErrorKind.AUTH), ("c", ErrorKind.QUOTA)]


async def test_slow_provider_becomes_a_timeout_naming_it() -> None:
    providers: dict[str, Any] = {"fast": Checked("fast"), "slow": Checked("slow", delay=30)}
    started = time.monotonic()
    errors = await check_providers(providers, timeout=0.2)
    assert time.monotonic() - started < 1.0
    [error] = errors
    assert (error.provider, error.kind) == ("slow", ErrorKind.TIMEOUT)
    assert "'slow'" in error.message and "0.2 s" in error.message
    assert "credential_check_timeout" in error.message


async def test_adapter_bug_is_reported_not_raised() -> None:
    class Broken(Checked):
        async def check_credentials(self) -> None:
            raise KeyError("boom")

    errors = await check_providers({"x": Broken("x")}, timeout=1)
    assert [(e.provider, e.kind) for e in errors] == [("x", ErrorKind.BAD_RESPONSE)]
    assert "KeyError" in errors[0].message


def _config(roles: dict[str, Any], default: str | None = None) -> RolecallConfig:
    compatible = {"type": "openai-compatible", "model": "m", "base_url": "http://h/v1"}
    providers = {p: dict(compatible) for p in "abcd"}
    data: dict[str, Any] = {"providers": providers, "roles": roles}
    if default:
        data["default_provider"] = default
    return RolecallConfig.model_validate(data)


def test_used_provider_ids() -> None:
    assert used_provider_ids(_config({})) == ["a", "b", "c", "d"]
    config = _config({"coder": {"provider": "b", "fallback": ["c"]}}, default="a")
    assert used_provider_ids(config) == ["b", "c", "a"]


def test_checked_provider_ids_are_all_providers_used_ones_first() -> None:
    config = _config({"coder": {"provider": "c", "fallback": ["b"]}})
    assert checked_provider_ids(config) == ["c", "b", "a", "d"]


async def test_config_check_covers_every_configured_provider() -> None:
    # A provider no role names is still reachable (--provider, the gateway's model).
    config = _config({"coder": {"provider": "b"}}, default="c")
    given: dict[str, Any] = {p: Checked(p) for p in "abcd"}
    given["d"].kind = ErrorKind.NOT_FOUND
    errors = await check_config_credentials(config, given)
    assert [(e.provider, e.kind) for e in errors] == [("d", ErrorKind.NOT_FOUND)]
    assert [given[p].checked for p in "abcd"] == [1, 1, 1, 1]
    assert not any(p.closed for p in given.values())  # given providers belong to the caller


def test_only_wrong_credentials_are_rejected() -> None:
    errors = [ProviderError(kind.value, kind=kind, provider=kind.value) for kind in ErrorKind]
    rejected, transient = split_failures(errors)
    assert {e.kind for e in rejected} == {
        ErrorKind.AUTH,
        ErrorKind.PERMISSION,
        ErrorKind.NOT_FOUND,
        ErrorKind.QUOTA,
    }
    for kind in (ErrorKind.TIMEOUT, ErrorKind.SERVER, ErrorKind.RATE_LIMIT, ErrorKind.NETWORK):
        assert kind in {e.kind for e in transient}
    assert len(rejected) + len(transient) == len(errors)


def test_transient_warning_is_one_line_naming_the_provider() -> None:
    error = ProviderError("HTTP 503:\n  busy", kind=ErrorKind.OVERLOADED, provider="claude")
    text = transient_warning(error, 5.0)
    assert "\n" not in text
    assert text.startswith("provider 'claude' could not be checked at startup (overloaded:")
    assert "5 s" in text


async def test_config_check_builds_real_adapters_and_closes_them() -> None:
    sim = pytest.importorskip("rolecall.sim")
    with (
        sim.SimServer("openai", api_key="good-key-123456") as good,
        sim.SimServer("anthropic", api_key="good-key-123456") as other,
    ):
        config = RolecallConfig.model_validate(
            {
                "providers": {
                    "gpt": {
                        "type": "openai",
                        "model": "sim-model",
                        "api_key": "good-key-123456",
                        "base_url": good.base_url,
                    },
                    "claude": {
                        "type": "anthropic",
                        "model": "sim-model",
                        "api_key": "bad-key-99999999",
                        "base_url": other.base_url,
                    },
                },
                "credential_check_timeout": 5,
            }
        )
        errors = await check_config_credentials(config)
        assert [(e.provider, e.kind) for e in errors] == [("claude", ErrorKind.AUTH)]
        assert "bad-key-99999999" not in str(errors[0])
        assert good.calls == 0 and other.calls == 0  # no tokens spent
