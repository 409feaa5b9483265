"""Recording fixtures: the run log written with orjson (the gateway extra's) and without,
and a run-writer process for the relay tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_helpers import Writer, relay_metrics, start_writer

from rolecall.recording import _runlog_lines


@pytest.fixture(params=["orjson", "stdlib"])
def line_writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which writes the run log's event lines: orjson when installed, or the standard
    library's path as on an install without it (orjson made unimportable)."""
    if request.param == "orjson":
        pytest.importorskip("orjson", reason="orjson comes with rolecall[gateway]")
    else:
        monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson: ImportError
    _runlog_lines._orjson_dumps.cache_clear()
    yield str(request.param)
    monkeypatch.undo()
    _runlog_lines._orjson_dumps.cache_clear()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    """A run-writer process of ``serve --workers`` on a socket under ``tmp_path``; killed
    afterwards if a test left it running."""
    started = start_writer(str(tmp_path / "records.sock"), relay_metrics(tmp_path))
    yield started
    if started.proc.poll() is None:
        started.proc.kill()
        started.proc.wait()
