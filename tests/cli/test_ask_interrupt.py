"""``rolecall ask`` stopped (Ctrl-C, SIGTERM, its terminal closed) while its call is in
flight: a one-line message, exit 130, and the call recorded as cancelled in a run closed
``interrupted`` (not ``failed`` or ``abandoned``)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rolecall.recording.runlog import list_runs
from rolecall.recording.store import open_store
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


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_a_stop_mid_call_closes_the_run_interrupted_and_exits_130(
    tmp_path: Path, held: SimServer, stream: bool, signum: int
) -> None:
    ask = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "ask", "coder", "hi", "--offline"]
        + (["--stream"] if stream else []),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
        # As a terminal starts it, whatever the test runner ignores.
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for(lambda: held.calls == 1)
    ask.send_signal(signum)
    _, err = ask.communicate(timeout=30)
    text = err.decode()
    assert ask.returncode == 130, text
    assert "Traceback" not in text
    [run] = list_runs(tmp_path / ".rolecall" / "runs")
    assert text.strip().splitlines() == [
        f"interrupted: the call was stopped; run {run.run_id} is recorded as interrupted"
    ]
    assert (run.kind, run.status) == ("ask", "interrupted")
    assert run.path is not None
    records = [json.loads(line) for line in run.path.read_text().splitlines()]
    assert [r["outcome"] for r in records if r.get("type") == "attempt"] == ["cancelled"]


def test_a_sigterm_once_the_work_is_done_ends_the_process_without_a_traceback(
    tmp_path: Path,
) -> None:
    # The loop has closed (a summary is being printed): there is no task left to cancel.
    script = (
        "import os, signal, time\n"
        "from rolecall.cli._common import run_stoppable\n"
        "async def work():\n"
        "    return 0\n"
        "run_stoppable(work)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(60)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "Traceback" not in done.stderr


def test_a_reader_gone_mid_stream_ends_ask_quietly_with_the_call_recorded(
    tmp_path: Path,
) -> None:
    """``rolecall ask coder PROMPT --stream | head -c 10``: far more text than a pipe holds."""
    with SimServer("openai", models=("gpt-sim",), reply=" ".join(["word"] * 100_000)) as gpt:
        (tmp_path / "rolecall.yaml").write_text(
            f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: test-key, base_url: "{gpt.base_url}"}}
roles:
  coder: {{provider: gpt}}
"""
        )
        with subprocess.Popen(
            [sys.executable, "-m", "rolecall", "ask", "coder", "hi", "--offline", "--stream"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
        ) as ask:
            assert ask.stdout is not None and ask.stderr is not None
            assert ask.stdout.read(10) == b"word word "
            ask.stdout.close()
            err = ask.stderr.read().decode()
            code = ask.wait(timeout=60)
    assert err == ""
    assert code == 0
    [run] = list_runs(tmp_path / ".rolecall" / "runs")
    assert run.path is not None
    records = [json.loads(line) for line in run.path.read_text().splitlines()]
    assert [r["outcome"] for r in records if r.get("type") == "attempt"] == ["cancelled"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_stop_while_the_last_records_are_written_waits_for_them(
    tmp_path: Path, held: SimServer, signum: int
) -> None:
    """Ctrl-C twice, the second while the store (held by another process) takes the last
    records: they are written all the same, then the command stops (it lost them before,
    leaving the run ``abandoned`` with no attempt in the store)."""
    url = f"sqlite:///{tmp_path / '.rolecall' / 'rolecall.db'}"
    open_store(url).close()
    ask = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "ask", "coder", "hi", "--offline"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for(lambda: held.calls == 1)
    with open_store(url) as store:
        _wait_for(lambda: bool(store.runs()))  # the run's start is stored
    [run] = list_runs(tmp_path / ".rolecall" / "runs")
    assert run.path is not None
    path = run.path
    holder = sqlite3.connect(str(tmp_path / ".rolecall" / "rolecall.db"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the store now makes every writer wait
    try:
        ask.send_signal(signum)
        # In the run log: the writer is past it, waiting on the store.
        _wait_for(lambda: '"outcome":"cancelled"' in path.read_text())
        ask.send_signal(signum)
    finally:
        holder.execute("COMMIT")
        holder.close()
    _, err = ask.communicate(timeout=60)
    text = err.decode()
    assert ask.returncode in (130, -signum), text
    assert "Traceback" not in text
    assert "Ctrl-C again to stop now" in text
    with open_store(url) as store:
        stored = store.run(run.run_id)
    assert stored is not None
    assert stored.status == "interrupted"
    assert [a.outcome for task in stored.tasks for a in task.attempts] == ["cancelled"]
