"""Streams: hand over before the first chunk, never after it."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from rolecall.errors import AllProvidersFailed, ErrorKind, StreamInterrupted

CHAIN = {"coder": {"provider": "a", "fallback": ["b"]}}


@pytest.fixture
def build(build: Any) -> Any:
    """Providers that stream "Hello world" in three pieces."""
    return functools.partial(build, chunks=("Hel", "lo ", "world"))


@pytest.fixture
def scripted(scripted: Any) -> Any:
    return functools.partial(scripted, chunks=("Hel", "lo ", "world"))


async def _read(stream: Any) -> list[str]:
    return [chunk async for chunk in stream]


async def test_stream_yields_chunks_then_reply(build: Any, config_of: Any) -> None:
    h = build(config_of(roles=CHAIN), {})
    stream = h.router.stream("coder", "hi")
    with pytest.raises(RuntimeError, match="read to the end"):
        _ = stream.reply
    assert await _read(stream) == ["Hel", "lo ", "world"]
    reply = stream.reply
    assert (reply.text, reply.provider, reply.model) == ("Hello world", "a", "a-model")
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 5)
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("a", "ok")]
    tasks = h.recorder.of_type("task")
    assert [(t.status, t.provider, t.output_tokens) for t in tasks] == [("ok", "a", 5)]


async def test_failure_before_first_chunk_falls_back(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(roles=CHAIN), {"a": [step_of(kind=ErrorKind.AUTH)]})
    chunks = await _read(h.router.stream("coder", "hi"))
    assert "".join(chunks) == "Hello world"
    assert len(h.providers["b"].calls) == 1
    stream_attempts = [(a.provider, a.outcome, a.error_kind) for a in h.recorder.of_type("attempt")]
    assert stream_attempts == [("a", "handover", ErrorKind.AUTH), ("b", "ok", None)]


async def test_retry_before_first_chunk_on_same_provider(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(roles=CHAIN), {"a": [step_of(kind=ErrorKind.SERVER)]})
    stream = h.router.stream("coder", "hi")
    assert "".join(await _read(stream)) == "Hello world"
    assert [(a.provider, a.outcome) for a in stream.reply.attempts] == [
        ("a", "retry"),
        ("a", "ok"),
    ]
    assert h.time.sleeps == [1.0]


async def test_failure_after_chunks_raises_stream_interrupted(
    build: Any, config_of: Any, step_of: Any
) -> None:
    h = build(config_of(roles=CHAIN), {"a": [step_of(kind=ErrorKind.NETWORK, after_chunks=2)]})
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for chunk in h.router.stream("coder", "hi"):
            received.append(chunk)
    assert received == ["Hel", "lo "]  # nothing repeated, nothing from another provider
    error = caught.value
    assert (error.provider, error.received_chars, error.kind) == ("a", 6, ErrorKind.NETWORK)
    assert "provider 'a'" in str(error) and "6 characters" in str(error)
    assert len(h.providers["a"].calls) == 1 and h.providers["b"].calls == []
    assert [(a.outcome, a.error_kind) for a in h.recorder.of_type("attempt")] == [
        ("handover", ErrorKind.NETWORK)
    ]
    [task] = h.recorder.of_type("task")
    assert (task.status, task.provider) == ("failed", "a")
    assert "6 characters" in (task.error or "")


async def test_stream_with_every_provider_failing(build: Any, config_of: Any, step_of: Any) -> None:
    h = build(
        config_of(roles=CHAIN),
        {"a": [step_of(kind=ErrorKind.QUOTA)], "b": [step_of(kind=ErrorKind.PERMISSION)]},
    )
    with pytest.raises(AllProvidersFailed) as caught:
        await _read(h.router.stream("coder", "hi"))
    assert [e.kind for e in caught.value.errors] == [ErrorKind.QUOTA, ErrorKind.PERMISSION]
    assert [a.provider for a in caught.value.attempts] == ["a", "b"]


async def test_closing_a_stream_early_frees_the_provider(config_of: Any, scripted: Any) -> None:
    from rolecall.routing.router import Router

    config = config_of(
        ("a",), roles={"coder": {"provider": "a"}}, provider_extra={"a": {"max_concurrency": 1}}
    )
    provider = scripted("a")
    router = Router(config, providers={"a": provider})
    for _ in range(3):  # with one slot, a leaked slot would hang the next stream
        stream = router.stream("coder", "hi")
        assert await stream.__anext__() == "Hel"
        await stream.aclose()
    reply = await router.complete("coder", "hi")
    assert reply.provider == "a"


async def test_stream_targets_a_provider(build: Any, config_of: Any) -> None:
    h = build(config_of(roles=CHAIN), {})
    stream = h.router.stream("coder", "hi", provider="b")
    await _read(stream)
    assert stream.reply.provider == "b"
    assert h.providers["a"].calls == []
