"""Capabilities and call parameters: a provider that cannot take a request is skipped, named."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing._capabilities import UnknownParameter
from rolecall.types import Attempt

IMAGE_MESSAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def _failures(h: Any, pid: str) -> int:
    return int(h.router.health.snapshot().get(pid, {}).get("failures", 0))


async def test_provider_without_images_is_skipped_as_unsupported(
    build: Any, config_of: Any
) -> None:
    config = config_of(
        roles={"coder": {"provider": "a", "fallback": ["b"]}},
        provider_extra={"a": {"capabilities": {"images": False}}},
    )
    h = build(config, {})
    reply = await h.router.complete("coder", IMAGE_MESSAGE)
    assert reply.provider == "b"
    assert h.providers["a"].calls == []  # never called
    assert reply.attempts[0] == Attempt("a", 0, "handover", ErrorKind.UNSUPPORTED, 0.0)
    event = h.recorder.of_type("attempt")[0]
    assert (event.provider, event.outcome, event.error_kind) == ("a", "handover", "unsupported")
    assert "images" in event.error
    assert _failures(h, "a") == 0
    assert h.router.health.state("a") == "ok"
    task = h.recorder.of_type("task")[0]
    assert task.handovers == 1


async def test_every_provider_unsupported_fails_at_once(build: Any, config_of: Any) -> None:
    config = config_of(
        roles={"coder": {"provider": "a", "fallback": ["b"]}},
        provider_extra={"a": {"type": "local"}, "b": {"type": "local"}},
    )
    h = build(config, {})
    with pytest.raises(AllProvidersFailed) as caught:
        await h.router.complete("coder", "hi", params={"tools": [TOOL]})
    message = caught.value.message
    assert "tools" in message and "'a'" in message and "'b'" in message
    assert all(error.kind is ErrorKind.UNSUPPORTED for error in caught.value.errors)
    assert h.providers["a"].calls == [] and h.providers["b"].calls == []
    assert h.time.sleeps == []


@pytest.mark.parametrize(
    ("params", "feature"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"reasoning_effort": "high"}, "thinking"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "json_schema"),
    ],
)
async def test_each_feature_is_checked(
    build: Any, config_of: Any, params: dict[str, Any], feature: str
) -> None:
    # a: anthropic (no logprobs, no n); b: local (json_schema only); c: openai-compatible.
    config = config_of(
        roles={"coder": {"provider": "a", "fallback": ["b", "c"]}},
        provider_extra={"a": {"type": "anthropic"}, "b": {"type": "local"}},
    )
    h = build(config, {})
    try:
        reply = await h.router.complete("coder", "hi", params=params)
    except AllProvidersFailed as exc:
        assert feature == "n"  # nowhere takes n > 1
        assert "needs n" in exc.message
        return
    skipped = [a.provider for a in reply.attempts if a.error_kind is ErrorKind.UNSUPPORTED]
    expected = {"logprobs": ["a", "b"], "thinking": [], "json_schema": []}[feature]
    assert skipped == expected
    assert reply.provider == ("c" if expected else "a")


@pytest.mark.parametrize(
    "entry",
    [{"type": "local"}, {"capabilities": {"thinking": False}}],
    ids=["local", "compatible-without-thinking"],
)
async def test_reasoning_effort_none_asks_nothing_of_a_provider_without_thinking(
    build: Any, config_of: Any, entry: dict[str, Any]
) -> None:
    # A client that always sends an effort (none: think not at all) still reaches a provider
    # that cannot think, and the field is left out of what it is sent.
    config = config_of(
        roles={"coder": {"provider": "a", "fallback": ["b"]}}, provider_extra={"a": entry}
    )
    h = build(config, {})
    params = {"reasoning_effort": "none", "temperature": 0.1}
    reply = await h.router.complete("coder", "hi", params=params)
    stream = h.router.stream("coder", "hi", params=params)
    text = "".join([chunk async for chunk in stream])
    assert reply.provider == "a" and text == "answer from a"
    assert [dict(request.params) for request in h.providers["a"].requests] == [
        {"temperature": 0.1}
    ] * 2
    assert h.providers["b"].calls == []


async def test_reasoning_effort_none_is_still_sent_to_a_provider_with_thinking(
    build: Any, config_of: Any
) -> None:
    h = build(config_of(), {})
    await h.router.complete("coder", "hi", params={"reasoning_effort": "none"})
    assert dict(h.providers["a"].requests[0].params) == {"reasoning_effort": "none"}


async def test_stream_skips_unsupported_provider(build: Any, config_of: Any) -> None:
    config = config_of(
        roles={"coder": {"provider": "a", "fallback": ["b"]}},
        provider_extra={"a": {"type": "local"}},
    )
    h = build(config, {})
    stream = h.router.stream("coder", "hi", params={"tools": [TOOL]})
    text = "".join([chunk async for chunk in stream])
    assert text == "answer from b"
    assert h.providers["a"].calls == []


async def test_unsupported_from_the_adapter_hands_over_without_retry(
    build: Any, config_of: Any
) -> None:
    config = config_of(roles={"coder": {"provider": "a", "fallback": ["b"]}})
    h = build(config, {"a": ["unsupported"]})
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "b"
    assert len(h.providers["a"].calls) == 1
    assert reply.attempts[0].outcome == "handover"
    assert reply.attempts[0].error_kind is ErrorKind.UNSUPPORTED
    assert _failures(h, "a") == 0


async def test_unknown_parameter_is_an_error_before_any_call(build: Any, config_of: Any) -> None:
    h = build(config_of(), {})
    with pytest.raises(UnknownParameter, match=r"'temprature'.*did you mean 'temperature'"):
        await h.router.complete("coder", "hi", params={"temprature": 0.2})
    with pytest.raises(UnknownParameter, match="drop_params"):
        h.router.stream("coder", "hi", params={"frobnicate": 1})
    assert h.providers["a"].calls == []


async def test_drop_params_drops_named_ones_silently(build: Any, config_of: Any) -> None:
    config = config_of(provider_extra={"a": {"type": "anthropic"}})
    config = config.model_copy(update={"drop_params": ["my_flag", "logprobs"]})
    h = build(config, {})
    reply = await h.router.complete(
        "coder", "hi", params={"my_flag": 1, "logprobs": True, "temperature": 0.1}
    )
    assert reply.provider == "a"  # logprobs dropped for anthropic instead of skipping it
    assert dict(h.providers["a"].requests[0].params) == {"temperature": 0.1}


async def test_known_but_unlisted_names_still_reach_the_router(build: Any, config_of: Any) -> None:
    config = config_of(provider_extra={"a": {"type": "anthropic"}})
    h = build(config, {})
    # top_k is a name some protocols know: passed on, the adapter filters it per protocol.
    await h.router.complete("coder", "hi", params={"top_k": 5})
    assert h.providers["a"].requests[0].params["top_k"] == 5
