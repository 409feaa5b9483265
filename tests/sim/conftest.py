"""Fixtures: one fake server per protocol per module, handed to each test in a fresh state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_helpers import KEY, REPLY

from google_credentials import TOKEN
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
    protocols = ("openai", "anthropic", "google", "vertex", "bedrock")
    servers = {p: SimServer(p).start() for p in protocols}  # type: ignore[arg-type]
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


@pytest.fixture(scope="module")
def _azure_server() -> Iterator[SimServer]:
    server = SimServer("azure-openai").start()
    yield server
    server.stop()


@pytest.fixture
def azure_sim(_azure_server: SimServer) -> SimServer:
    return _fresh(_azure_server)


@pytest.fixture
def vertex_sim(_servers: dict[str, SimServer]) -> SimServer:
    """Vertex AI: its one known OAuth access token is ``TOKEN``."""
    server = _fresh(_servers["vertex"])
    server.api_key = TOKEN
    return server


@pytest.fixture
def bedrock_sim(_servers: dict[str, SimServer]) -> SimServer:
    return _fresh(_servers["bedrock"])
