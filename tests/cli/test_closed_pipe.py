"""A data command whose reader goes away (``rolecall metrics | head -1``) ends quietly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import store_events

from factories import attempt_event

NOW = time.time()
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("metrics", "--by", "model"), id="metrics"),
        pytest.param(("metrics", "--by", "model", "--format", "csv"), id="csv"),
        pytest.param(("runs", "list", "-n", "3000"), id="runs-list"),
    ],
)
def test_a_closed_pipe_ends_the_command_with_0_and_no_noise(
    project: Path, args: tuple[str, ...]
) -> None:
    """``rolecall metrics | head -1``: far more output than a pipe buffers."""
    store_events(
        *(attempt_event(run_id=f"run-{n}", model=f"model-{n:05d}", ts=NOW - n) for n in range(3000))
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    with subprocess.Popen(
        [sys.executable, "-m", "rolecall", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=project,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert err == b""
    assert code == 0
