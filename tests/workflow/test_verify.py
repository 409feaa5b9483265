"""The verify stage: checks on the written code, fix rounds from their failures, REVIEW.md."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import ROLES, Team, plan_files, write_config

from rolecall.sim import SimServer
from rolecall.workflow import Workflow
from rolecall.workflow.verify import network_isolation

_FILE = re.compile(r"File to (write|fix): `([^`]+)`")

WRONG = "def add(a, b):\n    return a - b\n"
RIGHT = "def add(a, b):\n    return a + b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


class Coder:
    """``calc.py`` wrong at first, right once fixed; ``test_calc.py`` always the same."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.prompts: list[str] = []

    def __call__(self, body: dict[str, Any]) -> str:
        text = json.dumps(body)
        found = _FILE.search(text)
        if "You are the coder" not in text or found is None:
            return self.team(body)
        self.prompts.append(text)
        if found.group(2) == "test_calc.py":
            return TEST
        return RIGHT if found.group(1) == "fix" else WRONG


def use(team: Any, sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        server.responder = team


def records_of(result: Any) -> dict[str, Any]:
    return {r.name: r for r in result.records}


async def test_failing_tests_go_back_to_the_coder_and_the_fix_passes(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    files = plan_files("calc.py", "test_calc.py", deps={"test_calc.py": ["calc.py"]})
    coder = Coder(Team(files))
    team = coder.team
    use(coder, sims)
    config = write_config(tmp_path, sims, ROLES)
    out = tmp_path / "out"
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)

    assert result.status == "ok", [(r.name, r.status, r.error) for r in result.records]
    records = records_of(result)
    first, second = records["verify@1"].result, records["verify@2"].result
    assert first["status"] == "failed" and first["source"] == "detected"
    pytest_run = next(c for c in first["commands"] if " pytest " in c["command"])
    assert pytest_run["status"] == "failed" and "assert -1 == 5" in pytest_run["output"]
    assert first["named"] == ["test_calc.py"]
    assert second["status"] == "passed"
    # One fix round, for the files the failing output names, with that output.
    fixes = [name for name in records if name.startswith("fix:")]
    # The failing test names itself; the module it depends on in the plan is fixed too.
    assert sorted(fixes) == ["fix:calc.py@v1", "fix:test_calc.py@v1"]
    fix_prompt = next(p for p in coder.prompts if "File to fix: `calc.py`" in p)
    assert "assert -1 == 5" in fix_prompt
    assert (out / "calc.py").read_text() == RIGHT
    assert not (out / "__pycache__").exists()  # checks leave no bytecode in the output
    # The reviewer saw the checks' final result.
    review_prompt = next(t for role, t in team.prompts if role == "reviewer")
    assert "Automatic checks run on the output" in review_prompt and "passed" in review_prompt
    assert records["review:calc.py"].result["verify"] == "verify@2"
    review = (out / "REVIEW.md").read_text()
    assert "Final: **passed** (verify@2)" in review
    assert "Commands detected from the plan; " in review
    assert "- verify@1: failed" in review and "- verify@2: passed" in review
    assert result.checks["status"] == "passed" and result.checks["fix_rounds"] == 1
    saved = json.loads((result.run_dir / "state.json").read_text())
    assert saved["tasks"]["verify@1"]["result"]["status"] == "failed"


async def test_checks_that_still_fail_after_the_fix_rounds_are_reported(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    team = Team(plan_files("a.py"))
    use(team, sims)
    config = write_config(
        tmp_path,
        sims,
        ROLES,
        workflow={"verify": ["echo a.py is wrong; exit 3"], "max_fix_rounds": 2},
    )
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "partial"
    names = [r.name for r in result.records]
    assert [n for n in names if n.startswith("verify@")] == ["verify@1", "verify@2", "verify@3"]
    assert team.by_path[("coder", "a.py")] == 3  # generated, then fixed twice
    assert result.checks["status"] == "failed" and result.checks["source"] == "config"
    assert result.checks["commands"][0]["exit_code"] == 3
    review = (tmp_path / "out" / "REVIEW.md").read_text()
    assert "Final: **failed** (verify@3)" in review and "failed (exit 3)" in review
    assert "Commands from workflow.verify in the config; " in review


async def test_a_hanging_check_is_stopped_at_the_limit_with_everything_it_started(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    use(Team(plan_files("a.py")), sims)
    # The sleeper notes its pid as /proc (the host's) numbers it: the check may run in
    # its own PID namespace, where $! is another number.
    hang = "sh -c 'read -r pid _ < /proc/self/stat; echo $pid > sleeper.pid; exec sleep 60' & wait"
    config = write_config(
        tmp_path,
        sims,
        ROLES,
        workflow={"verify": [hang, "true"], "verify_timeout": "500ms", "max_fix_rounds": 0},
    )
    out = tmp_path / "out"
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)
    commands = records_of(result)["verify@1"].result["commands"]
    assert commands[0]["status"] == "timeout" and commands[0]["seconds"] < 10
    assert "time limit" in commands[0]["output"]
    assert commands[1]["status"] == "passed"  # the next check still runs
    assert result.status == "partial" and result.checks["status"] == "failed"
    assert "stopped at the time limit" in (out / "REVIEW.md").read_text()
    sleeper = int((out / "sleeper.pid").read_text())
    assert not _running(sleeper)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        server.close()


async def test_a_check_cannot_reach_the_network_not_even_loopback(
    tmp_path: Path,
    sims: dict[str, SimServer],
    spec_file: Path,
    listener: tuple[int, list[object]],
) -> None:
    if not network_isolation().isolated:
        pytest.skip(f"no network namespace here: {network_isolation().note}")
    port, accepted = listener
    use(Team(plan_files("a.py")), sims)
    connect = f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 5)\""
    config = write_config(
        tmp_path, sims, ROLES, workflow={"verify": [connect], "max_fix_rounds": 0}
    )
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    verify = records_of(result)["verify@1"].result
    assert verify["status"] == "failed"
    assert "Network is unreachable" in verify["commands"][0]["output"]
    assert verify["network"].startswith("no network (") and "unshare" in verify["network"]
    assert accepted == []


async def test_checks_see_a_clean_environment(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(Team(plan_files("a.py")), sims)
    config = write_config(tmp_path, sims, ROLES, workflow={"verify": ["env > env.txt"]})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("ROLECALL_CONFIG", str(config))
    out = tmp_path / "out"
    await Workflow(config_path=config, output_dir=out).run(spec_file)
    env = dict(line.split("=", 1) for line in (out / "env.txt").read_text().splitlines())
    assert "sk-parent-secret" not in json.dumps(env)
    assert not any(key.startswith("ROLECALL_") for key in env)
    assert {"PATH", "HOME", "LANG", "TMPDIR"} <= set(env)
    assert env["HOME"] != os.environ.get("HOME")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(os.sys.executable).parent)


async def test_checks_named_by_the_spec_win_and_none_means_not_run(
    tmp_path: Path, sims: dict[str, SimServer]
) -> None:
    use(Team(plan_files("notes.txt")), sims)
    config = write_config(tmp_path, sims, ROLES, workflow={"verify": ["exit 1"]})
    spec = tmp_path / "spec.md"
    spec.write_text("# tool\n\nA tool.\n\n## Verify\n\n```\ntest -f notes.txt\n```\n")
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec)
    assert result.checks["status"] == "passed" and result.checks["source"] == "spec"
    assert result.checks["commands"][0]["command"] == "test -f notes.txt"

    plain = tmp_path / "plain.md"
    plain.write_text("# tool\n\nA tool.\n")
    detect = write_config(tmp_path, sims, ROLES, name="detect.yaml")
    again = await Workflow(config_path=detect, output_dir=tmp_path / "out2").run(plain)
    assert again.status == "ok" and again.checks["status"] == "not run"
    assert "Not run: no .py file" in (tmp_path / "out2" / "REVIEW.md").read_text()
