"""Fixtures: four fake vendor servers and a spec file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from workflow_helpers import SPEC, started_servers

from rolecall.sim import SimServer


@pytest.fixture
def sims() -> Iterator[dict[str, SimServer]]:
    """Four fake vendors: google, anthropic, and two OpenAI-style servers."""
    with started_servers(
        {"gem": "google", "claude": "anthropic", "gpt": "openai", "gpt2": "openai"}
    ) as servers:
        yield servers


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.md"
    path.write_text(SPEC, encoding="utf-8")
    return path
