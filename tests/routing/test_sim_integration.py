"""The router over the real adapters and local fake vendor servers (rolecall.sim)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, CredentialsError, ErrorKind, StreamInterrupted
from rolecall.events import event_to_dict
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer

KEY = "test-key"
PROTOCOLS = {"gpt": "openai", "claude": "anthropic", "gemini": "google"}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    servers = {
        pid: SimServer(protocol, api_key=KEY, reply=f"hello from {pid}")  # type: ignore[arg-type]
        for pid, protocol in PROTOCOLS.items()
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(autouse=True)
def _clean(sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        server.clear()
        server.reset_stats()


def _config(
    sims: dict[str, SimServer],
    roles: dict[str, Any] | None = None,
    keys: dict[str, str] | None = None,
    **extra: Any,
) -> RolecallConfig:
    providers = {
        pid: {
            "type": PROTOCOLS[pid],
            "model": "sim-model",
            "api_key": (keys or {}).get(pid, KEY),
            "base_url": server.base_url,
            "timeout": 5,
        }
        for pid, server in sims.items()
    }
    return RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": roles
            or {
                "coder": {"provider": "gpt", "fallback": ["claude", "gemini"]},
                "reviewer": {"provider": "claude", "fallback": ["gemini"]},
                "planner": {"provider": "gemini"},
            },
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
            "failover_within": 1.0,
            **extra,
        }
    )


class _Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


async def test_three_protocols_serve_one_process_concurrently(
    sims: dict[str, SimServer],
) -> None:
    async with Router(_config(sims), check_credentials=True) as router:
        for pid in PROTOCOLS:
            assert router.health.state(pid) == "ok"
        roles = {"coder": "gpt", "reviewer": "claude", "planner": "gemini"}
        jobs = [(role, i) for i in range(10) for role in roles]
        replies = await asyncio.gather(*(router.complete(role, f"task {i}") for role, i in jobs))
        for (role, _), reply in zip(jobs, replies, strict=True):
            assert reply.provider == roles[role]
            assert reply.text == f"hello from {roles[role]}"
            assert reply.usage.output_tokens > 0
        streams = [router.stream(role, "stream please") for role in roles]
        texts = await asyncio.gather(*(_read(s) for s in streams))
        for stream, text, pid in zip(streams, texts, roles.values(), strict=True):
            assert "".join(text) == f"hello from {pid}"
            assert stream.reply.provider == pid
    for server in sims.values():
        assert server.calls == 11


async def _read(stream: Any) -> list[str]:
    return [chunk async for chunk in stream]


@pytest.mark.parametrize(
    ("faults", "answer", "outcomes"),
    [
        (["auth"], "claude", ["gpt handover auth", "claude ok"]),
        (["quota"], "claude", ["gpt handover quota", "claude ok"]),
        (["not_found"], "claude", ["gpt handover not_found", "claude ok"]),
        (["server", "ok"], "gpt", ["gpt retry server", "gpt ok"]),
        (["overloaded", "ok"], "gpt", ["gpt retry overloaded", "gpt ok"]),
        (
            ["malformed", "malformed"],
            "claude",
            ["gpt retry bad_response", "gpt handover bad_response", "claude ok"],
        ),
        (["context_length"], "claude", ["gpt handover context_length", "claude ok"]),
        (["content_filter"], "claude", ["gpt handover content_filter", "claude ok"]),
        ([Fault("rate_limit", retry_after=0.05), "ok"], "gpt", ["gpt retry rate_limit", "gpt ok"]),
        ([Fault("rate_limit", retry_after=30)], "claude", ["gpt handover rate_limit", "claude ok"]),
        (
            ["reset"] * 3,
            "claude",
            ["gpt retry network", "gpt retry network", "gpt handover network", "claude ok"],
        ),
    ],
)
async def test_real_adapter_faults(
    sims: dict[str, SimServer], faults: list[Any], answer: str, outcomes: list[str]
) -> None:
    sims["gpt"].script(*faults)
    async with Router(_config(sims)) as router:
        reply = await router.complete("coder", "hi")
    assert reply.provider == answer
    got = [
        f"{a.provider} {a.outcome}" + (f" {a.error_kind.value}" if a.error_kind else "")
        for a in reply.attempts
    ]
    assert got == outcomes


async def test_timeout_hands_over(sims: dict[str, SimServer]) -> None:
    config = _config(sims).model_copy(deep=True)
    gpt = config.providers["gpt"].model_copy(update={"timeout": 0.2})
    config = config.model_copy(update={"providers": {**config.providers, "gpt": gpt}})
    sims["gpt"].script(*[Fault("timeout", delay=5)] * 3)
    started = time.monotonic()
    async with Router(config) as router:
        reply = await router.complete("coder", "hi")
    assert reply.provider == "claude"
    assert [a.error_kind for a in reply.attempts] == [ErrorKind.TIMEOUT] * 3 + [None]
    assert time.monotonic() - started < 2.0


async def test_stream_cut_after_chunks_is_not_handed_over(sims: dict[str, SimServer]) -> None:
    sims["gpt"].script(Fault("stream_error", after_chunks=2))
    async with Router(_config(sims)) as router:
        received: list[str] = []
        with pytest.raises(StreamInterrupted) as caught:
            async for chunk in router.stream("coder", "hi"):
                received.append(chunk)
    assert caught.value.provider == "gpt"
    assert caught.value.received_chars == len("".join(received)) > 0
    assert "hello from gpt".startswith("".join(received))
    assert sims["claude"].calls == 0


async def test_stream_failing_before_first_chunk_falls_back(sims: dict[str, SimServer]) -> None:
    sims["gpt"].script("auth")
    async with Router(_config(sims)) as router:
        stream = router.stream("coder", "hi")
        assert "".join(await _read(stream)) == "hello from claude"
    assert stream.reply.provider == "claude"


async def test_credential_check_names_every_failing_provider(
    sims: dict[str, SimServer],
) -> None:
    config = _config(sims, keys={"gpt": "sk-wrong-key-0001", "gemini": "wrong-gemini-key-02"})
    config.set_key_env_vars({"gpt": "OPENAI_API_KEY"})
    router = Router(config, check_credentials=True)
    with pytest.raises(CredentialsError) as caught:
        async with router:
            pass
    assert sorted(e.provider for e in caught.value.errors) == ["gemini", "gpt"]
    text = str(caught.value)
    assert "OPENAI_API_KEY was rejected: set a valid key" in text
    assert "the api_key of provider 'gemini' was rejected" in text
    assert "sk-wrong-key-0001" not in text and "wrong-gemini-key-02" not in text
    assert router.health.state("gpt") == "unavailable"


SECRET = "sk-proj-SECRET-0123456789abcdef"


@pytest.mark.parametrize("pid", list(PROTOCOLS))
async def test_echoed_key_never_leaks(
    sims: dict[str, SimServer], pid: str, caplog: pytest.LogCaptureFixture
) -> None:
    sims[pid].api_key = SECRET
    try:
        # A vendor that echoes the key in every error, then rejects it.
        sims[pid].script(
            Fault("server", echo_key=True),
            Fault("bad_request", echo_key=True),
        )
        sink = _Sink()
        roles = {"coder": {"provider": pid}}
        config = _config(sims, roles=roles, keys={pid: SECRET})
        caplog.set_level(logging.DEBUG)
        async with Router(config, sinks=[sink]) as router:
            with pytest.raises(AllProvidersFailed) as caught:
                await router.complete("coder", "hi")
            sims[pid].script(Fault("auth", echo_key=True))
            with pytest.raises(AllProvidersFailed) as caught2:
                await router.complete("coder", "hi")
            snapshot = json.dumps(router.health.snapshot())
        assert sims[pid].calls == 3
        texts = [
            str(caught.value),
            repr(caught.value),
            str(caught2.value),
            repr(caught2.value),
            snapshot,
            *(str(e) for e in caught.value.errors + caught2.value.errors),
            *(repr(e) for e in caught.value.errors + caught2.value.errors),
            *(json.dumps(event_to_dict(e)) for e in sink.events),
            *(record.getMessage() for record in caplog.records),
            *(str(record.args) for record in caplog.records),
            caplog.text,
            repr(config),
        ]
        assert len(sink.events) == 5  # three attempts, two tasks
        for text in texts:
            assert SECRET not in text
        # The key was really echoed: the redaction did the work.
        assert any("***" in text for text in texts)
    finally:
        sims[pid].api_key = KEY
