"""`ask --stream` prints a character whose surrogate pair the provider split between two
chunks (was: a terminal cannot encode a lone half: a traceback mid-answer)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from raw_providers import ChatStreamProvider

SPLIT_PAIR = [
    {"choices": [{"index": 0, "delta": {"content": "a\ud83d"}}]},
    {"choices": [{"index": 0, "delta": {"content": "\ude00b"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]


@pytest.fixture
def provider() -> Iterator[ChatStreamProvider]:
    server = ChatStreamProvider(SPLIT_PAIR)
    yield server
    server.close()


def test_ask_stream_prints_a_character_split_across_chunks(
    provider: ChatStreamProvider, tmp_path: Path
) -> None:
    config = tmp_path / "rolecall.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "p": {"type": "openai-compatible", "model": "m", "base_url": provider.base_url}
                },
                "roles": {"coder": {"provider": "p"}},
            }
        )
    )
    # A real process: its stdout encodes as a terminal's does, strictly.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rolecall",
            "ask",
            "coder",
            "hi",
            "--stream",
            "--offline",
            "-c",
            str(config),
        ],
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "a\U0001f600b"
