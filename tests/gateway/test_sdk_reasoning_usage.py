"""The thinking tokens a vendor counts apart reach the client through every door, as each
official SDK reads them: chat's ``completion_tokens_details.reasoning_tokens``, the
Responses API's ``output_tokens_details.reasoning_tokens`` and Anthropic's
``output_tokens_details.thinking_tokens``, whole and streamed.

Each sim counts thinking as its vendor does: within the output tokens, and apart (OpenAI's
``reasoning_tokens``, Gemini's ``thoughtsTokenCount`` beside the candidates' count,
Anthropic's ``thinking_tokens``); its stand-in for a token is a word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from gateway_helpers import GATEWAY_KEY, PRIMARY_KEY, RunningGateway
from thinking_helpers import write_config

from rolecall.sim import SimServer

THOUGHT = "the capital of France is Paris"  # six words: six thinking tokens
ANSWER = {"text": "Paris.", "reasoning": THOUGHT, "output_tokens": 1}
TYPES = {"openai": "openai", "anthropic": "anthropic", "google": "google"}


@pytest.fixture(params=sorted(TYPES))
def sim(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    with SimServer(request.param, api_key=PRIMARY_KEY, models=("gemini-2.5-pro",)) as server:
        server.responder = lambda body: ANSWER
        yield server


@pytest.fixture
def gateway(
    tmp_path: Path, sim: SimServer, start_gateway: Callable[..., RunningGateway]
) -> RunningGateway:
    providers = f"""\
        p: {{type: {TYPES[sim.protocol]}, model: gemini-2.5-pro, base_url: "{sim.base_url}",
            api_key: "${{PRIMARY_KEY}}"}}
        """
    config = write_config(
        tmp_path, providers, "coder: {provider: p}\n", f"PRIMARY_KEY={PRIMARY_KEY}\n"
    )
    return start_gateway(config)


def openai_sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20)


ASK: Any = [{"role": "user", "content": "Capital of France?"}]


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completion_tokens_details(gateway: RunningGateway, stream: bool) -> None:
    client = openai_sdk(gateway)
    kwargs: Any = {"model": "coder", "messages": ASK, "reasoning_effort": "low"}
    if stream:
        chunks = list(
            client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(**kwargs).usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 6
    assert usage.completion_tokens == 7


@pytest.mark.parametrize("stream", [False, True])
def test_responses_output_tokens_details(gateway: RunningGateway, stream: bool) -> None:
    client = openai_sdk(gateway)
    kwargs: Any = {
        "model": "coder",
        "input": ASK,
        "reasoning": {"effort": "low"},
        "max_output_tokens": 4096,
    }
    if stream:
        with client.responses.stream(**kwargs) as events:
            usage = events.get_final_response().usage
    else:
        usage = client.responses.create(**kwargs).usage
    assert usage is not None
    assert usage.output_tokens_details.reasoning_tokens == 6
    assert usage.output_tokens == 7


@pytest.mark.parametrize("stream", [False, True])
def test_messages_thinking_tokens(gateway: RunningGateway, stream: bool) -> None:
    client = anthropic.Anthropic(
        base_url=gateway.server.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20
    )
    kwargs: Any = {
        "model": "coder",
        "max_tokens": 4096,
        "messages": ASK,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    if stream:
        with client.messages.stream(**kwargs) as events:
            usage = events.get_final_message().usage
    else:
        usage = client.messages.create(**kwargs).usage
    assert usage.output_tokens_details is not None
    assert usage.output_tokens_details.thinking_tokens == 6
    assert usage.output_tokens == 7
