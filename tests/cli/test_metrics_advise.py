"""``rolecall metrics advise`` against the config: it proposes only what can be assigned."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli, store_events

from factories import attempt_event, calls_in_the_last_hour

NOW = time.time()


@pytest.fixture
def removed_provider(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """gpt does badly in the coder role, claude (since removed from the config) best of
    all, gemini (still configured) well; the config's key variables are unset here."""
    monkeypatch.delenv("UNSET_OPENAI_KEY", raising=False)
    monkeypatch.delenv("UNSET_GEMINI_KEY", raising=False)
    (project / "rolecall.yaml").write_text(
        "schema_version: 1\n"
        "providers:\n"
        "  gpt: {type: openai, model: gpt-4.1, api_key: '${UNSET_OPENAI_KEY}'}\n"
        "  gemini: {type: google, model: gemini-2.5-pro, api_key: '${UNSET_GEMINI_KEY}'}\n"
        "roles:\n"
        "  coder: {provider: gpt, fallback: [gemini]}\n",
        encoding="utf-8",
    )
    store_events(
        *calls_in_the_last_hour("gpt", 400, 0.70, seed=1),
        *calls_in_the_last_hour("claude", 400, 1.0, seed=2),
        *calls_in_the_last_hour("gemini", 400, 0.97, seed=3),
    )
    return project


def test_advise_never_suggests_a_provider_the_config_no_longer_has(
    removed_provider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "metrics", "advise", "--json")
    assert code == 0, err
    findings = json.loads(out)
    assert {(f["provider"], f["better"]) for f in findings} == {("gpt", "gemini")}
    code, out, _ = run_cli(capsys, "metrics", "advise")
    assert "suggest: roles.coder.provider: gemini" in out and "claude" not in out


def test_advise_without_a_config_judges_every_provider_recorded(
    removed_provider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (removed_provider / "rolecall.yaml").unlink()
    code, out, _ = run_cli(capsys, "metrics", "advise", "--json")
    assert code == 0
    assert ("gpt", "claude") in {(f["provider"], f["better"]) for f in json.loads(out)}


def test_a_cost_known_for_some_answers_only_is_not_judged_cheap(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cheap-looking: $0.01 a call, but priced only for its last 10 calls (pricing added late).
    unpriced = [attempt_event(provider="partly", task_id=f"u{i}", ts=NOW - 60) for i in range(90)]
    priced = [
        attempt_event(provider="partly", task_id=f"p{i}", cost_usd=0.01, ts=NOW - 60)
        for i in range(10)
    ]
    whole = [
        attempt_event(provider="whole", task_id=f"w{i}", cost_usd=0.005, ts=NOW - 60)
        for i in range(100)
    ]
    store_events(*unpriced, *priced, *whole)
    code, out, _ = run_cli(capsys, "metrics", "--format", "json")
    rows = {row["provider"]: row for row in json.loads(out)}
    assert code == 0 and rows["partly"]["priced_requests"] == 10
    assert rows["whole"]["priced_requests"] == 100
    code, out, _ = run_cli(capsys, "metrics", "advise", "--json")
    assert code == 0
    # Before: "whole is worse than partly on cost per call ($0.0050 vs $0.0010)".
    assert [f for f in json.loads(out) if f["metric"] == "cost_per_success"] == []


def test_the_table_marks_a_cost_that_leaves_out_unpriced_answers(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_events(
        attempt_event(provider="partly", task_id="a", cost_usd=0.01),
        attempt_event(provider="partly", task_id="b"),
        attempt_event(provider="priced", task_id="c", cost_usd=0.01),
        attempt_event(provider="priced", task_id="d", outcome="handover", error_kind="server"),
    )
    code, out, _ = run_cli(capsys, "metrics")
    lines = out.splitlines()
    assert code == 0
    assert next(line for line in lines if line.startswith("partly")).endswith("$0.0100+")
    # A failed call costs nothing: the other provider's cost is whole.
    assert next(line for line in lines if line.startswith("priced")).endswith("$0.0100")
    assert lines[-1].startswith("cost+: some answered calls have no known cost")


def test_a_role_only_one_provider_served_is_said_to_be_unjudged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_events(*calls_in_the_last_hour("gpt", 100, 0.5, seed=1))
    code, out, _ = run_cli(capsys, "metrics", "advise")
    # Before: only "no provider does clearly worse than another in the same role", of a
    # provider that failed half its calls, with nothing to compare it with.
    assert code == 0
    assert out.splitlines()[0] == (
        "role coder: too little data to judge (calls: gpt 100); "
        "need at least 20 calls from each of two providers"
    )
    code, out, _ = run_cli(capsys, "metrics", "advise", "--json")
    assert [(f["kind"], f["role"], f["requests"]) for f in json.loads(out)] == [
        ("insufficient_data", "coder", 100)
    ]


@pytest.mark.parametrize("window", [["--since", "1d"], ["--role", "planner"]])
def test_a_window_without_calls_is_not_called_an_empty_store(
    project: Path, capsys: pytest.CaptureFixture[str], window: list[str]
) -> None:
    store_events(*(attempt_event(task_id=f"t{i}", ts=NOW - 3 * 86400) for i in range(30)))
    code, out, _ = run_cli(capsys, "metrics", "advise", *window)
    # Before: "no calls recorded yet", of a store holding 30 calls.
    assert (code, out) == (0, "no calls in this range: nothing to judge\n")
