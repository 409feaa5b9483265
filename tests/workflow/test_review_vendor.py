"""Each file is reviewed on another vendor than the provider that wrote it, where possible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflow_helpers import Team, plan_files, write_config

from rolecall.config.schema import ProviderConfig
from rolecall.sim import Fault, SimServer
from rolecall.workflow import Workflow
from rolecall.workflow.vendors import order_reviewers, vendor_of


def use(team: Team, sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        server.responder = team


def reviews_of(result: Any) -> dict[str, dict[str, Any]]:
    return {r.name: r.result for r in result.records if r.name.startswith("review:")}


async def test_a_coder_failing_over_to_the_reviewers_provider_is_reviewed_by_a_third(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    use(Team(plan_files("a.py", "b.py")), sims)
    sims["gpt"].set_faults(Fault("auth"))  # the coder's primary: every file hands over to claude
    roles = {
        "clarifier": {"provider": "gem"},
        "planner": {"provider": "gem"},
        "coder": {"provider": "gpt", "fallback": ["claude"]},
        "reviewer": {"provider": "claude", "fallback": ["gem"]},
    }
    config = write_config(tmp_path, sims, roles)
    out = tmp_path / "out"
    workflow = Workflow(config_path=config, output_dir=out, check_credentials=False)
    result = await workflow.run(spec_file)
    assert result.status == "ok", [(r.name, r.status, r.error) for r in result.records]
    for path in ("a.py", "b.py"):
        review = reviews_of(result)[f"review:{path}"]
        assert (review["writer"], review["reviewer"]) == ("claude", "gem")
        assert review["vendor_note"] is None
    assert not any("You are the reviewer" in str(r.json) for r in sims["claude"].requests)
    assert "- a.py: written by claude, reviewed by gem" in (out / "REVIEW.md").read_text()


async def test_one_vendor_only_is_said_and_other_vendor_can_be_turned_off(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    use(Team(plan_files("a.py")), sims)
    roles = {r: {"provider": "claude"} for r in ("clarifier", "planner", "coder", "reviewer")}
    config = write_config(tmp_path, sims, roles)
    out = tmp_path / "out"
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)
    review = reviews_of(result)["review:a.py"]
    assert review["reviewer"] == "claude" and "no other vendor" in review["vendor_note"]
    assert (
        "reviewed on the writer's vendor (anthropic@127.0.0.1)" in (out / "REVIEW.md").read_text()
    )

    # Off: the reviewer chain as configured, even when it starts with the writer.
    roles["reviewer"] = {"provider": "claude", "fallback": ["gem"]}
    off = write_config(
        tmp_path, sims, roles, name="off.yaml", workflow={"review": {"other_vendor": False}}
    )
    again = await Workflow(config_path=off, output_dir=tmp_path / "out2").run(spec_file)
    assert reviews_of(again)["review:a.py"]["reviewer"] == "claude"


def test_vendor_is_type_and_host_and_other_vendors_come_first() -> None:
    openai = ProviderConfig(type="openai", model="m")
    assert vendor_of(openai) == "openai@api.openai.com"
    ollama = ProviderConfig(
        type="openai-compatible", model="m", base_url="http://localhost:11434/v1"
    )
    assert vendor_of(ollama) == "openai-compatible@localhost"
    assert vendor_of(ProviderConfig(type="local")) == "local"
    vendor = {"gpt": "openai@x", "gpt-mini": "openai@x", "claude": "anthropic@y", "gem": "google@z"}
    choice = order_reviewers(["gpt", "gpt-mini", "claude", "gem"], "gpt", vendor)
    assert choice.candidates == ("claude", "gem", "gpt-mini", "gpt") and choice.note is None
    alone = order_reviewers(["gpt-mini", "gpt"], "gpt", vendor)
    assert alone.candidates == ("gpt-mini", "gpt") and "no other vendor" in (alone.note or "")
