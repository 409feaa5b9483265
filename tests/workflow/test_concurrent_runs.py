"""Two runs writing the same output directory at once: the second is refused, whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from workflow_helpers import ROLES, Team, plan_files, write_config

from rolecall.cli import main
from rolecall.sim import SimServer

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock")


@pytest.fixture
def slow_sims() -> Iterator[dict[str, SimServer]]:
    """The three vendors, the coder's slow enough for a second run to start meanwhile."""
    team = Team(plan_files("a.py", "b.py", "c.py"))
    servers = {
        "gem": SimServer("google"),
        "claude": SimServer("anthropic"),
        "gpt": SimServer("openai", latency=2.0),
    }
    for server in servers.values():
        server.responder = team
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def start_run(tmp_path: Path, config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rolecall", "run", "-c", str(config), "--yes", "--offline", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


def wait_for_coder(sims: dict[str, SimServer], before: int = 0, timeout: float = 30.0) -> None:
    """Return once the coder's server has had a call more than ``before``."""
    deadline = time.monotonic() + timeout
    while sims["gpt"].calls <= before:
        assert time.monotonic() < deadline, "the first run never reached the coder"
        time.sleep(0.02)


def test_a_second_run_into_the_same_output_directory_is_refused_and_writes_nothing(
    tmp_path: Path, slow_sims: dict[str, SimServer], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, slow_sims, ROLES)
    spec = tmp_path / "spec.md"
    spec.write_text("# three modules\n\nThree tiny Python modules.\n")
    first = start_run(tmp_path, config, str(spec), "-o", "out")
    try:
        wait_for_coder(slow_sims)
        runs_before = _run_ids(tmp_path / "runs")

        code = main(["run", str(spec), "-c", str(config), "-o", str(tmp_path / "out"), "--yes"])

        err = capsys.readouterr().err
        assert code == 2
        [line] = err.strip().splitlines()
        assert "is in use by another rolecall run" in line and "pass -o another" in line
        # Nothing of the refused run was recorded: no state, no run log.
        assert _run_ids(tmp_path / "runs") == runs_before
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "REVIEW.md",
        "a.py",
        "b.py",
        "c.py",
    ]
    # Once the first run is over the directory is free again.
    again = main(["run", str(spec), "-c", str(config), "-o", str(tmp_path / "out"), "--yes"])
    assert again == 0


def test_the_same_run_resumed_twice_at_once_is_refused_the_second_time(
    tmp_path: Path, slow_sims: dict[str, SimServer], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, slow_sims, ROLES)
    spec = tmp_path / "spec.md"
    spec.write_text("# three modules\n\nThree tiny Python modules.\n")
    slow_sims["gpt"].api_key = "another-key"  # the first run fails at the coder
    out = str(tmp_path / "out")
    assert main(["run", str(spec), "-c", str(config), "-o", out, "--offline", "--yes"]) == 1
    [run_id] = [p.name for p in (tmp_path / "runs").glob("[!.]*") if p.is_dir()]
    log = tmp_path / "runs" / f"{run_id}.jsonl"
    slow_sims["gpt"].api_key = "test-key"
    capsys.readouterr()

    calls = slow_sims["gpt"].calls
    first = start_run(tmp_path, config, "--resume", run_id)
    try:
        wait_for_coder(slow_sims, calls)
        code = main(["run", "--resume", run_id, "-c", str(config), "--offline"])
        err = capsys.readouterr().err
        assert code == 2 and "is in use by another rolecall run" in err
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    # The first run and its resume each opened and closed the run once; the refused
    # resume added no run_start or run_end (the resume still running writes meanwhile).
    types = [json.loads(line)["type"] for line in log.read_text().splitlines()]
    assert (types.count("run_start"), types.count("run_end")) == (2, 2)


def _run_ids(runs: Path) -> set[str]:
    """The runs a folder holds (their state folders and logs), whatever the first run,
    still going, adds of its own meanwhile (its log, its writer lock)."""
    return {p.name.removesuffix(".jsonl") for p in runs.iterdir() if not p.name.startswith(".")}
