"""A credential source that never answers (a ``credential_process`` waiting on a prompt, a
token server that holds the connection) holds one thread, however many calls time out on
it: the next call joins the step still running instead of starting another, so asyncio's
default executor, shared with the rest of the process, keeps its threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aws_profiles import counting_process, isolated_aws
from google_credentials import FakeCredentials
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers.bedrock import BedrockProvider
from rolecall.providers.vertex import VertexProvider
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Message

REQUEST = ChatRequest(messages=(Message("user", "Plan the work."),))
CALLS = 8  # more than asyncio's default executor has threads on a small machine


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer("bedrock", api_key="secret", reply="ok", models=()) as started:
        yield started


async def _timeouts(provider: Any) -> list[ErrorKind]:
    kinds: list[ErrorKind] = []
    for _ in range(CALLS):
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
        kinds.append(info.value.kind)
    return kinds


async def _executor_answers() -> bool:
    try:
        async with asyncio.timeout(5):
            return await asyncio.to_thread(lambda: True)
    except TimeoutError:
        return False


async def test_a_credential_process_that_hangs_runs_once_for_every_call_that_times_out(
    server: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "release"
    runs = counting_process(
        tmp_path,
        f"""
        import pathlib, time
        while not pathlib.Path({str(release)!r}).exists():
            time.sleep(0.05)
        """,
        profile="hung",
    )
    isolated_aws(monkeypatch, tmp_path)
    config = {"type": "bedrock", "model": "m", "region": "us-east-1", "timeout": 0.2}
    provider = BedrockProvider(
        "aws",
        BedrockConfig.model_validate({**config, "base_url": server.base_url, "profile": "hung"}),
    )
    try:
        kinds = await _timeouts(provider)
        answers = await _executor_answers()
    finally:
        release.touch()  # the process(es) end; nothing is left running
        await provider.aclose()
    assert kinds == [ErrorKind.TIMEOUT] * CALLS
    assert runs.read_text().split() == ["run"]
    assert answers
    assert server.calls == 0


async def test_a_token_refresh_that_hangs_runs_once_for_every_call_that_times_out() -> None:
    release = threading.Event()

    class HungCredentials(FakeCredentials):  # type: ignore[misc]
        started = 0

        def refresh(self, request: Any) -> None:
            self.started += 1
            release.wait(10)  # a token server that holds the connection
            super().refresh(request)

    credentials = HungCredentials()
    config = ProviderConfig.model_validate(
        {
            "type": "vertex",
            "model": "sim-model",
            "project": "p",
            "endpoint": "http://127.0.0.1:9",
            "timeout": 0.2,
        }
    )
    provider = VertexProvider("vx", config, credentials=credentials)  # type: ignore[arg-type]
    try:
        kinds = await _timeouts(provider)
        answers = await _executor_answers()
    finally:
        release.set()
        await provider.aclose()
    assert kinds == [ErrorKind.TIMEOUT] * CALLS
    assert credentials.started == 1
    assert answers
