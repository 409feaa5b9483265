"""A resumed run writes again a file its earlier part wrote that is gone from the output
directory, and runs again the checks and reviews that saw it; files still there are kept."""

from __future__ import annotations

from pathlib import Path

from workflow_helpers import Team, plan_files, write_config

from rolecall.sim import Fault, SimServer
from rolecall.workflow import Workflow

ROLES = {
    "clarifier": {"provider": "claude"},
    "planner": {"provider": "claude"},
    "reviewer": {"provider": "claude"},
    "coder": {"provider": "gpt"},
}


async def test_a_written_file_deleted_before_the_resume_is_written_again(
    tmp_path: Path, spec_file: Path
) -> None:
    team = Team(plan_files("a.py", "b.py", "c.py", deps={"c.py": ["a.py"]}))
    claude, gpt = SimServer("anthropic").start(), SimServer("openai").start()
    try:
        claude.responder = gpt.responder = team
        # a.py and b.py are written, then the coder fails: c.py is left for the resume.
        gpt.script(Fault("ok"), Fault("ok"))
        gpt.set_faults(Fault("bad_request"))
        config = write_config(tmp_path, {"claude": claude, "gpt": gpt}, ROLES)
        workflow = Workflow(
            config_path=config, output_dir=tmp_path / "out", max_parallel=1, check_credentials=False
        )
        first = await workflow.run(spec_file)
        assert first.status == "failed", [(r.name, r.status, r.result) for r in first.records]
        assert {r.name for r in first.records if r.status == "ok"} >= {
            "generate:a.py",
            "generate:b.py",
        }
        (tmp_path / "out" / "a.py").unlink()
        gpt.clear()
        second = await workflow.resume(first.run_id)
        coder_calls = {path: team.by_path[("coder", path)] for path in ("a.py", "b.py")}
        # A finished run resumed after a file went: its checks and reviews run again too.
        (tmp_path / "out" / "b.py").unlink()
        third = await workflow.resume(first.run_id)
    finally:
        claude.stop()
        gpt.stop()

    assert second.status == "ok", [(r.name, r.status, r.error) for r in second.records]
    assert (tmp_path / "out" / "a.py").read_text().startswith("# a.py")
    assert coder_calls == {"a.py": 2, "b.py": 1}  # b.py still there: not asked for again
    by_name = {r.name: r for r in second.records}
    assert by_name["generate:b.py"].restored and not by_name["generate:a.py"].restored
    assert by_name["review:a.py"].note == "clean"
    assert set(second.files) == {"a.py", "b.py", "c.py"}
    assert third.status == "ok"
    assert (tmp_path / "out" / "b.py").is_file() and team.by_path[("coder", "b.py")] == 2
    assert team.by_path[("coder", "a.py")] == 2
    again = {r.name for r in third.records if not r.restored}
    assert again == {"generate:b.py", "verify@1", "reviewed@1"} | {
        f"review:{path}" for path in ("a.py", "b.py", "c.py")
    }
