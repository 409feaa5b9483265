"""``rolecall ask`` killed (SIGKILL) while its call is in flight: the provider was called,
and may bill the work, so the records keep the call. Its run is ``abandoned``, its task
``incomplete`` with the call ``cancelled`` (ended on rolecall's side), and the metrics
count it as a request and a failure, once, whichever process reads or writes first."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rolecall.sim import SimServer


async def _never_answers(body: dict[str, Any]) -> str:
    await asyncio.sleep(3600)
    return "too late"


@pytest.fixture
def held(tmp_path: Path) -> Iterator[SimServer]:
    """A provider that takes the request and does not answer."""
    with SimServer("openai", models=("gpt-sim",)) as gpt:
        gpt.responder = _never_answers
        (tmp_path / "rolecall.yaml").write_text(
            f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: test-key, base_url: "{gpt.base_url}",
         timeout: 1h}}
roles:
  coder: {{provider: gpt}}
"""
        )
        yield gpt


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _start_logged(runs_dir: Path) -> bool:
    """Has the recorder written the call's start to the run log (the flush after the call
    began)?"""
    return any('"attempt_start"' in path.read_text() for path in runs_dir.glob("*.jsonl"))


def _start_stored(db: Path) -> bool:
    """Has the recorder written the call's start to the store (after the run log)?"""
    if not db.is_file():
        return False
    conn = sqlite3.connect(db)
    try:
        return bool(conn.execute("SELECT COUNT(*) FROM attempt_starts").fetchone()[0])
    except sqlite3.OperationalError:  # no such table (yet)
        return False
    finally:
        conn.close()


def _cli(tmp_path: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "rolecall", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_a_call_in_flight_at_a_kill_is_recorded_cancelled_and_counted_once(
    tmp_path: Path, held: SimServer, stream: bool
) -> None:
    ask = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "ask", "coder", "hi", "--offline"]
        + (["--stream"] if stream else []),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        _wait_for(lambda: held.calls == 1, "the provider never got the call")
        db = tmp_path / ".rolecall" / "rolecall.db"
        _wait_for(lambda: _start_stored(db), "the call's start was never stored")
    finally:
        ask.kill()  # SIGKILL: no handler runs, the call never ends in this process
        ask.wait(30)

    [listed] = _cli(tmp_path, "runs", "list", "--json")
    shown = _cli(tmp_path, "runs", "show", listed["run_id"], "--json")
    assert shown["status"] == "abandoned"
    [task] = shown["tasks"]
    assert (task["role"], task["status"], task["provider"]) == ("coder", "incomplete", "gpt")
    [attempt] = task["attempts"]
    assert (attempt["provider"], attempt["attempt"]) == ("gpt", 1)
    assert (attempt["outcome"], attempt["error_kind"]) == ("cancelled", None)
    assert attempt["latency_ms"] >= 0

    for _ in range(2):  # read twice: closed once, counted once
        [row] = _cli(tmp_path, "metrics", "--format", "json")
        assert (row["provider"], row["role"]) == ("gpt", "coder")
        assert (row["requests"], row["successes"], row["failures"]) == (1, 0, 1)
        assert row["errors"] == {"cancelled": 1}
    [listed] = _cli(tmp_path, "runs", "list", "--json")
    assert (listed["status"], listed["attempts"], listed["handovers"]) == ("abandoned", 1, 0)


def test_the_run_log_alone_shows_the_call_a_kill_cut_short(tmp_path: Path, held: SimServer) -> None:
    """With no store to read (moved aside), ``runs show`` rebuilds the run from its log."""
    ask = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "ask", "coder", "hi", "--offline"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    runs_dir = tmp_path / ".rolecall" / "runs"
    try:
        _wait_for(lambda: held.calls == 1, "the provider never got the call")
        _wait_for(lambda: _start_logged(runs_dir), "the call's start was never logged")
    finally:
        ask.kill()
        ask.wait(30)
    for path in (tmp_path / ".rolecall").glob("rolecall.db*"):
        path.unlink()
    [log] = runs_dir.glob("*.jsonl")
    shown = _cli(tmp_path, "runs", "show", log.stem, "--json")
    assert shown["status"] == "abandoned"
    [task] = shown["tasks"]
    assert task["status"] == "incomplete"
    assert [(a["outcome"], a["error_kind"]) for a in task["attempts"]] == [("cancelled", None)]
