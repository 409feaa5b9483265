"""A provider that stops writing mid-answer but keeps its stream open with keep-alives.

The sims send no more content, only their vendor's keep-alive (Anthropic's ``ping``
event, an SSE comment line for OpenAI) every 0.1 s, far longer than the providers'
1 s ``timeout``: the client must get its door's error event naming the provider, and
the provider's stream must be closed, not held for as long as the vendor keeps it up.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anthropic
import openai
import pytest
from gateway_helpers import (
    FALLBACK_KEY,
    GATEWAY_KEY,
    PRIMARY_KEY,
    RunningGateway,
    config_text,
    wait_for,
)

from rolecall.sim import Fault, SimServer

HANG = 30.0  # the sims' keep-alives last this long: far past every bound below
KEEPS_ALIVE = Fault("stall", after_chunks=2, delay=HANG, variant="keepalive")
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
def config_path(tmp_path: Path, primary: SimServer, fallback: SimServer) -> Path:
    (tmp_path / ".env").write_text(
        f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\nGATEWAY_KEY={GATEWAY_KEY}\n"
    )
    text = config_text(primary, fallback, tmp=tmp_path)
    for key in ("PRIMARY_KEY", "FALLBACK_KEY"):
        line = f"    api_key: ${{{key}}}\n"
        text = text.replace(line, line + "    timeout: 1s\n")
    path = tmp_path / "rolecall.yaml"
    path.write_text(text)
    return path


def _recorded_errors(gateway: RunningGateway, tmp_path: Path) -> list[tuple[str, str]]:
    gateway.stop()  # finishes the run and flushes the recorder
    with sqlite3.connect(tmp_path / "rolecall.db") as db:
        return list(db.execute("SELECT status, error FROM tasks"))


def test_anthropic_pings_do_not_hold_a_messages_stream(
    gateway: RunningGateway, fallback: SimServer, tmp_path: Path
) -> None:
    fallback.script(KEEPS_ALIVE)
    client = anthropic.Anthropic(
        base_url=gateway.server.url, api_key=GATEWAY_KEY, max_retries=0, timeout=HANG / 2
    )
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model="reviewer", max_tokens=50, messages=ASK) as events,  # type: ignore[arg-type]
    ):
        received.extend(events.text_stream)
    assert "".join(received)  # text arrived before the provider went quiet
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert "'b'" in message and "no content for 1 s" in message
    wait_for(lambda: fallback.in_flight == 0, timeout=5)  # its stream was closed
    ((status, error),) = _recorded_errors(gateway, tmp_path)
    assert status == "failed" and "timeout: no content for 1 s" in error


def test_openai_keepalive_comments_do_not_hold_a_chat_stream(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.script(KEEPS_ALIVE)
    client = openai.OpenAI(
        base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=HANG / 2
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="coder", messages=ASK, stream=True):  # type: ignore[arg-type]
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received)
    assert "'a'" in caught.value.message and "no content for 1 s" in caught.value.message
    wait_for(lambda: primary.in_flight == 0, timeout=5)
    assert fallback.calls == 0  # never handed over after text
