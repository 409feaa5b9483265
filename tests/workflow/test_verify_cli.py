"""``rolecall run``: the checks in the summary, and ``--verify-only RUN`` on a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflow_helpers import ROLES, SPEC, Team, plan_files, write_config

from rolecall.cli import main
from rolecall.sim import SimServer


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_summary_reports_checks_and_verify_only_runs_them_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer]
) -> None:
    team = Team(plan_files("main.py"))
    for server in sims.values():
        server.responder = team
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    config = write_config(tmp_path, sims, ROLES)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, str(spec), "-c", str(config), "-o", str(out))
    assert code == 0, err
    assert "checks: passed (1 command(s))" in stdout
    run_id = next(line.split()[1] for line in stdout.splitlines() if line.startswith("run: "))

    (out / "main.py").write_text("def broken(:\n")
    code, stdout, err = run_cli(capsys, "--verify-only", run_id, "-c", str(config), "--json")
    assert code == 1, err
    data = json.loads(stdout)
    assert data["run_id"] == run_id and data["status"] == "failed"
    assert data["named"] == ["main.py"] and "SyntaxError" in data["commands"][0]["output"]
    saved = json.loads((tmp_path / "runs" / run_id / "state.json").read_text())
    assert [r["status"] for r in saved["rechecks"]] == ["failed"]

    (out / "main.py").write_text("VALUE = 1\n")
    code, stdout, _ = run_cli(capsys, "--verify-only", run_id, "-c", str(config))
    assert code == 0 and "checks: passed" in stdout

    code, _, err = run_cli(capsys, "--verify-only", "no-such-run", "-c", str(config))
    assert code == 2 and "no saved workflow run 'no-such-run'" in err
    assert "Traceback" not in err
