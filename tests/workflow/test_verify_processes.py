"""Nothing a check starts outlives it: not a background job, not a daemon that left its
process group, not even when rolecall itself is killed mid-verify."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workflow_helpers import ROLES, Team, plan_files, write_config

from rolecall.sim import SimServer
from rolecall.workflow import Workflow
from rolecall.workflow.verify import network_isolation


def sleeper(pid_file: str, *, setsid: bool = False) -> str:
    """A check that starts ``sleep 60`` in the background, its output closed, and ends
    once the sleeper wrote its pid (as /proc numbers it, whatever PID namespace the
    check is in)."""
    start = "setsid sh" if setsid else "sh"
    body = f"read -r pid _ < /proc/self/stat; echo $pid > {pid_file}; exec sleep 60"
    wait = f"while [ ! -s {pid_file} ]; do sleep 0.01; done"
    return f"{start} -c '{body}' > /dev/null 2>&1 < /dev/null & {wait}; echo started"


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def pid_in(path: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written")


def contained() -> bool:
    return "--kill-child" in network_isolation().prefix


async def test_background_jobs_a_check_leaves_are_killed_when_it_ends(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    for server in sims.values():
        server.responder = Team(plan_files("a.py"))
    checks = [sleeper("job.pid")]
    if contained():
        checks.append(sleeper("daemon.pid", setsid=True))
    config = write_config(tmp_path, sims, ROLES, workflow={"verify": checks, "max_fix_rounds": 0})
    out = tmp_path / "out"
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)
    assert result.checks["status"] == "passed"
    pids = [pid_in(out / "job.pid")]
    if contained():
        pids.append(pid_in(out / "daemon.pid"))
    try:
        assert [pid for pid in pids if running(pid)] == []
    finally:
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_killing_rolecall_mid_verify_kills_the_check(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    if "--pdeathsig" not in network_isolation().prefix:
        pytest.skip(f"checks are not tied to rolecall's life here: {network_isolation()}")
    for server in sims.values():
        server.responder = Team(plan_files("a.py"))
    hang = "sh -c 'read -r pid _ < /proc/self/stat; echo $pid > check.pid; exec sleep 60'"
    config = write_config(
        tmp_path, sims, ROLES, workflow={"verify": [hang], "verify_timeout": "120s"}
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "rolecall", "run", str(spec_file), "-c", str(config)]
    proc = subprocess.Popen(
        [*command, "-o", str(out), "--yes", "--offline"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        check = pid_in(out / "check.pid", timeout=30)
        assert running(check)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while running(check) and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            assert not running(check)  # not left to run past its time limit
        finally:
            if running(check):
                os.kill(check, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
