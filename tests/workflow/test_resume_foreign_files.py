"""A resumed run keeps a file that appeared in its output directory after its plan (another
run's, or the user's), as a new run keeps one that was there before: unless --force."""

from __future__ import annotations

from pathlib import Path

from workflow_helpers import Team, plan_files, write_config

from rolecall.sim import SimServer
from rolecall.workflow import Workflow

ROLES = {
    "clarifier": {"provider": "claude"},
    "planner": {"provider": "claude"},
    "reviewer": {"provider": "claude"},
    "coder": {"provider": "gpt"},
}


async def test_a_file_written_into_the_directory_since_the_plan_is_not_overwritten(
    tmp_path: Path, spec_file: Path
) -> None:
    team = Team(plan_files("a.py", "b.py"))
    claude, gpt = SimServer("anthropic").start(), SimServer("openai").start()
    out = tmp_path / "out"
    try:
        claude.responder = gpt.responder = team
        gpt.set_faults("server")  # planned, nothing written: left for the resume
        config = write_config(tmp_path, {"claude": claude, "gpt": gpt}, ROLES)
        workflow = Workflow(config_path=config, output_dir=out, check_credentials=False)
        first = await workflow.run(spec_file)
        assert first.status == "failed" and not (out / "a.py").exists()
        # Meanwhile another run (another spec, the same -o) or the user wrote a.py.
        (out / "a.py").write_text("# another run's a.py\n")
        gpt.clear()

        resumed = await workflow.resume(first.run_id)
        assert resumed.status == "ok", [(r.name, r.status, r.error) for r in resumed.records]
        assert (out / "a.py").read_text() == "# another run's a.py\n"
        assert resumed.kept == ["a.py"] and resumed.files == ["b.py"]
        assert team.by_path[("coder", "a.py")] == 0
    finally:
        claude.stop()
        gpt.stop()
