"""A run killed mid-write leaves a hidden temporary file; the next run into the same output
directory (a resume, or a new run) removes it, and nothing else that only looks like one."""

from __future__ import annotations

import os
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

# What atomic_write_text leaves when its process is killed between its open and its rename.
LEFTOVERS = ["a.py.0f3a9c21", "pkg/b.py.deadbeef", "REVIEW.md.00000000"]
# A user's files that only resemble one: never touched.
LOOKALIKES = [
    ".a.py.DEADBEEF.tmp",  # upper-case hex
    ".a.py.deadbee.tmp",  # 7 digits
    "a.py.deadbeef.tmp",  # not hidden
    ".a.py.deadbeef.tmp.bak",
    ".deadbeef.tmp",  # no name before the digits
    "pkg/.notes.txt.12345678.tmp~",
    ".git/.index.deadbeef.tmp",  # git's own directory is never entered
]


def hidden(leftover: str) -> str:
    directory, _, name = leftover.rpartition("/")
    return f"{directory}/.{name}.tmp" if directory else f".{name}.tmp"


def lay_out(out: Path) -> None:
    for relative in [*map(hidden, LEFTOVERS), *LOOKALIKES]:
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text("half a fil")
    # A link of the temporary shape to a user's file: neither the link nor the file goes.
    (out / "keep.txt").write_text("mine")
    os.symlink(out / "keep.txt", out / ".keep.txt.abcdef12.tmp")


def assert_cleaned(out: Path) -> None:
    assert not [p for p in map(hidden, LEFTOVERS) if (out / p).exists()]
    assert all((out / p).read_text() == "half a fil" for p in LOOKALIKES)
    assert (out / ".keep.txt.abcdef12.tmp").is_symlink() and (
        out / "keep.txt"
    ).read_text() == "mine"


async def test_resume_and_new_run_remove_the_temporary_files_a_killed_write_left(
    tmp_path: Path, spec_file: Path
) -> None:
    team = Team(plan_files("a.py", "pkg/b.py"))
    claude, gpt = SimServer("anthropic").start(), SimServer("openai").start()
    try:
        claude.responder = gpt.responder = team
        config = write_config(tmp_path, {"claude": claude, "gpt": gpt}, ROLES)
        out = tmp_path / "out"
        workflow = Workflow(config_path=config, output_dir=out, check_credentials=False)
        first = await workflow.run(spec_file)
        assert first.status == "ok"
        lay_out(out)
        (first.run_dir / ".state.json.a1b2c3d4.tmp").write_text("{")

        resumed = await workflow.resume(first.run_id)
        assert resumed.status == "ok"
        assert_cleaned(out)
        assert sorted(p.name for p in first.run_dir.iterdir() if p.name.startswith(".")) == []

        for leftover in LEFTOVERS:
            (out / hidden(leftover)).write_text("half a fil")
        again = await workflow.run(spec_file)  # a new run into the same directory
        assert again.status == "ok"
        assert_cleaned(out)
    finally:
        claude.stop()
        gpt.stop()
