"""The router over the real adapters and local fake vendor servers (rolecall.sim)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sim_trio import KEY, PROTOCOLS, providers_for

from rolecall.config.schema import RolecallConfig
from rolecall.errors import (
    MAX_RETRY_AFTER,
    AllProvidersFailed,
    CredentialsError,
    ErrorKind,
    ProviderError,
    RolecallError,
    StreamInterrupted,
)
from rolecall.events import event_to_dict
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer


def _config(
    sims: dict[str, SimServer],
    roles: dict[str, Any] | None = None,
    keys: dict[str, str] | None = None,
    **extra: Any,
) -> RolecallConfig:
    providers = providers_for(sims, keys)
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


USER = [{"role": "user", "content": "hi"}]
BAD_DATA_URL = [{"type": "image_url", "image_url": {"url": "data:nonsense"}}]


@pytest.mark.parametrize(
    ("role", "messages", "kwargs", "words"),
    [
        ("coder", None, {}, "messages must be a prompt string or a list of messages"),
        ("coder", 5, {}, "messages must be a prompt string or a list of messages"),
        ("coder", b"hi", {}, "messages must be a prompt string or a list of messages"),
        ("coder", USER[0], {}, "messages must be a prompt string or a list of messages"),
        ("coder", [], {}, "messages is empty"),
        ("coder", (), {}, "messages is empty"),
        ("coder", ["hi"], {}, "messages[0] must be a message object"),
        ("coder", [None], {}, "messages[0] must be a message object"),
        ("coder", [{"role": "tool", "content": "x"}], {}, "tool_call_id is required"),
        ("coder", [{"role": "user", "content": b"x"}], {}, "content must be a string"),
        ("coder", [{"role": "user", "content": 5}], {}, "content must be a string"),
        ("coder", [{"role": "user", "content": [{"type": "audio"}]}], {}, "'audio' is not"),
        ("coder", [{"role": "user", "content": BAD_DATA_URL}], {}, "data:image/png;base64"),
        (
            "coder",
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": {1, 2}}}],
                }
            ],
            {},
            "arguments must be JSON text or a JSON object",
        ),
        ("", USER, {}, "role must be a non-empty name"),
        ("co\x00der", USER, {}, "role must be a non-empty name"),
        (None, USER, {}, "role must be a non-empty name"),
        (["coder"], USER, {}, "role must be a non-empty name"),
        ("coder", USER, {"provider": ["gpt"]}, "unknown provider"),
        ("coder", USER, {"params": {"temperature": "hot"}}, "temperature must be a number"),
        ("coder", USER, {"params": {"temperature": 5}}, "temperature must be a number"),
        ("coder", USER, {"params": {"max_tokens": 1.5}}, "max_tokens must be a whole number"),
        ("coder", USER, {"params": {"max_tokens": True}}, "max_tokens must be a whole number"),
        ("coder", USER, {"params": {"stop": 5}}, "stop must be a string or a list"),
        ("coder", USER, {"params": [("temperature", 1)]}, "params must be a mapping"),
        ("coder", USER, {"params": {5: 1}}, "parameter names must be strings"),
        ("coder", USER, {"response_schema": "object"}, "response_schema must be a JSON Schema"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_bad_requests_are_refused_before_any_call(
    sims: dict[str, SimServer],
    role: Any,
    messages: Any,
    kwargs: dict[str, Any],
    words: str,
    streamed: bool,
) -> None:
    async with Router(_config(sims)) as router:
        with pytest.raises(RolecallError) as caught:
            if streamed:
                await _read(router.stream(role, messages, **kwargs))
            else:
                await router.complete(role, messages, **kwargs)
    assert words in str(caught.value)
    if isinstance(caught.value, ProviderError):
        assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert [server.calls for server in sims.values()] == [0, 0, 0]


async def test_a_param_json_cannot_carry_is_a_bad_request_never_retried(
    sims: dict[str, SimServer],
) -> None:
    async with Router(_config(sims, roles={"coder": {"provider": "gpt"}})) as router:
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete("coder", "hi", params={"metadata": {"when": object()}})
        assert router.health.state("gpt") == "ok"
    assert [a.to_dict()["error_kind"] for a in caught.value.attempts] == ["bad_request"]
    assert "a value JSON cannot carry" in str(caught.value)
    assert sims["gpt"].calls == 0


@asynccontextmanager
async def _answering(reply: bytes) -> AsyncIterator[str]:
    """A server on 127.0.0.1 answering every request with ``reply``; yields its URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()))
@pytest.mark.parametrize("wait", ["inf", "1e400", "1000000000000", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_an_endless_retry_after_cools_down_for_an_hour_at_most(
    protocol: str, wait: str
) -> None:
    # A 429 asking for an endless wait (or 31,700 years): a number no cooldown should take.
    body = b'{"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}'
    head = f"HTTP/1.1 429 Too Many Requests\r\nretry-after: {wait}\r\n"
    head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    async with _answering(head.encode() + body) as url:
        provider = {"type": protocol, "model": "m", "api_key": KEY, "base_url": url}
        config = RolecallConfig.model_validate(
            {"providers": {"p": provider}, "roles": {"coder": {"provider": "p"}}}
        )
        async with Router(config) as router:
            with pytest.raises(AllProvidersFailed) as caught:
                await router.complete("coder", "hi")
            cooldown = router.health.cooldown_remaining("p")
    (error,) = caught.value.errors
    assert error.kind is ErrorKind.RATE_LIMIT and error.retry_after == MAX_RETRY_AFTER == 3600
    assert MAX_RETRY_AFTER - 60 < cooldown <= MAX_RETRY_AFTER
    assert "rate limited until " in str(caught.value)
