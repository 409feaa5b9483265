"""`runs show`, `runs list` and the dashboard give each workflow task the status the
workflow concluded (its state.json), while `metrics` still counts the provider's calls."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import ROLES, Team, plan_files, write_config

from rolecall.cli import main
from rolecall.dashboard.server import DashboardServer
from rolecall.recording.runlog import read_run, run_log_path
from rolecall.sim import Fault, SimServer
from rolecall.workflow import Workflow


def use(team: Team, sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        server.responder = team


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def api(url: str) -> Any:
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def assert_agree(
    tmp_path: Path, config: Path, result: Any, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """Every view of the run gives each task the state file's status; returns runs show."""
    saved = json.loads((result.run_dir / "state.json").read_text())
    tasks = {name: t for name, t in saved["tasks"].items() if t["status"] != "pending"}
    failed = sorted(n for n, t in tasks.items() if t["status"] in ("failed", "blocked"))

    shown = cli_json(capsys, "runs", "show", result.run_id, "--json", "-c", str(config))
    assert shown["status"] == saved["status"]
    by_id = {t["task_id"]: t for t in shown["tasks"]}
    assert {n: by_id[n]["status"] for n in tasks} == {n: t["status"] for n, t in tasks.items()}
    for name in failed:
        assert by_id[name]["error"] == tasks[name]["error"]
    for name, task in tasks.items():
        assert by_id[name]["note"] == task["note"]

    listed = cli_json(capsys, "runs", "list", "--json", "-c", str(config))
    row = next(r for r in listed if r["run_id"] == result.run_id)
    assert (row["status"], row["tasks"], row["tasks_failed"]) == (
        saved["status"],
        len(tasks),
        len(failed),
    )

    # The run log alone (no store) tells the same.
    logged = read_run(run_log_path(tmp_path / "runs", result.run_id))
    assert {t.task_id: t.status for t in logged.tasks} == {n: t["status"] for n, t in tasks.items()}
    assert logged.to_dict()["tasks"] == shown["tasks"]

    dashboard = DashboardServer(f"sqlite:///{tmp_path / 'metrics.db'}").start()
    try:
        assert api(f"{dashboard.url}/api/runs/{result.run_id}") == shown
        assert row in api(f"{dashboard.url}/api/runs")
    finally:
        dashboard.stop()
    return shown


async def test_a_plan_still_invalid_shows_failed_while_the_planner_calls_count_as_answered(
    tmp_path: Path,
    sims: dict[str, SimServer],
    spec_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = json.dumps({"files": []})
    use(Team([], plans=[empty, empty, empty]), sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "failed"

    shown = assert_agree(tmp_path, config, result, capsys)
    plan = next(t for t in shown["tasks"] if t["task_id"] == "plan")
    assert plan["status"] == "failed" and "still invalid" in plan["error"]
    assert plan["provider"] == "claude" and len(plan["attempts"]) == 3

    # The provider answered every call: its success rate is about it, not the plan.
    rows = cli_json(capsys, "metrics", "--format", "json", "-c", str(config))
    planner = next(r for r in rows if (r["provider"], r["role"]) == ("claude", "planner"))
    assert (planner["requests"], planner["successes"], planner["failures"]) == (3, 3, 0)


async def test_a_refused_file_and_failing_checks_show_what_the_workflow_concluded(
    tmp_path: Path,
    sims: dict[str, SimServer],
    spec_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use(Team(plan_files("../evil.py", "a.py")), sims)
    config = write_config(
        tmp_path, sims, ROLES, workflow={"verify": ["exit 3"], "max_fix_rounds": 0}
    )
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "partial"

    shown = assert_agree(tmp_path, config, result, capsys)
    by_id = {t["task_id"]: t for t in shown["tasks"]}
    assert "1 refused" in by_id["plan"]["note"]
    # The checks ran no model call, and still are a task of the run.
    assert by_id["verify@1"]["note"] == "failed: 1 of 1"
    assert by_id["verify@1"]["attempts"] == [] and by_id["verify@1"]["provider"] is None
    assert by_id["verify@1"]["role"] is None  # as `run --json` gives it: no model, no role


async def test_a_blocked_task_shows_blocked_and_a_resumed_run_shows_what_it_finished(
    tmp_path: Path,
    sims: dict[str, SimServer],
    spec_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use(Team(plan_files("a.py")), sims)
    sims["gpt"].set_faults(Fault("bad_request"))
    sims["gpt2"].set_faults(Fault("bad_request"))
    config = write_config(tmp_path, sims, ROLES)
    workflow = Workflow(config_path=config, output_dir=tmp_path / "out")
    first = await workflow.run(spec_file)
    assert first.status == "failed"
    shown = assert_agree(tmp_path, config, first, capsys)
    by_id = {t["task_id"]: t for t in shown["tasks"]}
    assert by_id["verify@1"]["status"] == "blocked"
    assert by_id["verify@1"]["error"] == "dependency failed: generate:a.py"

    for server in sims.values():
        server.clear()
    second = await workflow.resume(first.run_id)
    assert second.status == "ok"
    shown = assert_agree(tmp_path, config, second, capsys)
    assert {t["status"] for t in shown["tasks"]} == {"ok"}
