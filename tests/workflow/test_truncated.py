"""Answers cut off at the output token limit are never used as if complete.

Each vendor's marker (OpenAI ``finish_reason: length``, Anthropic ``stop_reason:
max_tokens``, Gemini ``finishReason: MAX_TOKENS``) reads as ``length`` in the reply and
in ``ask --json``; the workflow continues a cut-off file on the same provider, and a file
still cut off after that is reported ``truncated`` (summary, result, REVIEW.md), not
``written``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import ROLES, Team, plan_files, write_config

from rolecall.cli import main
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.workflow import Workflow
from rolecall.workflow.prompts import CONTINUE
from rolecall.workflow.stages import MAX_CONTINUATIONS

_FILE = re.compile(r"File to write: `([^`]+)`")


def _cut(body: dict[str, Any]) -> dict[str, str]:
    return {"text": "half an answ", "finish": "length"}


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "google"])
async def test_each_vendor_cut_off_marker_reads_as_length(tmp_path: Path, protocol: str) -> None:
    with SimServer(protocol) as sim:  # type: ignore[arg-type]
        sim.responder = _cut
        config = write_config(tmp_path, {"p": sim}, {"coder": {"provider": "p"}})
        async with Router.from_file(config, check_credentials=False) as router:
            reply = await router.complete("coder", "hi")
            stream = router.stream("coder", "hi")
            async for _ in stream:
                pass
    assert (reply.text, reply.finish_reason) == ("half an answ", "length")
    assert stream.reply.finish_reason == "length"


def test_ask_json_reports_finish_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimServer("anthropic") as sim:
        sim.responder = _cut
        config = write_config(tmp_path, {"claude": sim}, {"coder": {"provider": "claude"}})
        monkeypatch.chdir(tmp_path)
        code = main(["ask", "coder", "hi", "--json", "-c", str(config), "--offline"])
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out)["finish_reason"] == "length"


class CutCoder:
    """The coder: ``core.py`` is cut once then finished; ``cli.py`` is always cut off."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.calls: dict[str, int] = {}

    def __call__(self, body: dict[str, Any]) -> str | dict[str, str]:
        text = json.dumps(body)
        found = _FILE.search(text)
        if found is None or found.group(1) not in ("app/core.py", "app/cli.py"):
            return self.team(body)
        path = found.group(1)
        self.calls[path] = self.calls.get(path, 0) + 1
        continued = text.count(json.dumps(CONTINUE)[1:-1])
        if path == "app/cli.py":
            return {"text": f"part {continued}\n", "finish": "length"}
        if continued == 0:
            return {"text": "```python\ndef core():\n", "finish": "length"}
        return {"text": "    return 1\n```", "finish": "stop"}


async def test_workflow_continues_a_cut_off_file_and_reports_one_that_stays_cut(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    team = Team(plan_files("app/__init__.py", "app/core.py", "app/cli.py"))
    for server in sims.values():
        server.responder = team
    coder = sims["gpt"].responder = CutCoder(team)
    roles = {
        "clarifier": {"provider": "gem"},
        "planner": {"provider": "claude"},
        "reviewer": {"provider": "claude"},
        "coder": {"provider": "gpt", "fallback": ["gpt2"]},
    }
    config = write_config(tmp_path, sims, roles)
    out = tmp_path / "out"
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)

    # core.py: cut once, continued on the same provider, written whole.
    assert coder.calls["app/core.py"] == 2
    assert (out / "app/core.py").read_text() == "def core():\n    return 1\n"
    assert "app/core.py" in result.files
    # cli.py: still cut off after the continuations: truncated, never "written".
    assert coder.calls["app/cli.py"] == 1 + MAX_CONTINUATIONS
    assert sims["gpt2"].calls == 0  # continuations never went to another provider
    assert result.truncated == ["app/cli.py"]
    assert "app/cli.py" not in result.files
    assert result.status == "partial"
    records = {r.name: r for r in result.records}
    generate = records["generate:app/cli.py"]
    assert (generate.note, generate.result["status"]) == ("truncated", "truncated")
    assert result.to_dict()["truncated"] == ["app/cli.py"]
    review = (out / "REVIEW.md").read_text()
    assert "## Truncated" in review and "- app/cli.py" in review
    assert "written as far as it went and was not reviewed" in review
    # The reviewer never judged the cut-off file as if it were complete.
    assert records["review:app/cli.py"].result["skipped"] is True
    # ... and says why: the file was written, cut off, not missing.
    assert records["review:app/cli.py"].note == "skipped (truncated)"
    assert records["review:app/__init__.py"].note == "clean"


class FencedCutCoder:
    """The coder opens a code fence for ``cut.py`` and hits the token limit every time."""

    def __init__(self, team: Team) -> None:
        self.team = team

    def __call__(self, body: dict[str, Any]) -> str | dict[str, str]:
        text = json.dumps(body)
        found = _FILE.search(text)
        if found is None or found.group(1) != "cut.py":
            return self.team(body)
        continued = text.count(json.dumps(CONTINUE)[1:-1])
        first = "```python\nx = 1\n"
        return {"text": first if continued == 0 else f"x += {continued}\n", "finish": "length"}


async def test_a_cut_off_file_that_opened_a_code_fence_is_written_without_it(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    # A small model wraps its answer in ```python and runs out of tokens before the closing
    # fence: the file must not start with the fence (a SyntaxError on line 1 for every check).
    team = Team(plan_files("cut.py"))
    for server in sims.values():
        server.responder = team
    sims["gpt"].responder = FencedCutCoder(team)
    config = write_config(tmp_path, sims, ROLES)
    out = tmp_path / "out"
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)

    assert result.truncated == ["cut.py"]
    written = (out / "cut.py").read_text()
    assert written.startswith("x = 1\n") and "```" not in written


async def test_runs_show_counts_every_call_of_a_continued_file(
    tmp_path: Path,
    sims: dict[str, SimServer],
    spec_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # core.py takes two calls (cut off, then continued): `runs show` gives the task the
    # tokens and time of both, as the run's summary table and `runs list` do; `runs list`
    # counts it once.
    team = Team(plan_files("app/__init__.py", "app/core.py", "app/cli.py"))
    for server in sims.values():
        server.responder = team
    sims["gpt"].responder = CutCoder(team)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    records = {r.name: r for r in result.records}

    assert main(["runs", "show", result.run_id, "--json", "-c", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    tasks = {t["task_id"]: t for t in shown["tasks"]}
    for name in ("generate:app/core.py", "generate:app/cli.py"):
        record, task = records[name], tasks[name]
        assert len(task["attempts"]) > 1
        assert (task["input_tokens"], task["output_tokens"]) == (
            record.input_tokens,
            record.output_tokens,
        )
    listed = sum(t["input_tokens"] for t in shown["tasks"])
    assert main(["runs", "list", "--json", "-c", str(config)]) == 0
    run = next(r for r in json.loads(capsys.readouterr().out) if r["run_id"] == result.run_id)
    assert run["input_tokens"] == listed
    # A continued file is one task, however many calls it took.
    assert (run["tasks"], run["tasks_failed"]) == (len(shown["tasks"]), 0)
