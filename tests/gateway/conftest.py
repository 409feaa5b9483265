"""Fixtures: fake providers (SimServer) and a running gateway in front of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import (
    FALLBACK_KEY,
    GATEWAY_KEY,
    PRIMARY_KEY,
    RunningGateway,
    config_text,
)

from rolecall.sim import SimServer


@pytest.fixture
def primary() -> Iterator[SimServer]:
    with SimServer("openai", api_key=PRIMARY_KEY, models=("model-a",), reply="answer from A") as s:
        yield s


@pytest.fixture
def fallback() -> Iterator[SimServer]:
    with SimServer(
        "anthropic", api_key=FALLBACK_KEY, models=("model-b",), reply="answer from B"
    ) as s:
        yield s


@pytest.fixture
def config_path(tmp_path: Path, primary: SimServer, fallback: SimServer) -> Path:
    (tmp_path / ".env").write_text(
        f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\nGATEWAY_KEY={GATEWAY_KEY}\n"
    )
    path = tmp_path / "rolecall.yaml"
    path.write_text(config_text(primary, fallback, tmp=tmp_path))
    return path


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., RunningGateway]]:
    started: list[RunningGateway] = []

    def start(config_path: Path, **kwargs: Any) -> RunningGateway:
        running = RunningGateway(config_path, **kwargs).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def gateway(config_path: Path, start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return start_gateway(config_path)
