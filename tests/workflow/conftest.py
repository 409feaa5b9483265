"""Fixtures: four fake vendor servers and a spec file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from workflow_helpers import SPEC

from rolecall.sim import SimServer


@pytest.fixture
def sims() -> Iterator[dict[str, SimServer]]:
    """Four fake vendors: google, anthropic, and two OpenAI-style servers."""
    servers = {
        "gem": SimServer("google"),
        "claude": SimServer("anthropic"),
        "gpt": SimServer("openai"),
        "gpt2": SimServer("openai"),
    }
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.md"
    path.write_text(SPEC, encoding="utf-8")
    return path
