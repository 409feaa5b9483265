"""The whole workflow on real adapters against fake vendor servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from workflow_helpers import SPEC, Team, plan_files, write_config

from rolecall.cli import main
from rolecall.recording.runlog import read_run, run_log_path
from rolecall.sim import Fault, SimServer
from rolecall.workflow import AnswersError, Spec, Workflow

ROLES = {
    "clarifier": {"provider": "gem"},
    "planner": {"provider": "claude"},
    "reviewer": {"provider": "claude"},
    "coder": {"provider": "gpt", "fallback": ["gpt2"]},
}
FILES = plan_files(
    "app/__init__.py", "app/core.py", "app/cli.py", deps={"app/cli.py": ["app/core.py"]}
)


def use(team: Team, sims: dict[str, SimServer]) -> None:
    for server in sims.values():
        server.responder = team


def providers_of(result: object) -> dict[str, str | None]:
    return {r.name: r.provider for r in result.records}  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault", ["auth", "server"])
async def test_four_roles_on_three_vendors_survive_a_coder_fault(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path, fault: str
) -> None:
    team = Team(
        FILES, questions=[{"id": "greeting", "question": "Which greeting?", "default": "Hello"}]
    )
    use(team, sims)
    # The coder's primary answers once, then fails: its tasks hand over to the fallback.
    if fault == "auth":
        sims["gpt"].script(Fault("ok"), Fault("auth"))
    else:
        sims["gpt"].script(Fault("ok"), Fault("server"), Fault("server"))
    config = write_config(tmp_path, sims, ROLES)
    workflow = Workflow(config_path=config, output_dir=tmp_path / "out", max_parallel=1)
    result = await workflow.run(spec_file)

    assert result.status == "ok", [(r.name, r.status, r.error) for r in result.records]
    providers = providers_of(result)
    assert providers["clarify"] == "gem"
    assert providers["plan"] == "claude"
    generate = [r for r in result.records if r.stage == "generate"]
    # A rejected key keeps the primary out for the rest of the run; a 500 does not.
    later = "gpt2" if fault == "auth" else "gpt"
    assert [r.provider for r in generate] == ["gpt", "gpt2", later]
    handed = generate[1]
    assert handed.handovers == 1
    assert handed.attempts == (2 if fault == "auth" else 3)
    assert all(providers[f"review:{f['path']}"] == "claude" for f in FILES)
    if fault == "auth":  # a rejected key is not called again by later tasks
        assert sims["gpt"].calls == 2
    for entry in FILES:
        assert (tmp_path / "out" / entry["path"]).read_text().startswith(f"# {entry['path']}")
    assert (tmp_path / "out" / "REVIEW.md").is_file()
    # The clarified spec (spec + the question and the default answer) is kept with the run.
    clarified = (result.run_dir / "clarified-spec.md").read_text()
    assert "Which greeting?" in clarified and "A: Hello" in clarified
    # The dependency's generated content reaches the dependent file's prompt.
    cli_prompt = next(t for role, t in team.prompts if "File to write: `app/cli.py`" in t)
    assert "# app/core.py" in cli_prompt

    # The run record (run log) names the provider of every task; the checks have none.
    record = read_run(run_log_path(tmp_path / "runs", result.run_id))
    assert record.kind == "workflow" and record.status == "ok"
    logged = {t.task_id: t.provider for t in record.tasks}
    assert logged == providers
    saved = json.loads((result.run_dir / "state.json").read_text())
    assert saved["status"] == "ok"
    assert {n: t["provider"] for n, t in saved["tasks"].items()} == providers


async def test_unsafe_plan_paths_are_refused_and_nothing_leaves_the_output_dir(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    absolute = str(tmp_path / "abs-evil.py")
    files = plan_files("../evil.py", absolute, "link/evil.py", "C:\\evil.py", "ok.py")
    team = Team(files)
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)

    assert result.status == "partial"
    refused = {item["path"]: item["reason"] for item in result.refused}
    assert set(refused) == {"../evil.py", absolute, "link/evil.py", "C:\\evil.py"}
    assert "symlink" in refused["link/evil.py"]
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil.py").exists()
    assert not (tmp_path / "abs-evil.py").exists()
    assert (out / "ok.py").is_file()
    asked = {path for (role, path) in team.by_path if role == "coder"}
    assert asked == {"ok.py"}


async def test_git_paths_overlong_names_and_file_clashes_are_refused_not_failed(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    out = tmp_path / "out"
    (out / ".git" / "hooks").mkdir(parents=True)
    (out / ".git" / "config").write_text("[core]\n")
    overlong = "a" * 5000 + ".py"
    deep = "/".join(["c" * 200] * 30) + ".py"
    files = plan_files(".git/config", ".git/hooks/pre-commit", overlong, deep, "pkg", "pkg/m.py")
    team = Team(files)
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)

    assert result.status == "partial"
    assert [r.name for r in result.records if r.status != "ok"] == []
    refused = {item["path"]: item["reason"] for item in result.refused}
    assert set(refused) == {".git/config", ".git/hooks/pre-commit", overlong, deep, "pkg/m.py"}
    assert "inside .git" in refused[".git/config"]
    assert "longer than 240 bytes" in refused[overlong]
    assert "'pkg' is a file" in refused["pkg/m.py"]
    assert (out / ".git" / "config").read_text() == "[core]\n"
    assert list((out / ".git" / "hooks").iterdir()) == []
    assert (out / "pkg").is_file()


async def test_names_that_collide_or_are_lost_off_linux_are_caught_when_the_plan_arrives(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    # On macOS or Windows each of these loses a file the run would report written.
    out = tmp_path / "out"
    files = plan_files("App.py", "app.py", "CON", "nul.py", "b.py.", "notes:x.md", "review.md")
    team = Team(files)
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)

    assert result.status == "partial"
    refused = {item["path"]: item["reason"] for item in result.refused}
    assert set(refused) == {"CON", "nul.py", "b.py.", "notes:x.md"}
    assert "device name on Windows" in refused["nul.py"]
    assert "ends in a dot or space" in refused["b.py."]
    asked = {path for (role, path) in team.by_path if role == "coder"}
    assert asked == {"App.py", "review.md"}
    assert sorted(p.name for p in out.iterdir()) == ["App.py", "review.md"]
    assert (out / "review.md").read_text().startswith("# review.md")
    assert result.review_file == result.run_dir / "review.md"
    plan = json.loads((result.run_dir / "plan.json").read_text())
    planned = ["App.py", "CON", "nul.py", "b.py.", "notes:x.md", "review.md"]
    assert [f["path"] for f in plan["files"]] == planned
    assert any("'app.py' differs from 'App.py' only in case" in fix for fix in plan["fixes"])


class FenceOnlyCoder:
    """Answers ``empty.py`` with only an opening code fence, every other file normally."""

    def __init__(self, team: Team) -> None:
        self.team = team

    def __call__(self, body: dict[str, object]) -> str:
        if "File to write: `empty.py`" in json.dumps(body):
            return "```python"
        return self.team(body)


async def test_an_answer_that_is_only_a_code_fence_writes_an_empty_file_the_summary_names(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    out = tmp_path / "out"
    team = Team(plan_files("empty.py", "full.py"))
    use(team, sims)
    sims["gpt"].responder = FenceOnlyCoder(team)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)

    assert (out / "empty.py").read_text() == ""  # not a stray "```python"
    records = {r.name: r for r in result.records}
    assert records["generate:empty.py"].result["bytes"] == 0
    notes = {name: r.note for name, r in records.items()}
    assert notes["generate:empty.py"] == "written (empty)"
    assert notes["generate:full.py"] == "written"


async def test_existing_files_are_kept_unless_forced(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.py").write_text("mine\n")
    team = Team(plan_files("keep.py", "new.py"))
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=out).run(spec_file)
    assert result.status == "ok"
    assert result.kept == ["keep.py"]
    assert (out / "keep.py").read_text() == "mine\n"
    assert team.by_path[("coder", "keep.py")] == 0

    forced = await Workflow(config_path=config, output_dir=out, force=True).run(spec_file)
    assert forced.kept == []
    assert (out / "keep.py").read_text().startswith("# keep.py")


async def test_invalid_plan_gets_one_repair_on_the_same_provider_then_a_routed_call(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    good = json.dumps({"files": plan_files("a.py")})
    # Valid JSON of the wrong shape (a non-JSON answer is the router's bad_response retry).
    no_files = json.dumps({"files": []})
    bad_deps = json.dumps({"files": [{"path": "a.py", "purpose": "x", "depends_on": "b.py"}]})
    team = Team([], plans=[bad_deps, no_files, good])
    use(team, sims)
    # Round robin across two planners: a plain routed call would go to the other one.
    roles = {**ROLES, "planner": {"providers": ["claude", "gem"], "strategy": "round_robin"}}
    config = write_config(tmp_path, sims, roles)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "ok"
    assert team.calls["planner"] == 3
    planner_requests = {
        name: [r for r in server.requests if "You are the planner" in json.dumps(r.json)]
        for name, server in sims.items()
    }
    repaired = [
        n
        for n, reqs in planner_requests.items()
        if any("is invalid" in json.dumps(r.json) for r in reqs)
    ]
    assert len(repaired) == 1
    first = repaired[0]
    other = "gem" if first == "claude" else "claude"
    # The bad plan and its repair request went to one provider; the third, normally
    # routed call went on to the other (round robin).
    assert [("is invalid" in json.dumps(r.json)) for r in planner_requests[first]] == [False, True]
    assert len(planner_requests[other]) == 1
    repair_text = json.dumps(planner_requests[first][1].json)
    assert "files[0].depends_on must be an array of paths" in repair_text
    plan = next(r for r in result.records if r.name == "plan")
    assert plan.calls == 3


async def test_planner_mistakes_with_one_fix_are_fixed_without_a_repair_call(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    # What small models write: a repeated file, a self-dependency and a cycle.
    sloppy = plan_files("a.py", "b.py", "a.py", deps={"a.py": ["a.py", "b.py"], "b.py": ["a.py"]})
    team = Team([], plans=[json.dumps({"files": sloppy})])
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "ok"
    assert team.calls["planner"] == 1
    assert (tmp_path / "out" / "a.py").is_file() and (tmp_path / "out" / "b.py").is_file()
    saved = json.loads((result.run_dir / "plan.json").read_text())
    assert [f["path"] for f in saved["files"]] == ["a.py", "b.py"]
    assert len(saved["fixes"]) == 3  # repeated entry, self-dependency, cycle
    plan = next(r for r in result.records if r.name == "plan")
    assert "3 planner mistake(s) fixed" in (plan.note or "")


async def test_plan_still_invalid_fails_the_run_and_keeps_the_clarification(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    empty = json.dumps({"files": []})
    team = Team([], plans=[empty, empty, empty])
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "failed"
    plan = next(r for r in result.records if r.name == "plan")
    assert plan.status == "failed" and "still invalid" in (plan.error or "")
    assert next(r for r in result.records if r.name == "clarify").status == "ok"


async def test_blocking_findings_go_back_to_the_coder_and_the_rest_lands_in_review_md(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    major = {"severity": "major", "line": 2, "message": "does not greet"}
    minor = {"severity": "minor", "message": "add a docstring"}
    team = Team(plan_files("a.py", "b.py"), findings={"a.py": [[major], [minor]]})
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "ok"
    names = [r.name for r in result.records]
    assert {"review:a.py", "fix:a.py@1", "review:a.py@2", "review:b.py"} <= set(names)
    assert "fix:b.py@1" not in names
    # The checks run again after the fix round, before the second review.
    order = {name: i for i, name in enumerate(names)}
    assert order["fix:a.py@1"] < order["verify@2"] < order["review:a.py@2"]
    verify2 = next(r for r in result.records if r.name == "verify@2")
    assert verify2.result["status"] == "passed"
    assert team.by_path[("coder", "a.py")] == 2
    fix_prompt = next(t for role, t in team.prompts if "File to fix: `a.py`" in t)
    assert "does not greet" in fix_prompt
    assert (tmp_path / "out" / "a.py").read_text() == "# a.py\nVALUE = 2\n"
    review = (tmp_path / "out" / "REVIEW.md").read_text()
    assert "add a docstring" in review and "does not greet" not in review
    assert "- b.py" in review  # listed as clean
    assert result.unresolved == []

    # With no fix rounds the blocking finding stays and is reported.
    team2 = Team(plan_files("a.py"), findings={"a.py": [[major]]})
    use(team2, sims)
    again = await Workflow(config_path=config, output_dir=tmp_path / "out2", review_rounds=0).run(
        spec_file
    )
    assert team2.by_path[("coder", "a.py")] == 1
    assert "**major** (line 2): does not greet" in (tmp_path / "out2" / "REVIEW.md").read_text()
    assert again.status == "ok"
    assert again.unresolved == ["a.py"]


def test_a_reviewer_that_never_approves_stops_at_the_round_bound_and_is_reported(
    tmp_path: Path,
    sims: dict[str, SimServer],
    spec_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = {"severity": "blocker", "message": "still broken"}
    team = Team(plan_files("a.py", "b.py"), findings={"a.py": [[blocker]] * 50})
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    out = str(tmp_path / "out")
    args = ["run", str(spec_file), "-c", str(config), "-o", out, "--offline", "--yes"]
    assert main([*args, "--review-rounds", "2"]) == 0
    captured = capsys.readouterr()
    # Two fix rounds, then a last review: no more calls than the bound allows.
    assert team.by_path[("coder", "a.py")] == 3
    assert team.by_path[("reviewer", "a.py")] == 3
    assert team.by_path[("coder", "b.py")] == 1
    assert (
        "unresolved: a.py: blocker/major review findings remain after the last fix round"
        in captured.err
    )
    assert "unresolved: b.py" not in captured.err

    assert main([*args, "--json", "--review-rounds", "0", "-o", str(tmp_path / "out2")]) == 0
    assert json.loads(capsys.readouterr().out)["unresolved"] == ["a.py"]


async def test_answers_by_question_id(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    questions = [
        {"id": "lang", "question": "Which language?", "default": "Python"},
        {"id": "color", "question": "Colour output?", "default": "no"},
    ]
    team = Team(plan_files("a.py"), questions=questions)
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(
        config_path=config, output_dir=tmp_path / "out", answers={"lang": "Go"}
    ).run(spec_file)
    clarified = (result.run_dir / "clarified-spec.md").read_text()
    assert "A: Go" in clarified and "A: no" in clarified
    plan_prompt = next(t for role, t in team.prompts if role == "planner")
    assert "Which language?" in plan_prompt and "Go" in plan_prompt

    with pytest.raises(AnswersError) as info:
        await Workflow(
            config_path=config, output_dir=tmp_path / "out3", answers={"langage": "Go"}
        ).run(spec_file)
    assert "langage" in info.value.message and "valid ids: lang, color" in info.value.message


async def test_each_run_reads_the_config_again(tmp_path: Path, sims: dict[str, SimServer]) -> None:
    team = Team(plan_files("a.py"))
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    workflow = Workflow(config_path=config, output_dir=tmp_path / "out", force=True)
    first = await workflow.run(Spec.from_text(SPEC))
    assert providers_of(first)["generate:a.py"] == "gpt"

    data = yaml.safe_load(config.read_text())
    data["roles"]["coder"] = {"provider": "claude"}
    config.write_text(yaml.safe_dump(data))
    second = await workflow.run(Spec.from_text(SPEC))
    assert providers_of(second)["generate:a.py"] == "claude"


async def test_failed_tasks_keep_finished_work_and_resume_finishes(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    team = Team(plan_files("a.py", "b.py", "c.py", deps={"c.py": ["a.py"]}))
    use(team, sims)
    sims["gpt"].script(Fault("ok"))
    sims["gpt"].set_faults(Fault("bad_request"))
    sims["gpt2"].set_faults(Fault("bad_request"))
    config = write_config(tmp_path, sims, ROLES)
    workflow = Workflow(config_path=config, output_dir=tmp_path / "out", max_parallel=1)
    first = await workflow.run(spec_file)
    assert first.status == "failed"
    status = {r.name: r.status for r in first.records}
    assert status["generate:a.py"] == "ok"
    assert status["generate:b.py"] == "failed" and status["generate:c.py"] == "failed"
    # The checks and the reviews after them wait for every file.
    assert status["verify@1"] == "blocked" and "review:a.py" not in status
    failed = next(r for r in first.records if r.name == "generate:b.py")
    assert failed.provider == "gpt2" and "bad_request" in (failed.error or "")

    for server in sims.values():
        server.clear()
    calls_before = dict(team.calls)
    second = await workflow.resume(first.run_id)
    assert second.status == "ok"
    assert team.calls["clarifier"] == calls_before["clarifier"]
    assert team.calls["planner"] == calls_before["planner"]
    assert team.by_path[("coder", "a.py")] == 1  # finished file not generated again
    assert team.by_path[("coder", "b.py")] >= 1 and (tmp_path / "out" / "c.py").is_file()
    assert {r.name for r in second.records if r.restored} >= {"clarify", "plan", "generate:a.py"}
    record = read_run(run_log_path(tmp_path / "runs", first.run_id))
    assert record.status == "ok"


async def test_a_failed_task_shows_the_same_provider_and_latency_as_runs_show(
    tmp_path: Path,
    sims: dict[str, SimServer],
    spec_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every coder call fails after a retry on each provider (a 10 ms wait between
    # attempts): the run's summary and `runs show` give the task the same provider and
    # the same time, the waits included as for a task that got an answer.
    use(Team(plan_files("a.py")), sims)
    sims["gpt"].set_faults(Fault("server"))
    sims["gpt2"].set_faults(Fault("server"))
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    failed = next(r for r in result.records if r.name == "generate:a.py")
    assert failed.status == "failed" and failed.attempts == 4

    assert main(["runs", "show", result.run_id, "--json", "-c", str(config)]) == 0
    tasks = json.loads(capsys.readouterr().out)["tasks"]
    shown = next(t for t in tasks if t["task_id"] == failed.name)
    assert (shown["status"], shown["provider"]) == ("failed", failed.provider)
    assert shown["latency_ms"] == pytest.approx(failed.latency_ms, abs=0.001)
    assert failed.latency_ms >= sum(a["latency_ms"] for a in shown["attempts"]) + 10.0


async def test_questions_without_a_given_answer_are_asked(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    questions = [
        {"id": "lang", "question": "Which language?", "default": "Python"},
        {"id": "tests", "question": "Write tests?", "default": "yes"},
    ]
    team = Team(plan_files("a.py"), questions=questions)
    use(team, sims)
    asked: list[str] = []

    async def ask_user(question: object) -> str:
        asked.append(question.id)  # type: ignore[attr-defined]
        return "no"

    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(
        config_path=config, output_dir=tmp_path / "out", answers={"lang": "Rust"}, ask_user=ask_user
    ).run(spec_file)
    assert asked == ["tests"]  # the answers file already answered "lang"
    clarified = (result.run_dir / "clarified-spec.md").read_text()
    assert "A: Rust" in clarified and "A: no" in clarified


async def test_a_role_without_provider_stops_the_run(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    from rolecall.errors import NoProviderForRole

    team = Team(plan_files("a.py"))
    use(team, sims)
    roles = {k: v for k, v in ROLES.items() if k != "coder"}
    config = write_config(tmp_path, sims, roles)
    with pytest.raises(NoProviderForRole, match="coder"):
        await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert team.calls["planner"] == 1


async def test_unusable_clarifier_answer_costs_one_call_and_the_run_goes_on(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    team = Team(plan_files("a.py"))
    team.questions = "I have no questions."  # type: ignore[assignment]
    use(team, sims)
    config = write_config(tmp_path, sims, ROLES)
    result = await Workflow(config_path=config, output_dir=tmp_path / "out").run(spec_file)
    assert result.status == "ok"
    assert team.calls["clarifier"] == 1
    clarify = next(r for r in result.records if r.name == "clarify")
    assert clarify.note == "no usable questions"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        # Refused like the same answers in a --answers file, before any provider is called.
        ({"lang": ["python", "go"]}, "answers gives 'lang' a list as its answer"),
        ({"db": {"kind": "pg"}}, "answers gives 'db' a mapping as its answer"),
        ({"lang": b"Go"}, "answers gives 'lang' a bytes as its answer"),
        ([("lang", "Go")], "answers must map question ids to answers"),
        ("lang=Go", "answers must map question ids to answers"),
    ],
)
async def test_answers_given_to_the_api_are_checked_like_an_answers_file(
    tmp_path: Path, sims: dict[str, SimServer], answers: object, expected: str
) -> None:
    config = write_config(tmp_path, sims, ROLES)
    workflow = Workflow(config_path=config, output_dir=tmp_path / "out", answers=answers)  # type: ignore[arg-type]
    with pytest.raises(AnswersError) as info:
        await workflow.run(Spec.from_text(SPEC))
    assert expected in info.value.message
    assert all(server.calls == 0 for server in sims.values())
