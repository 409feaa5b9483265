"""An inline image whose data is empty or not base64 at all would be refused by every
vendor with a 400, wasting the whole chain: it is refused before any provider is called
(``bad_request``) naming the message part, over the real adapters and the local fake
vendor servers. Only the ends of the data are looked at, so a large image costs nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sim_trio import providers_for

from rolecall.config.schema import RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import ImagePart, Message


def _router(sims: dict[str, SimServer]) -> Router:
    config = RolecallConfig.model_validate(
        {
            "providers": providers_for(sims),
            "roles": {"coder": {"provider": "gpt", "fallback": ["gemini", "claude"]}},
            "retry": {"max_attempts": 1},
        }
    )
    return Router(config, check_credentials=False)


def _turn(url: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "first"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
    ]


GIF = "R0lGODlhAQABAAAAACw="


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("", "has no image data"),
        ("   ", "has no image data"),
        ("not base64 at all!", "is not base64"),
        ("/home/me/cat.png", "is not base64"),
        ("<svg xmlns='http://www.w3.org/2000/svg'/>", "is not base64"),
        (GIF + " (a gif)", "is not base64"),
    ],
)
async def test_empty_or_non_base64_image_data_is_refused_before_any_call(
    sims: dict[str, SimServer], data: str, expected: str
) -> None:
    async with _router(sims) as router:
        with pytest.raises(ProviderError) as caught:
            await router.complete("coder", _turn(f"data:image/png;base64,{data}"))
        assert caught.value.kind is ErrorKind.BAD_REQUEST
        assert "messages[1].content[1]" in str(caught.value)
        assert expected in str(caught.value)
        with pytest.raises(ProviderError) as streamed:
            async for _ in router.stream("coder", _turn(f"data:image/png;base64,{data}")):
                pass
        assert streamed.value.kind is ErrorKind.BAD_REQUEST
    assert all(server.calls == 0 for server in sims.values())


async def test_an_image_built_as_a_message_object_is_checked_too(
    sims: dict[str, SimServer],
) -> None:
    messages = [Message("user", "", parts=(ImagePart("data:image/png;base64,"),))]
    async with _router(sims) as router:
        with pytest.raises(ProviderError) as caught:
            await router.complete("coder", messages)
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert "messages[0].content[0]" in str(caught.value)
    assert all(server.calls == 0 for server in sims.values())


@pytest.mark.parametrize(
    "data",
    [
        GIF,
        GIF.rstrip("="),  # unpadded
        "R0lGODlh" + "A" * 100_000 + "ACw=",
        "R0lGODlh-_AB",  # base64url
        "R0lGODlh\nAQABAAAAACw=\n",  # wrapped lines, as MIME writes them
    ],
)
async def test_base64_data_is_sent(sims: dict[str, SimServer], data: str) -> None:
    async with _router(sims) as router:
        reply = await router.complete("coder", _turn(f"data:image/png;base64,{data}"))
    assert reply.provider == "gpt"
    assert sims["gpt"].calls == 1
