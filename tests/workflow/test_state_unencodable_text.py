"""A run's saved state holds text UTF-8 cannot (a lone surrogate) and keeps being saved."""

from __future__ import annotations

import os
from pathlib import Path

from workflow_helpers import ROLES, Team, plan_files, write_config

from rolecall.sim import SimServer
from rolecall.workflow import Workflow
from rolecall.workflow.state import RunState


async def test_an_output_dir_named_in_no_utf8_is_saved_with_the_state(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    team = Team(plan_files("a.py", "b.py"))
    for server in sims.values():
        server.responder = team
    config = write_config(tmp_path, sims, ROLES)
    # A directory name read from a file system that is not UTF-8: a lone surrogate.
    out = tmp_path / os.fsdecode(b"out-\xff")
    result = await Workflow(config_path=config, output_dir=out, max_parallel=1).run(spec_file)

    assert result.status == "ok"
    saved = RunState.load(result.run_dir)  # what --resume reads
    assert saved.status == "ok"
    assert saved.output_dir == str(out)
    assert set(saved.tasks) == {r.name for r in result.records}
