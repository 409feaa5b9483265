"""``rolecall run --resume``: what changed since the run began is said once, on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from cli_helpers import run_cli
from workflow_helpers import SPEC, Team, plan_files, started_servers, write_config

from rolecall.sim import SimServer

ROLES = {
    "clarifier": {"provider": "claude"},
    "planner": {"provider": "claude"},
    "reviewer": {"provider": "claude"},
    "coder": {"provider": "gpt"},
}


@pytest.fixture
def sims() -> Iterator[dict[str, SimServer]]:
    team = Team(plan_files("a.py", "b.py"))
    protocols = {"claude": "anthropic", "gpt": "openai", "gpt2": "openai"}
    with started_servers(protocols, responder=team) as servers:
        yield servers


def failed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer], spec: str
) -> str:
    """A run whose coder's key is refused: its files are left for a resume."""
    sims["gpt"].set_faults("auth")
    config = write_config(tmp_path, sims, ROLES)
    code, out, err = run_cli(
        capsys, "run", spec, "-c", str(config), "-o", str(tmp_path / "out"), "--json", "--offline"
    )
    assert code == 1, err
    return str(json.loads(out)["run_id"])


def test_resume_says_what_changed_and_stdout_stays_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer]
) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    run_id = failed_run(tmp_path, capsys, sims, str(spec))
    config = write_config(tmp_path, sims, {**ROLES, "coder": {"provider": "gpt2"}})
    spec.write_text(SPEC + "\nAlso say goodbye.\n")

    code, out, err = run_cli(
        capsys,
        "run",
        "--resume",
        run_id,
        "-c",
        str(config),
        "--review-rounds",
        "3",
        "--json",
        "--offline",
    )

    assert code == 0, err
    data = json.loads(out)  # nothing but the JSON on stdout
    assert data["status"] == "ok"
    assert {t["provider"] for t in data["tasks"] if t["role"] == "coder"} == {"gpt2"}
    lines = err.splitlines()
    assert (
        f"warning: run {run_id}: the config changed since the run began: "
        "coder now goes to gpt2 (was gpt)"
    ) in lines
    [spec_line] = [line for line in lines if line.startswith(f"warning: spec {spec} changed")]
    assert "goes on with the spec saved with it" in spec_line
    assert f"rolecall run {spec} -o another directory" in spec_line
    assert (
        f"warning: --review-rounds 3 is not used: run {run_id} keeps the 1 review round(s) "
        "it began with; start a new run for another number"
    ) in lines
    # The saved spec was used: no prompt carried the edit.
    assert sims["gpt2"].requests
    assert all(b"goodbye" not in request.body for request in sims["gpt2"].requests)


def test_resume_with_nothing_changed_says_nothing_more(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sims: dict[str, SimServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "spec.md").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    run_id = failed_run(tmp_path, capsys, sims, "spec.md")
    sims["gpt"].clear()
    # From another directory: the spec was given by a relative path.
    (tmp_path / "elsewhere" / "spec.md").parent.mkdir()
    (tmp_path / "elsewhere" / "spec.md").write_text("# another spec\n\nNot this run's.\n")
    monkeypatch.chdir(tmp_path / "elsewhere")

    code, _, err = run_cli(
        capsys,
        "run",
        "--resume",
        run_id,
        "-c",
        str(tmp_path / "rolecall.yaml"),
        "--review-rounds",
        "1",
    )

    assert code == 0, err
    assert "warning" not in err
