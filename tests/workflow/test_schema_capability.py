"""A role on a provider that cannot take a JSON schema is asked for its JSON in text."""

from __future__ import annotations

from pathlib import Path

import yaml
from workflow_helpers import Team, plan_files, write_config

from rolecall.sim import SimServer
from rolecall.workflow import Workflow


async def test_roles_on_a_provider_without_json_schema_are_asked_in_text(
    tmp_path: Path,
) -> None:
    # A compatible server that cannot constrain its output: the schema is not sent, the
    # prompt names the shape, and the untidy plan it writes is recovered without a repair.
    sloppy = (
        "Here is the plan:\n```json\n"
        '{"files": [{"path": "a.py", "purpose": "the module", "depends_on": [],}, // one file\n]}'
        "\n```\nLet me know if you want {more} files."
    )
    team = Team(plan_files("a.py"), plans=[sloppy])
    claude, plain = SimServer("anthropic").start(), SimServer("openai").start()
    try:
        claude.responder = plain.responder = team
        roles = {
            "clarifier": {"provider": "plain"},
            "planner": {"provider": "plain"},
            "reviewer": {"provider": "plain"},
            "coder": {"provider": "claude"},
        }
        config = write_config(tmp_path, {"claude": claude, "plain": plain}, roles)
        data = yaml.safe_load(config.read_text())
        data["providers"]["plain"]["capabilities"] = {"json_schema": False}
        config.write_text(yaml.safe_dump(data))
        spec = tmp_path / "spec.md"
        spec.write_text("# one file\n\nOne tiny module.\n")
        result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec)
    finally:
        claude.stop()
        plain.stop()
    assert result.status == "ok", [(r.name, r.error) for r in result.records]
    assert (team.calls["clarifier"], team.calls["planner"], team.calls["reviewer"]) == (1, 1, 1)
    asked = [request.json for request in plain.requests if request.json is not None]
    assert len(asked) == 3 and all("response_format" not in body for body in asked)
    assert (tmp_path / "out" / "a.py").is_file()
