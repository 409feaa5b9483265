"""Fixtures: one fake server per protocol per module, handed to each test in a fresh state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_helpers import KEY, REPLY

from rolecall.sim import SimServer


def _fresh(server: SimServer) -> SimServer:
    server.clear()
    server.reset_stats()
    server.responder = None
    server.api_key = KEY
    server.reply = REPLY
    server.latency = 0.0
    server.models = ("sim-model",)
    return server


@pytest.fixture(scope="module")
def _servers() -> Iterator[dict[str, SimServer]]:
    servers = {p: SimServer(p).start() for p in ("openai", "anthropic", "google", "bedrock")}  # type: ignore[arg-type]
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def openai_sim(_servers: dict[str, SimServer]) -> SimServer:
    return _fresh(_servers["openai"])


@pytest.fixture
def anthropic_sim(_servers: dict[str, SimServer]) -> SimServer:
    return _fresh(_servers["anthropic"])


@pytest.fixture
def google_sim(_servers: dict[str, SimServer]) -> SimServer:
    return _fresh(_servers["google"])


@pytest.fixture
def bedrock_sim(_servers: dict[str, SimServer]) -> SimServer:
    return _fresh(_servers["bedrock"])
