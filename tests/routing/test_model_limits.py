"""A value a provider's MODEL refuses (``config/model_limits.py``: a temperature other than
1 for OpenAI's reasoning models, ``stop`` for o3, temperature and top_p together or too many
output tokens for some Claude models, thinking off for Gemini 2.5 Pro) skips that provider
before it is called (``unsupported``), over the real adapters and the local fake vendor
servers, which refuse those values with the vendor's 400. A model the table does not name
gets the value as given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sim_trio import KEY, PROTOCOLS, fresh

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Attempt


@pytest.fixture(scope="module")
def any_model_sims() -> Iterator[dict[str, SimServer]]:
    servers = {
        pid: SimServer(protocol, api_key=KEY, models=(), reply=f"hello from {pid}")  # type: ignore[arg-type]
        for pid, protocol in PROTOCOLS.items()
    }
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def sims(any_model_sims: dict[str, SimServer]) -> dict[str, SimServer]:
    fresh(any_model_sims)
    return any_model_sims


MODELS = {"gpt": "o3", "claude": "claude-sonnet-4-5-20250929", "gemini": "gemini-2.5-pro"}


def _router(sims: dict[str, SimServer], models: dict[str, str] = MODELS) -> Router:
    providers = {
        pid: {
            "type": PROTOCOLS[pid],
            "model": models[pid],
            "api_key": KEY,
            "base_url": server.base_url,
            "timeout": 5,
        }
        for pid, server in sims.items()
    }
    config = RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": {
                "coder": {"provider": "gpt", "fallback": ["claude", "gemini"]},
                "writer": {"provider": "claude", "fallback": ["gpt"]},
                "seer": {"provider": "gemini", "fallback": ["gpt"]},
            },
            "retry": {"max_attempts": 1},
        }
    )
    return Router(config, check_credentials=False)


def _skipped(pid: str) -> Attempt:
    return Attempt(pid, 0, "handover", ErrorKind.UNSUPPORTED, 0.0)


async def test_a_reasoning_model_is_skipped_for_a_temperature_it_refuses(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        reply = await router.complete("coder", "hi", params={"temperature": 0.2})
        assert reply.provider == "claude"
        assert reply.attempts[0] == _skipped("gpt")
        assert sims["claude"].requests[-1].json["temperature"] == 0.2
        reply = await router.complete("coder", "hi", params={"temperature": 1})
        assert reply.provider == "gpt"  # its default: taken
        reply = await router.complete("coder", "hi", params={"stop": ["END"]})
        assert reply.provider == "claude" and reply.attempts[0] == _skipped("gpt")
    assert sims["gpt"].calls == 1


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"temperature": 0.2}, "Only the default (1) value is supported"),
        ({"stop": ["END"]}, "Unsupported parameter: 'stop'"),
        ({"logprobs": True}, "Unsupported parameter: 'logprobs'"),
    ],
)
async def test_the_openai_sim_refuses_what_a_reasoning_model_refuses(
    sims: dict[str, SimServer], params: dict[str, Any], said: str
) -> None:
    # Sent straight to the sim, as a client without rolecall would.
    body = {"model": "o3", "messages": [{"role": "user", "content": "hi"}], **params}
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{sims['gpt'].base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert answer.status_code == 400 and said in answer.json()["error"]["message"]
        body["model"] = "gpt-4.1"
        answer = await client.post(
            f"{sims['gpt'].base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert answer.status_code == 200


async def test_a_claude_model_that_refuses_temperature_and_top_p_together_is_skipped(
    sims: dict[str, SimServer],
) -> None:
    both = {"temperature": 0.5, "top_p": 0.9}
    async with _router(sims) as router:
        reply = await router.complete("writer", "hi", params={"temperature": 1, "top_p": 1})
        assert reply.provider == "gpt"
        assert reply.attempts[0] == _skipped("claude")
        reply = await router.complete("writer", "hi", params={"top_p": 0.9})
        assert reply.provider == "claude"
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete("writer", "hi", params=both)
    assert "temperature and top_p together" in caught.value.message
    assert "claude-sonnet-4-5-20250929" in caught.value.message
    assert [error.kind for error in caught.value.errors] == [ErrorKind.UNSUPPORTED] * 2
    assert sims["claude"].calls == 1


async def test_max_tokens_above_a_claude_models_most_skips_it(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        reply = await router.complete("writer", "hi", params={"max_tokens": 64001})
        assert reply.provider == "gpt" and reply.attempts[0] == _skipped("claude")
        reply = await router.complete("writer", "hi", params={"max_tokens": 64000})
    assert reply.provider == "claude"
    assert sims["claude"].requests[-1].json["max_tokens"] == 64000


async def test_gemini_2_5_pro_is_skipped_for_thinking_off(sims: dict[str, SimServer]) -> None:
    async with _router(sims) as router:
        reply = await router.complete("seer", "hi", params={"reasoning_effort": "none"})
        assert reply.provider == "gpt" and reply.attempts[0] == _skipped("gemini")
        reply = await router.complete("seer", "hi", params={"reasoning_effort": "low"})
    assert reply.provider == "gemini"
    assert sims["gemini"].calls == 1


async def test_models_the_table_does_not_name_get_every_value(sims: dict[str, SimServer]) -> None:
    models = {"gpt": "gpt-4.1", "claude": "claude-3-7-sonnet-latest", "gemini": "gemini-2.5-flash"}
    async with _router(sims, models) as router:
        params = {"temperature": 0.2, "top_p": 0.5, "stop": ["END"]}
        assert (await router.complete("coder", "hi", params=params)).provider == "gpt"
        assert (await router.complete("writer", "hi", params=params)).provider == "claude"
        effort = {"reasoning_effort": "none"}
        assert (await router.complete("seer", "hi", params=effort)).provider == "gemini"


@pytest.mark.parametrize(
    ("pid", "model", "body"),
    [
        (
            "claude",
            "claude-haiku-4-5",
            {"max_tokens": 100, "temperature": 0.5, "top_p": 0.5},
        ),
        ("claude", "claude-sonnet-4-5-20250929", {"max_tokens": 64001}),
    ],
)
async def test_the_anthropic_sim_refuses_what_the_model_refuses(
    sims: dict[str, SimServer], pid: str, model: str, body: dict[str, Any]
) -> None:
    sent = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{sims[pid].base_url}/v1/messages",
            json=sent,
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert "cannot both be specified" in message or "maximum allowed number of output" in message


# A 1x1 PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
    "rkJggg=="
)


def _image(media_type: str, data: str) -> list[dict[str, Any]]:
    url = f"data:{media_type};base64,{data}"
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


async def test_a_png_declared_as_jpeg_reaches_anthropic_as_png(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        reply = await router.complete("writer", _image("image/jpeg", PNG))
    assert reply.provider == "claude" and len(reply.attempts) == 1
    source = sims["claude"].requests[-1].json["messages"][0]["content"][1]["source"]
    assert source["media_type"] == "image/png"


async def test_the_anthropic_sim_refuses_an_image_of_another_type_than_declared(
    sims: dict[str, SimServer],
) -> None:
    block = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}
    sent = {
        "model": "claude-3-7-sonnet-latest",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [block]}],
    }
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{sims['claude'].base_url}/v1/messages",
            json=sent,
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "messages.0.content.0.image.source.base64: The image was specified using the "
        "image/jpeg media type, but the image appears to be a image/png image"
    )
