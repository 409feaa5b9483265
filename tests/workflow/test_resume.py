"""A run killed (SIGKILL) or interrupted (Ctrl-C) mid-generation resumes without redoing work."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from workflow_helpers import Team, plan_files, write_config

from rolecall.sim import SimServer

FILES = [f"pkg/m{i}.py" for i in range(6)]
ROLES = {
    "clarifier": {"provider": "claude"},
    "planner": {"provider": "claude"},
    "reviewer": {"provider": "claude"},
    "coder": {"provider": "gpt"},
}


def start_run(
    tmp_path: Path, config: Path, spec: Path, *, ignore_sigint: bool = False
) -> subprocess.Popen[bytes]:
    """``rolecall run`` as a process; ``ignore_sigint``: started with SIGINT ignored, as
    ``nohup`` and ``cmd &`` in a script start it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rolecall",
            "run",
            str(spec),
            "-c",
            str(config),
            "-o",
            "out",
            "--yes",
            "--offline",
            "--max-parallel",
            "2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
        # A shell's background job starts with SIGINT ignored, and Python then never raises
        # KeyboardInterrupt: give the child the default, as a terminal would, unless asked.
        preexec_fn=functools.partial(
            signal.signal, signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
        ),
    )


def wait_for_generated(tmp_path: Path, count: int, timeout: float = 30.0) -> tuple[Path, dict]:
    """The state file once at least ``count`` generate tasks finished in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (tmp_path / "runs").glob("*/state.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            done = [
                t
                for t in state["tasks"].values()
                if t["stage"] == "generate" and t["status"] == "ok"
            ]
            if len(done) >= count:
                return path, state
        time.sleep(0.02)
    raise AssertionError("the run did not generate files in time")


def generated(state: dict) -> set[str]:
    return {
        t["result"]["path"]
        for t in state["tasks"].values()
        if t["stage"] == "generate" and t["status"] == "ok"
    }


@pytest.fixture
def setup(tmp_path: Path):
    team = Team(plan_files(*FILES))
    claude = SimServer("anthropic").start()
    gpt = SimServer("openai", latency=0.3).start()
    claude.responder = gpt.responder = team
    config = write_config(tmp_path, {"claude": claude, "gpt": gpt}, ROLES)
    spec = tmp_path / "spec.md"
    spec.write_text("# six modules\n\nSix tiny Python modules.\n")
    try:
        yield team, gpt, config, spec
    finally:
        claude.stop()
        gpt.stop()


def resume(tmp_path: Path, config: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rolecall", "run", "--resume", run_id, "-c", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sigkill_during_generation_then_resume(tmp_path: Path, setup) -> None:
    team, gpt, config, spec = setup
    process = start_run(tmp_path, config, spec)
    try:
        state_path, _ = wait_for_generated(tmp_path, 2)
    finally:
        process.kill()  # SIGKILL: no cleanup at all
        process.wait(10)
    state = json.loads(state_path.read_text())
    done = generated(state)
    assert 2 <= len(done) < len(FILES)
    # A file written just before the kill, whose task the state had no time to save, is
    # kept as any file the run finds there: only the files missing are asked for.
    on_disk = {path for path in FILES if (tmp_path / "out" / path).is_file()}
    calls_before = Counter(team.by_path)
    gpt.reset_stats()

    finished = resume(tmp_path, config, state["run_id"])
    assert finished.returncode == 0, finished.stderr
    assert "status: ok" in finished.stdout
    for path in FILES:
        assert (tmp_path / "out" / path).is_file()
    for path in done:  # finished files were not generated again
        assert team.by_path[("coder", path)] == calls_before[("coder", path)]
    assert gpt.calls == len(FILES) - len(on_disk)
    assert json.loads(state_path.read_text())["status"] == "ok"


def test_ctrl_c_saves_state_prints_the_resume_command_and_exits_130(tmp_path: Path, setup) -> None:
    team, _gpt, config, spec = setup
    process = start_run(tmp_path, config, spec)
    state_path, _ = wait_for_generated(tmp_path, 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr.decode()
    state = json.loads(state_path.read_text())
    run_id = state["run_id"]
    assert f"resume with: rolecall run --resume {run_id}" in stderr.decode()
    assert state["status"] == "interrupted"
    assert "Traceback" not in stderr.decode()
    done = generated(state)

    finished = resume(tmp_path, config, run_id)
    assert finished.returncode == 0, finished.stderr
    for path in FILES:
        assert (tmp_path / "out" / path).is_file()
    for path in done:
        assert team.by_path[("coder", path)] == 1
