"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no config file: the default store path is used."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    return tmp_path
