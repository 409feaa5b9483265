"""``rolecall run`` asking its clarifying questions at a terminal: a stop signal at the
prompt stops the run (state saved, exit 130), and input ending there is one clear line."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from workflow_helpers import SPEC, Team, plan_files, write_config

from rolecall.sim import SimServer

ROLES = {role: {"provider": "claude"} for role in ("clarifier", "planner", "reviewer", "coder")}
QUESTIONS = [
    {"id": "name", "question": "Whom to greet?", "default": "world"},
    {"id": "lang", "question": "Which language?", "default": "en"},
]


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    with SimServer("anthropic") as claude:
        claude.responder = Team(plan_files("a.py"), questions=QUESTIONS)
        (tmp_path / "spec.md").write_text(SPEC)
        yield write_config(tmp_path, {"claude": claude}, ROLES)


class Terminal:
    """``rolecall run`` with a pseudo-terminal as its stdin and stderr, as a user starts it."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rolecall", "run", "spec.md", "-c", str(config), "--offline"],
            cwd=tmp_path,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env={**os.environ, "NO_COLOR": "1"},
        )
        os.close(slave)
        self.seen = b""

    def wait_for(self, text: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"never shown: {text!r} in {self.seen[-500:]!r}"
            if select.select([self.master], [], [], 0.1)[0]:
                self.seen += os.read(self.master, 65536)

    def finish(self) -> tuple[int, str]:
        """Exit code and what reached the terminal, the process killed if it hangs."""
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"still waiting at the prompt: {self.seen[-300:]!r}")
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            self.seen += chunk
        os.close(self.master)
        return self.process.returncode, self.seen.decode(errors="replace")


def saved_state(tmp_path: Path) -> dict:
    [path] = (tmp_path / "runs").glob("*/state.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
@pytest.mark.parametrize("answered", [0, 1], ids=["first-question", "second-question"])
def test_a_stop_at_the_prompt_saves_the_run_and_exits_130(
    tmp_path: Path, config: Path, signum: int, answered: int
) -> None:
    terminal = Terminal(tmp_path, config)
    terminal.wait_for(b"Whom to greet? [name]")
    if answered:
        os.write(terminal.master, b"bob\r")
        terminal.wait_for(b"Which language? [lang]")
    time.sleep(0.2)  # the prompt is reading now
    terminal.process.send_signal(signum)
    code, seen = terminal.finish()

    assert code == 130, seen
    state = saved_state(tmp_path)
    assert f"interrupted: state saved; resume with: rolecall run --resume {state['run_id']}" in seen
    assert "Traceback" not in seen and "Aborted" not in seen
    assert state["status"] == "interrupted"
    assert state["tasks"]["clarify"]["status"] == "pending"


def test_input_ending_at_the_prompt_is_one_line_naming_the_question_and_the_fix(
    tmp_path: Path, config: Path
) -> None:
    terminal = Terminal(tmp_path, config)
    terminal.wait_for(b"Whom to greet? [name]")
    time.sleep(0.2)
    os.write(terminal.master, b"\x04")  # Ctrl-D: end of input
    code, seen = terminal.finish()

    assert code == 2, seen
    run_id = saved_state(tmp_path)["run_id"]
    assert (
        "error: no answer to the question 'name' (the input ended): "
        f"resume with rolecall run --resume {run_id}"
    ) in seen
    assert "Traceback" not in seen and "Abort" not in seen
