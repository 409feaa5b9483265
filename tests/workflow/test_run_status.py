"""A run's recorded status after its process ends badly: SIGTERM -> ``interrupted``
(resumable, exit 130); SIGKILL -> ``abandoned`` in ``runs list`` and ``runs show``."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_resume import FILES, ROLES, generated, start_run, wait_for_generated
from workflow_helpers import Team, plan_files, write_config

from rolecall.sim import SimServer


class SlowAfter:
    """The team's answers, the coder's after its first ``fast`` calls held for ``hold`` s:
    the run is surely still going when it is stopped."""

    def __init__(self, team: Team, fast: int = 2, hold: float = 60.0) -> None:
        self.team, self.fast, self.hold = team, fast, hold

    async def __call__(self, body: dict[str, Any]) -> str:
        answer = self.team(body)
        if self.team.calls["coder"] > self.fast:
            await asyncio.sleep(self.hold)
        return answer


@pytest.fixture
def slow_run(tmp_path: Path):
    """A workflow on sims whose coder stops answering after two files."""
    team = Team(plan_files(*FILES))
    claude = SimServer("anthropic").start()
    gpt = SimServer("openai").start()
    claude.responder = team
    gpt.responder = SlowAfter(team)
    config = write_config(tmp_path, {"claude": claude, "gpt": gpt}, ROLES)
    spec = tmp_path / "spec.md"
    spec.write_text("# six modules\n\nSix tiny Python modules.\n")
    try:
        yield config, spec
    finally:
        claude.stop()
        gpt.stop()


def runs_cli(tmp_path: Path, config: Path, *args: str) -> object:
    done = subprocess.run(
        [sys.executable, "-m", "rolecall", "runs", *args, "-c", str(config), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def listed_status(tmp_path: Path, config: Path, run_id: str) -> str:
    rows = runs_cli(tmp_path, config, "list")
    assert isinstance(rows, list)
    return next(row["status"] for row in rows if row["run_id"] == run_id)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_records_the_run_interrupted_and_exits_130(
    tmp_path: Path, slow_run, sigint: str
) -> None:
    # SIGINT ignored (nohup, `cmd &` in a script): asyncio then installs no Ctrl-C handler,
    # and SIGTERM must stop the run all the same.
    config, spec = slow_run
    process = start_run(tmp_path, config, spec, ignore_sigint=sigint == "ignored")
    state_path, _ = wait_for_generated(tmp_path, 1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    text = stderr.decode()
    assert process.returncode == 130, text
    state = json.loads(state_path.read_text())
    run_id = state["run_id"]
    assert state["status"] == "interrupted"
    assert f"resume with: rolecall run --resume {run_id}" in text
    assert "Traceback" not in text
    assert 1 <= len(generated(state)) <= 2

    shown = runs_cli(tmp_path, config, "show", run_id)
    assert isinstance(shown, dict) and shown["status"] == "interrupted"
    assert listed_status(tmp_path, config, run_id) == "interrupted"


def test_sigkill_shows_the_run_abandoned(tmp_path: Path, slow_run) -> None:
    config, spec = slow_run
    process = start_run(tmp_path, config, spec)
    try:
        state_path, _ = wait_for_generated(tmp_path, 1)
        run_id = json.loads(state_path.read_text())["run_id"]
        # While the process lives, the run is running.
        assert listed_status(tmp_path, config, run_id) == "running"
    finally:
        process.kill()  # SIGKILL: no handler runs, no end record is written
        process.wait(10)

    assert listed_status(tmp_path, config, run_id) == "abandoned"
    shown = runs_cli(tmp_path, config, "show", run_id)
    assert isinstance(shown, dict) and shown["status"] == "abandoned"
    assert all(task["status"] != "running" for task in shown["tasks"])


def test_sighup_a_closed_terminal_records_the_run_interrupted_and_exits_130(
    tmp_path: Path, slow_run
) -> None:
    config, spec = slow_run
    process = start_run(tmp_path, config, spec)
    state_path, _ = wait_for_generated(tmp_path, 1)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    assert "Traceback" not in stderr.decode()
    state = json.loads(state_path.read_text())
    run_id = state["run_id"]
    assert state["status"] == "interrupted"
    assert listed_status(tmp_path, config, run_id) == "interrupted"
    assert not list((tmp_path / "runs" / ".writers").glob("*.lock"))


def _coder_calls_in_flight(db: Path) -> int:
    """The coder's calls whose start the store holds and whose end it does not (yet)."""
    import sqlite3

    if not db.is_file():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("SELECT COUNT(*) FROM attempt_starts WHERE role = 'coder'").fetchone()[0]
        )
    except sqlite3.OperationalError:  # no such table
        return 0
    finally:
        conn.close()


def test_sigkill_mid_call_keeps_the_calls_in_flight_as_cancelled(tmp_path: Path) -> None:
    """The coder's held calls reached the provider: after the kill, each is a ``cancelled``
    attempt of an ``incomplete`` task, and a failed request in the metrics."""
    team = Team(plan_files(*FILES))
    with SimServer("anthropic") as claude, SimServer("openai") as gpt:
        claude.responder = team
        gpt.responder = SlowAfter(team)
        config = write_config(tmp_path, {"claude": claude, "gpt": gpt}, ROLES)
        spec = tmp_path / "spec.md"
        spec.write_text("# six modules\n\nSix tiny Python modules.\n")
        process = start_run(tmp_path, config, spec)
        try:
            deadline = time.monotonic() + 60
            while _coder_calls_in_flight(tmp_path / "metrics.db") == 0:
                assert time.monotonic() < deadline, "no call in flight was ever stored"
                assert process.poll() is None, "the run ended before a call was held"
                time.sleep(0.02)
        finally:
            process.kill()
            process.wait(10)
        run_id = json.loads(next((tmp_path / "runs").glob("*/state.json")).read_text())["run_id"]

        shown = runs_cli(tmp_path, config, "show", run_id)
        assert isinstance(shown, dict) and shown["status"] == "abandoned"
        cut_short = [
            (task, attempt)
            for task in shown["tasks"]
            for attempt in task["attempts"]
            if attempt["outcome"] == "cancelled"
        ]
        assert any(task["role"] == "coder" for task, _ in cut_short)
        for task, attempt in cut_short:
            assert (task["status"], attempt["error_kind"]) == ("incomplete", None)
            assert attempt["provider"] == ("gpt" if task["role"] == "coder" else "claude")
        done = subprocess.run(
            [sys.executable, "-m", "rolecall", "metrics", "-c", str(config), "--format", "json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        assert sum(row["errors"].get("cancelled", 0) for row in rows) == len(cut_short)
        assert sum(row["failures"] for row in rows) == len(cut_short)
        [coder] = [row for row in rows if row["role"] == "coder"]
        assert coder["requests"] <= gpt.calls
