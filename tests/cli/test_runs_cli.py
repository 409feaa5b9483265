"""``rolecall runs list`` and ``rolecall runs show``."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest
from cli_helpers import run_cli

from factories import attempt_event, task_event
from rolecall.config.schema import MetricsConfig
from rolecall.errors import ErrorKind
from rolecall.recording.recorder import Recorder
from rolecall.recording.store import open_store

T0 = time.time() - 3600


def _record_workflow(base: Path, run_id: str = "20260101-120000-abc123") -> None:
    """A run written the way `rolecall run` writes it: through the recorder."""
    recorder = Recorder(
        MetricsConfig(flush_interval=0.05), base_dir=base, install_signal_handlers=False
    )
    recorder.start_run(run_id, "workflow", {"spec": "wc.md"})
    for event in [
        attempt_event(
            run_id=run_id,
            task_id="plan",
            role="planner",
            provider="claude",
            model="c",
            latency_ms=800.0,
            input_tokens=100,
            output_tokens=50,
            cost_usd=0.002,
            ts=T0 + 1,
        ),
        task_event(
            run_id=run_id,
            task_id="plan",
            role="planner",
            provider="claude",
            model="c",
            latency_ms=800.0,
            input_tokens=100,
            output_tokens=50,
            cost_usd=0.002,
            stage="plan",
            ts=T0 + 1.1,
        ),
        attempt_event(
            run_id=run_id,
            task_id="gen-1",
            role="coder",
            provider="gpt",
            model="g",
            outcome="retry",
            error_kind=ErrorKind.RATE_LIMIT,
            latency_ms=50.0,
            ts=T0 + 2,
        ),
        attempt_event(
            run_id=run_id,
            task_id="gen-1",
            role="coder",
            provider="gpt",
            model="g",
            attempt=2,
            outcome="handover",
            error_kind=ErrorKind.QUOTA,
            latency_ms=40.0,
            ts=T0 + 3,
        ),
        attempt_event(
            run_id=run_id,
            task_id="gen-1",
            role="coder",
            provider="claude",
            model="c",
            latency_ms=1500.0,
            input_tokens=200,
            output_tokens=300,
            ts=T0 + 4,
        ),
        task_event(
            run_id=run_id,
            task_id="gen-1",
            role="coder",
            provider="claude",
            model="c",
            attempts=3,
            handovers=1,
            latency_ms=1590.0,
            input_tokens=200,
            output_tokens=300,
            stage="generate",
            ts=T0 + 4.1,
        ),
    ]:
        recorder.emit(event)
    recorder.finish_run(run_id, "ok")
    recorder.close()


def test_runs_show_json_shape(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record_workflow(project)
    code, out, err = run_cli(capsys, "runs", "show", "20260101-120000-abc123", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"run_id", "status", "started_at", "finished_at", "tasks"} <= set(data)
    assert (data["run_id"], data["status"]) == ("20260101-120000-abc123", "ok")
    assert data["started_at"].endswith("+00:00") and data["finished_at"].endswith("+00:00")
    plan, gen = data["tasks"]
    assert {
        "task_id",
        "role",
        "stage",
        "status",
        "provider",
        "attempts",
        "input_tokens",
        "output_tokens",
        "latency_ms",
    } <= set(gen)
    assert (gen["task_id"], gen["role"], gen["stage"], gen["status"], gen["provider"]) == (
        "gen-1",
        "coder",
        "generate",
        "ok",
        "claude",
    )
    assert [set(a) for a in gen["attempts"]] == [
        {"provider", "attempt", "outcome", "error_kind", "latency_ms"}
    ] * 3
    assert [(a["provider"], a["outcome"], a["error_kind"]) for a in gen["attempts"]] == [
        ("gpt", "retry", "rate_limit"),
        ("gpt", "handover", "quota"),
        ("claude", "ok", None),
    ]
    assert (gen["input_tokens"], gen["output_tokens"], gen["latency_ms"]) == (200, 300, 1590.0)
    assert plan["provider"] == "claude" and plan["cost_usd"] == 0.002


def test_runs_show_table_and_prefix(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record_workflow(project)
    code, out, _ = run_cli(capsys, "runs", "show", "20260101-12")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "run 20260101-120000-abc123 (workflow): ok"
    header = lines[2].split()
    assert header[:6] == ["task", "stage", "role", "provider", "attempts", "hand-overs"]
    assert "status" in header and "latency" in header
    gen = next(line.split() for line in lines if line.startswith("gen-1"))
    assert gen[:6] == ["gen-1", "generate", "coder", "claude", "3", "1"]
    assert "1.59s" in gen and "200/300" in gen and gen[-1] == "ok"


def test_runs_list(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record_workflow(project, "20260101-aaaa")
    _record_workflow(project, "20260102-bbbb")
    code, out, _ = run_cli(capsys, "runs", "list", "--json")
    assert code == 0
    runs = json.loads(out)
    assert [r["run_id"] for r in runs] == ["20260102-bbbb", "20260101-aaaa"]
    assert (runs[0]["tasks"], runs[0]["attempts"], runs[0]["handovers"]) == (2, 4, 1)
    assert runs[0]["status"] == "ok" and runs[0]["kind"] == "workflow"
    code, out, _ = run_cli(capsys, "runs", "list", "--limit", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["run", "kind", "status"]
    assert len(lines) == 2 and lines[1].startswith("20260102-bbbb")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "nope"], "no run matches 'nope'"),
        (["runs", "show", "x" * 10_000], "no run matches 'xxx"),  # longer than a file name
        (["runs", "show", "../../etc/passwd"], "no run matches '../../etc/passwd'"),
        (["runs", "show", "2026010"], "matches several runs"),
        (["runs", "list", "--limit", "0"], "--limit"),
        (["runs", "list", "-n", "99999999999999999999999"], "--limit"),
        (["runs", "show"], "Missing argument"),
        (["runs", "show", ""], "run id is empty: give a run id or its start"),
        (["runs", "show", "  "], "run id is empty: give a run id or its start"),
    ],
)
def test_runs_errors_are_one_line_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _record_workflow(project, "20260101-aaaa")
    _record_workflow(project, "20260102-bbbb")
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert out == ""
    first, *rest = err.splitlines()
    assert first.startswith("error: ") and message in first
    assert all(line.startswith("Try ") for line in rest)
    assert "Traceback" not in err


def test_no_store_yet(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "list")
    assert (code, out.strip()) == (0, "no runs recorded yet")
    assert run_cli(capsys, "runs", "list", "--json")[1].strip() == "[]"
    assert not (project / ".rolecall").exists()  # reading creates nothing


def test_show_falls_back_to_the_run_log(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record_workflow(project, "logged-run")
    (project / ".rolecall" / "rolecall.db").unlink()
    code, out, err = run_cli(capsys, "runs", "show", "logged", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["run_id"] == "logged-run" and len(data["tasks"]) == 2
    code, out, _ = run_cli(capsys, "runs", "list", "--json")
    assert [r["run_id"] for r in json.loads(out)] == ["logged-run"]


def test_a_damaged_run_log_shows_what_it_can_and_says_what_it_skipped(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_workflow(project, "logged-run")
    (project / ".rolecall" / "rolecall.db").unlink()
    log = project / ".rolecall" / "runs" / "logged-run.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"  # cut in the middle of a line
    lines.insert(3, '{"type": "attempt", "run_id": "logged-run", "task_id": "gen-1"}\n')
    log.write_text("".join(lines))
    damaged = log.read_bytes()
    for args in (["runs", "show", "logged-run"], ["runs", "show", "logged-run", "--json"]):
        code, out, err = run_cli(capsys, *args)
        assert code == 0 and "Traceback" not in err
        [note] = err.splitlines()
        assert note.startswith("note: run logged-run: skipped 2 unreadable lines of ")
        assert str(Path(".rolecall") / "runs" / "logged-run.jsonl") in note
        assert "gen-1" in out
    code, out, err = run_cli(capsys, "runs", "list")
    assert code == 0 and "logged-run" in out and "skipped 2 unreadable lines" in err
    assert log.read_bytes() == damaged


def test_config_metrics_url_is_used_even_without_provider_keys(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = project / "elsewhere" / "m.db"
    with open_store(f"sqlite:///{db}") as store:
        store.start_run("from-config", "ask", started_at=T0)
    monkeypatch.delenv("ROLECALL_TEST_UNSET_KEY", raising=False)
    (project / "rolecall.yaml").write_text(
        "providers:\n"
        '  gpt: {type: openai, model: gpt-4.1, api_key: "${ROLECALL_TEST_UNSET_KEY}"}\n'
        "default_provider: gpt\n"
        f"metrics:\n  url: sqlite:///{db}\n"
    )
    from rolecall.config.load import load_config
    from rolecall.errors import ConfigError

    with pytest.raises(ConfigError, match="ROLECALL_TEST_UNSET_KEY"):
        load_config()  # the provider section is unusable here ...
    code, out, err = run_cli(capsys, "runs", "list", "--json")
    assert code == 0, err  # ... but the metrics section is all these commands need
    assert [r["run_id"] for r in json.loads(out)] == ["from-config"]


def test_missing_config_file_is_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "runs", "list", "-c", "missing.yaml")
    assert code == 2 and "missing.yaml" in err


def test_store_option_overrides_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = project / "other.db"
    with open_store(f"sqlite:///{db}") as store:
        store.start_run("via-option", "gateway", started_at=T0)
    code, out, _ = run_cli(capsys, "runs", "list", "--json", "--store", f"sqlite:///{db}")
    assert code == 0 and json.loads(out)[0]["kind"] == "gateway"


def _peak_bytes(capsys: pytest.CaptureFixture[str], *args: str) -> int:
    """The most memory Python held at once while ``rolecall ARGS`` ran (tracemalloc)."""
    tracemalloc.start()
    try:
        assert run_cli(capsys, *args)[0] == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_runs_list_from_the_run_logs_holds_one_run_at_a_time(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a store, each listed run's log is read whole (a gateway's holds up to
    100,000 tasks): the listing keeps its summary, not every run's records at once."""
    runs = project / ".rolecall" / "runs"
    runs.mkdir(parents=True)
    lines = "".join(
        json.dumps({"type": "task", "run_id": "big", "task_id": f"t{n}", "role": "coder",
                    "status": "ok", "provider": "gpt", "latency_ms": 1.0, "ts": T0 + n}) + "\n"
        for n in range(3000)
    )  # fmt: skip
    (runs / "big-0.jsonl").write_text(lines.replace('"big"', '"big-0"'))
    run_cli(capsys, "runs", "list", "--json")  # what it imports is not counted
    one = _peak_bytes(capsys, "runs", "list", "--json")
    for number in range(1, 6):
        (runs / f"big-{number}.jsonl").write_text(lines.replace('"big"', f'"big-{number}"'))
    six = _peak_bytes(capsys, "runs", "list", "--json")
    assert six < 2 * one
