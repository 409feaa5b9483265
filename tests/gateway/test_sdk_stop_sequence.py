"""A stop sequence that ended the answer, through the Messages door: Anthropic's SDK reads
``stop_reason: stop_sequence`` and the sequence in ``stop_sequence``, whole and streamed
(``message_delta``), when the provider said which sequence it was. OpenAI and Gemini say
only that the answer stopped, so their answers claim no sequence.

The Anthropic sim ends its text before the first of the request's stop sequences in it,
and names it, as Anthropic does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import PRIMARY_KEY, RunningGateway
from thinking_helpers import sdk, write_config

from rolecall.sim import SimServer

KWARGS: Any = {
    "model": "coder",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Count to three."}],
    "stop_sequences": ["STOP", "3"],
}


@pytest.fixture(params=["anthropic", "openai"])
def sim(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    with SimServer(request.param, api_key=PRIMARY_KEY, models=("m",)) as server:
        server.responder = lambda body: {"text": "1, 2, 3, STOP"}
        yield server


@pytest.fixture
def gateway(
    tmp_path: Path, sim: SimServer, start_gateway: Callable[..., RunningGateway]
) -> RunningGateway:
    providers = f"""\
        p: {{type: {sim.protocol}, model: m, base_url: "{sim.base_url}",
            api_key: "${{PRIMARY_KEY}}"}}
        """
    config = write_config(
        tmp_path, providers, "coder: {provider: p}\n", f"PRIMARY_KEY={PRIMARY_KEY}\n"
    )
    return start_gateway(config)


@pytest.mark.parametrize("stream", [False, True])
def test_the_stop_sequence_that_ended_the_answer_is_named(
    gateway: RunningGateway, sim: SimServer, stream: bool
) -> None:
    client = sdk(gateway)
    if stream:
        with client.messages.stream(**KWARGS) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**KWARGS)
    if sim.protocol == "anthropic":
        assert message.content[0].text == "1, 2, "  # type: ignore[union-attr]
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "3")
    else:  # the vendor did not say whether a stop sequence ended it: no guess
        assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
