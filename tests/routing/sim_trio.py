"""Three fake vendor servers (OpenAI, Anthropic, Gemini) for router tests over the real
adapters, and the providers config that points at them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rolecall.sim import SimServer

KEY = "test-key"
PROTOCOLS = {"gpt": "openai", "claude": "anthropic", "gemini": "google"}


@contextmanager
def started_sims() -> Iterator[dict[str, SimServer]]:
    """One running sim per provider id of :data:`PROTOCOLS`, answering ``hello from ID``."""
    servers = {
        pid: SimServer(protocol, api_key=KEY, reply=f"hello from {pid}")  # type: ignore[arg-type]
        for pid, protocol in PROTOCOLS.items()
    }
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def fresh(sims: Mapping[str, SimServer]) -> None:
    """No scripted faults and no counts left from the test before."""
    for server in sims.values():
        server.clear()
        server.reset_stats()


def providers_for(
    sims: Mapping[str, SimServer], keys: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The ``providers`` section for ``sims`` (``keys``: another key for some of them)."""
    return {
        pid: {
            "type": PROTOCOLS[pid],
            "model": "sim-model",
            "api_key": (keys or {}).get(pid, KEY),
            "base_url": server.base_url,
            "timeout": 5,
        }
        for pid, server in sims.items()
    }
