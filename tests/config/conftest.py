from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Keys the examples read; fake values, never sent anywhere.
EXAMPLE_ENV = {
    "OPENAI_API_KEY": "sk-test-openai-0000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-0000000000",
    "GOOGLE_API_KEY": "test-google-key-000000",
    "GEMINI_API_KEY": "test-gemini-key-000000",
}


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def _write(text: str, name: str = "rolecall.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture
def example_env() -> dict[str, str]:
    return dict(EXAMPLE_ENV)
