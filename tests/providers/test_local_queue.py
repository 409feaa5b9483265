"""The embedded model's queue: one request at a time, in the order they came.

Run for real on the bundled SmolLM2-135M GGUF (skipped without it, as in
``test_local.py``); each request generates one token at most.
"""

from __future__ import annotations

import asyncio

from local_helpers import needs_model

from rolecall.config.schema import ProviderConfig
from rolecall.providers.local import LocalProvider
from rolecall.types import ChatRequest, Message

_TIMEOUT = 300.0  # generous: a loaded CI machine runs this model at a few tokens per second


def _provider() -> LocalProvider:
    config = ProviderConfig.model_validate({"type": "local", "timeout": _TIMEOUT})
    return LocalProvider("local", config)


async def _first_tokens_order(provider: LocalProvider, count: int) -> list[int]:
    """Start ``count`` streams at once; the order in which each produced its first text."""
    order: list[int] = []

    async def one(index: int) -> None:
        request = ChatRequest(messages=(Message("user", "Hi"),), params={"max_tokens": 1})
        async for chunk in provider.stream(request):
            if chunk.text:
                order.append(index)
                return  # leaving stops the generation: one token is enough

    await asyncio.gather(*(one(index) for index in range(count)))
    return order


@needs_model
async def test_concurrent_requests_run_in_the_order_they_came() -> None:
    # Each round on a new provider (the model itself stays loaded): before, each request
    # looked the model up on a thread of its own and joined the queue when that thread came
    # back, so the order of arrival was lost, most often in a burst like this one.
    for _ in range(3):
        assert await _first_tokens_order(_provider(), 8) == list(range(8))
