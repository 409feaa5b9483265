"""A value a provider's vendor refuses (more stop sequences than it takes, a temperature
above its range, an image type it cannot read) skips that provider before it is called
(``unsupported``), over the real adapters and the local fake vendor servers, which
refuse those values with the vendor's 400."""

from __future__ import annotations

from typing import Any

import pytest
from sim_trio import providers_for

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Attempt


def _router(sims: dict[str, SimServer]) -> Router:
    config = RolecallConfig.model_validate(
        {
            "providers": providers_for(sims),
            "roles": {
                "coder": {"provider": "gpt", "fallback": ["gemini", "claude"]},
                "writer": {"provider": "claude", "fallback": ["gemini"]},
                "seer": {"provider": "gemini", "fallback": ["gpt"]},
            },
            "retry": {"max_attempts": 1},
        }
    )
    return Router(config, check_credentials=False)


def _skipped(pid: str) -> Attempt:
    return Attempt(pid, 0, "handover", ErrorKind.UNSUPPORTED, 0.0)


def _image(media_type: str) -> list[dict[str, Any]]:
    url = f"data:{media_type};base64,R0lGODlhAQABAAAAACw="
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


async def test_more_stop_sequences_than_a_vendor_takes_skip_it_before_the_call(
    sims: dict[str, SimServer],
) -> None:
    five, six = list("abcde"), list("abcdef")
    async with _router(sims) as router:
        reply = await router.complete("coder", "hi", params={"stop": five})
        assert reply.provider == "gemini"  # OpenAI takes 4, Gemini 5
        assert reply.attempts[0] == _skipped("gpt")
        assert sims["gemini"].requests[-1].json["generationConfig"]["stopSequences"] == five
        reply = await router.complete("coder", "hi", params={"stop": six})
    assert reply.provider == "claude"  # Anthropic documents no limit
    assert list(reply.attempts[:2]) == [_skipped("gpt"), _skipped("gemini")]
    assert sims["claude"].requests[-1].json["stop_sequences"] == six
    assert sims["gpt"].calls == 0 and sims["gemini"].calls == 1


async def test_a_temperature_above_anthropics_range_skips_it_and_is_sent_elsewhere_as_given(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        reply = await router.complete("writer", "hi", params={"temperature": 1.5})
        assert reply.provider == "gemini"
        assert reply.attempts[0] == _skipped("claude")
        assert sims["gemini"].requests[-1].json["generationConfig"]["temperature"] == 1.5
        assert sims["claude"].calls == 0  # was sent as 1.0 without a word
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete("writer", "hi", params={"temperature": 2, "stop": list("abcdef")})
    message = caught.value.message
    assert "temperature 2 is above 1" in message and "at most 5" in message
    assert [error.params for error in caught.value.errors] == [("temperature",), ("stop",)]
    assert (sims["claude"].calls, sims["gemini"].calls) == (0, 1)


@pytest.mark.parametrize(
    ("role", "media_type", "answered_by", "skipped"),
    [
        ("seer", "image/gif", "gpt", ("gemini",)),  # OpenAI reads GIF; Gemini does not
        ("coder", "image/heic", "gemini", ("gpt",)),
        ("coder", "image/bmp", None, ("gpt", "gemini", "claude")),
        ("coder", "text/plain", None, ("gpt", "gemini", "claude")),
    ],
)
async def test_an_image_type_a_vendor_cannot_read_skips_it_before_the_call(
    sims: dict[str, SimServer],
    role: str,
    media_type: str,
    answered_by: str | None,
    skipped: tuple[str, ...],
) -> None:
    async with _router(sims) as router:
        if answered_by is None:
            with pytest.raises(AllProvidersFailed) as caught:
                await router.complete(role, _image(media_type))
            assert f"'{media_type}'" in caught.value.message
            assert "messages[0].content[1]" in caught.value.message
            assert [error.kind for error in caught.value.errors] == [ErrorKind.UNSUPPORTED] * 3
        else:
            reply = await router.complete(role, _image(media_type))
            assert reply.provider == answered_by
            assert list(reply.attempts[:-1]) == [_skipped(pid) for pid in skipped]
    for pid in skipped:
        assert sims[pid].calls == 0


async def test_gemini_gets_image_jpg_by_the_name_it_knows(sims: dict[str, SimServer]) -> None:
    async with _router(sims) as router:
        reply = await router.complete("writer", _image("IMAGE/JPG"), params={"temperature": 1.5})
    assert reply.provider == "gemini"
    part = sims["gemini"].requests[-1].json["contents"][0]["parts"][1]
    assert part["inlineData"]["mimeType"] == "image/jpeg"
