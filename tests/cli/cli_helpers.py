"""What the CLI tests share: running a command in-process, strict JSON, a store to read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rolecall.cli import main
from rolecall.recording.store import open_store

# Where the CLI finds the metrics store in a project without a config file.
DEFAULT_STORE = "sqlite:///.rolecall/rolecall.db"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``rolecall ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON every parser reads: ``NaN`` or ``Infinity`` fail the test."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def store_events(*events: Any) -> None:
    """Record ``events`` in the default store of the current directory."""
    with open_store(DEFAULT_STORE) as store:
        store.record(list(events))
