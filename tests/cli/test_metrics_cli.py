"""``rolecall metrics``, ``metrics trend`` and ``metrics advise``."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli, strict_json

from factories import attempt_event
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent
from rolecall.recording.store import open_store

NOW = time.time()
HOUR = 3600.0


def _calls(
    provider: str,
    role: str,
    count: int,
    success: float,
    latency: float,
    start: float,
    seed: int,
    cost: float | None = None,
) -> list[AttemptEvent]:
    rng = random.Random(seed)
    events = []
    for index in range(count):
        ok = rng.random() < success
        events.append(
            attempt_event(
                run_id=f"run-{seed}",
                task_id=f"t{index}",
                role=role,
                provider=provider,
                model=f"{provider}-m",
                outcome="ok" if ok else "handover",
                error_kind=None if ok else ErrorKind.OVERLOADED,
                latency_ms=latency * rng.uniform(0.8, 1.2),
                input_tokens=100 if ok else 0,
                output_tokens=40 if ok else 0,
                cost_usd=cost,
                ts=start + index * 10,
            )
        )
    return events


@pytest.fixture
def history(project: Path) -> list[AttemptEvent]:
    """Recent calls in two roles, plus ten-day-old calls; stored at the default path."""
    events = _calls("gpt", "coder", 388, 0.71, 900, NOW - 5 * HOUR, seed=1, cost=0.001)
    events += _calls("claude", "coder", 412, 0.99, 1000, NOW - 5 * HOUR, seed=2, cost=0.003)
    events += _calls("gemini", "reviewer", 30, 0.9, 400, NOW - 30 * HOUR, seed=3)
    events += _calls("gpt", "coder", 50, 1.0, 700, NOW - 10 * 86400, seed=4, cost=0.001)
    with open_store("sqlite:///.rolecall/rolecall.db") as store:
        store.record(events)
    return events


def test_metrics_json_agrees_with_events(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "metrics", "--format", "json")
    assert code == 0, err
    rows = {(r["provider"], r["role"]): r for r in json.loads(out)}
    assert set(rows) == {("gpt", "coder"), ("claude", "coder"), ("gemini", "reviewer")}
    gpt = rows[("gpt", "coder")]
    expected = [e for e in history if e.provider == "gpt"]
    assert gpt["requests"] == len(expected) == 438
    assert gpt["successes"] == sum(e.outcome == "ok" for e in expected)
    assert gpt["failures"] == gpt["errors"]["overloaded"] == gpt["requests"] - gpt["successes"]
    assert gpt["tokens"] == {
        "input": sum(e.input_tokens for e in expected),
        "output": sum(e.output_tokens for e in expected),
        "cached_input": 0,
    }
    assert gpt["cost_usd"] == pytest.approx(0.438)
    assert rows[("gemini", "reviewer")]["cost_usd"] is None
    assert set(gpt["latency_ms"]) == {"avg", "p50", "p95", "p99"}
    # --json is the same as --format json
    assert json.loads(run_cli(capsys, "metrics", "--json")[1]) == json.loads(out)


def test_metrics_filters_and_grouping(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "metrics", "--since", "7d", "--json", "--provider", "gpt")
    assert code == 0
    [gpt] = json.loads(out)
    assert gpt["requests"] == 388  # the ten-day-old calls are outside the window
    code, out, _ = run_cli(capsys, "metrics", "--since", "24h", "--json")
    assert {r["provider"] for r in json.loads(out)} == {"gpt", "claude"}
    code, out, _ = run_cli(capsys, "metrics", "--role", "reviewer", "--json")
    assert [r["provider"] for r in json.loads(out)] == ["gemini"]
    code, out, _ = run_cli(capsys, "metrics", "--by", "model", "--json")
    assert sorted(r["model"] for r in json.loads(out)) == ["claude-m", "gemini-m", "gpt-m"]
    iso_until = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(NOW - 9 * 86400))
    code, out, _ = run_cli(capsys, "metrics", "--until", iso_until, "--json")
    assert [(r["provider"], r["requests"]) for r in json.loads(out)] == [("gpt", 50)]


def test_metrics_table_and_csv(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "metrics")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["provider", "role", "requests", "success", "failures"]
    gemini = next(line for line in lines if line.startswith("gemini"))
    assert "reviewer" in gemini and "30" in gemini and gemini.rstrip().endswith("-")
    gemini_failures = 30 - sum(1 for e in history if e.provider == "gemini" and e.outcome == "ok")
    assert f" {gemini_failures} (overloaded {gemini_failures})" in gemini
    code, out, _ = run_cli(capsys, "metrics", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["provider"] for r in rows} == {"gpt", "claude", "gemini"}
    claude = next(r for r in rows if r["provider"] == "claude")
    assert int(claude["requests"]) == 412 and float(claude["latency_p95_ms"]) > 0
    gemini_csv = next(r for r in rows if r["provider"] == "gemini")
    assert gemini_csv["cost_usd"] == "" and gemini_csv["errors"].startswith("overloaded=")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "--since", "yesterday"], "invalid --since value 'yesterday'"),
        (["metrics", "--until", "7q"], "invalid --until value"),
        (["metrics", "--since", "1d", "--until", "2d"], "must be earlier than"),
        (["metrics", "--by", "tenant"], "cannot group by tenant"),
        (["metrics", "--format", "xml"], "xml"),
        (["metrics", "trend", "--bucket", "week"], "week"),
        (["metrics", "trend", "--since", "soon"], "invalid --since"),
        (["metrics", "--store", "mysql://u:pw-secret-123@h/db"], "unsupported metrics store"),
        (["metrics", "--since", "9999999999999999999999h"], "invalid --since value"),
        (["metrics", "--until", "9999999999999999999999h"], "invalid --until value"),
        (["metrics", "--since", "9" * 400 + "d"], "before the year 1"),
        (["metrics", "trend", "--since", "9999999999999999999999h"], "invalid --since value"),
        (["metrics", "advise", "--since", "9999999999999999999999h"], "invalid --since value"),
        (["metrics", "trend", "--png", "chart.txt"], "must end in .png"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    first, *rest = err.splitlines()
    assert first.startswith("error: ") and message in err
    assert all(line.startswith(("Try ", "  ")) for line in rest) and "Traceback" not in err
    assert "pw-secret-123" not in err


def test_an_unsupported_store_url_is_one_line_naming_the_option(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "metrics", "--store", "mysql://u:pw-secret-123@h/db")
    [line] = err.splitlines()
    assert code == 2 and line.startswith("error: --store: unsupported metrics store URL")


def test_postgres_without_psycopg_names_the_extra(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    code, _, err = run_cli(capsys, "metrics", "--store", "postgresql://u@127.0.0.1:1/db")
    assert code == 2 and "pip install 'rolecall[postgres]'" in err and len(err.splitlines()) == 1


def test_a_store_missing_a_table_is_one_line_naming_the_file(
    history: list[AttemptEvent], project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / ".rolecall" / "rolecall.db"
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE rollup_hourly")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    for args in (["metrics", "--since", "1h"], ["metrics", "trend", "--bucket", "hour"]):
        code, out, err = run_cli(capsys, *args)
        [line] = err.splitlines()
        assert code == 1 and out == ""
        assert line.startswith(f"error: cannot read the metrics store {path}: no such table")
        assert "move it aside" in line
    assert path.read_bytes() == before


def test_a_database_of_another_application_is_refused_and_kept(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    for args in (["metrics"], ["metrics", "advise"], ["runs", "list"]):
        code, out, err = run_cli(capsys, *args, "--store", f"sqlite:///{path}")
        [line] = err.splitlines()
        assert code == 1 and out == "" and "is not a rolecall metrics store" in line
    assert path.read_bytes() == before


def test_no_store_yet(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "metrics")[1].strip() == "no metrics recorded yet"
    assert json.loads(run_cli(capsys, "metrics", "--json")[1]) == []
    assert json.loads(run_cli(capsys, "metrics", "trend", "--json")[1]) == []
    code, out, _ = run_cli(capsys, "metrics", "advise")
    assert code == 0 and "too little data" in out
    assert not (project / ".rolecall").exists()


def test_trend_has_several_buckets(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "metrics", "trend", "--bucket", "hour", "--json")
    assert code == 0
    rows = json.loads(out)
    buckets = {r["bucket"] for r in rows}
    assert len(buckets) >= 2
    assert sum(r["requests"] for r in rows) == 830  # the last 48 hours by default
    code, out, _ = run_cli(
        capsys, "metrics", "trend", "--bucket", "day", "--since", "30d", "--json"
    )
    assert sum(r["requests"] for r in json.loads(out)) == 880
    assert len({r["bucket"] for r in json.loads(out)}) >= 2
    code, out, _ = run_cli(capsys, "metrics", "trend", "--bucket", "hour")
    assert out.splitlines()[0].split()[:4] == ["hour", "(UTC)", "provider", "role"]
    # Options given before the subcommand name apply to it.
    code, out, _ = run_cli(capsys, "metrics", "--provider", "gemini", "trend", "--json")
    assert {r["provider"] for r in json.loads(out)} == {"gemini"}


def test_trend_until_alone_shows_the_default_window_ending_then(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    """--until without --since: 30 days (48 hours by the hour) up to that time."""
    code, out, err = run_cli(capsys, "metrics", "trend", "--until", "9d", "--json")
    assert (code, err) == (0, "")
    assert sum(r["requests"] for r in json.loads(out)) == 50  # the ten-day-old calls only
    code, out, err = run_cli(capsys, "metrics", "trend", "--bucket", "hour", "--until", "4h")
    assert (code, err) == (0, "")
    assert "gpt" in out and "gemini" in out
    assert run_cli(capsys, "metrics", "trend", "--bucket", "hour", "--until", "3d")[0] == 0


def test_trend_plot_in_the_terminal(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys, "metrics", "trend", "--bucket", "hour", "--plot", "--metric", "p95"
    )
    assert code == 0
    title, *series = out.splitlines()
    assert title.startswith("p95 latency (ms) per hour")
    assert {line.split()[0] for line in series} == {"claude/coder", "gpt/coder", "gemini/reviewer"}
    assert all(any(ch in line for ch in "▁▂▃▄▅▆▇█") for line in series)


def test_trend_png(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    pytest.importorskip("matplotlib")
    code, out, err = run_cli(capsys, "metrics", "trend", "--bucket", "hour", "--png", "t.png")
    assert code == 0, err
    assert (project / "t.png").read_bytes().startswith(b"\x89PNG")
    assert out.strip() == "wrote t.png"


def test_trend_png_refuses_a_directory_and_reports_what_it_wrote(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    (project / "charts").mkdir()
    code, out, err = run_cli(capsys, "metrics", "trend", "--png", "charts")
    assert code == 2 and out == ""
    assert err.strip() == (
        "error: --png 'charts' is a directory: give a file name such as charts/trend.png"
    )
    assert not (project / "charts.png").exists()
    pytest.importorskip("matplotlib")
    code, out, err = run_cli(capsys, "metrics", "trend", "--png", "charts/Trend.PNG")
    assert code == 0, err
    assert out.strip() == "wrote charts/Trend.PNG"
    assert (project / "charts" / "Trend.PNG").read_bytes().startswith(b"\x89PNG")
    code, out, err = run_cli(capsys, "metrics", "trend", "--png", "missing/t.png")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "cannot write missing/t.png" in err and "Traceback" not in err


def test_trend_png_without_matplotlib_names_it(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(capsys, "metrics", "trend", "--png", "t.png")
    assert (
        code == 2 and err.strip() == "error: --png needs matplotlib: pip install 'rolecall[plot]'"
    )


def test_advise_names_the_weak_pair(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "metrics", "advise", "--since", "7d")
    assert code == 0
    assert "role coder: gpt is worse than claude on success" in out
    assert "suggest: roles.coder.provider: claude (success" in out
    assert "over 412 vs 388 calls" in out
    code, out, _ = run_cli(capsys, "metrics", "advise", "--json")
    findings = json.loads(out)
    weak = next(f for f in findings if f["metric"] == "success_rate")
    assert (weak["role"], weak["provider"], weak["better"]) == ("coder", "gpt", "claude")


@pytest.mark.parametrize("where", ["before", "after"])
def test_advise_judges_only_the_role_asked_for(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str], where: str
) -> None:
    filters = ["--role", "reviewer"]
    args = [*filters, "advise"] if where == "before" else ["advise", *filters]
    code, out, err = run_cli(capsys, "metrics", *args, "--json")
    assert code == 0, err
    # The coder findings are not about the reviewer role, which gemini alone served.
    assert [(f["kind"], f["role"]) for f in json.loads(out)] == [("insufficient_data", "reviewer")]
    code, out, _ = run_cli(capsys, "metrics", *args)
    assert "role coder" not in out
    assert "no provider does clearly worse than another in the same role" in out


@pytest.mark.parametrize("where", ["before", "after"])
def test_advise_for_one_provider_shows_the_findings_about_it(
    history: list[AttemptEvent], capsys: pytest.CaptureFixture[str], where: str
) -> None:
    def advise(provider: str, *more: str) -> tuple[int, str, str]:
        filters = ["--provider", provider]
        args = [*filters, "advise"] if where == "before" else ["advise", *filters]
        return run_cli(capsys, "metrics", *args, *more)

    code, out, _ = advise("gpt", "--json")
    assert code == 0
    assert {(f["provider"], f["better"]) for f in json.loads(out)} == {("gpt", "claude")}
    code, out, _ = advise("claude", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = advise("claude")
    assert "gpt is worse" not in out
    assert out.strip() == "claude does not do clearly worse than another provider"
    code, out, _ = advise("mistral")
    assert out.strip() == "no calls from provider mistral in this range"


def test_advise_with_too_little_data(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store("sqlite:///.rolecall/rolecall.db") as store:
        store.record(
            _calls("gpt", "coder", 8, 0.5, 900, NOW - HOUR, seed=1)
            + _calls("claude", "coder", 6, 1.0, 300, NOW - HOUR, seed=2)
        )
    code, out, _ = run_cli(capsys, "metrics", "advise")
    assert code == 0
    assert "role coder: too little data to judge (calls: claude 6, gpt 8)" in out
    assert "no provider does clearly worse" in out


# -- figures no clock gives ----------------------------------------------------------------


@pytest.fixture
def huge_figures(project: Path) -> Path:
    """Two calls whose sums (the average, the cost) are infinite: a store written before
    rolecall refused such sums, or by another writer."""
    path = project / ".rolecall" / "rolecall.db"
    with open_store(f"sqlite:///{path}") as store:
        store.record([attempt_event(run_id="run-x", task_id=f"t{n}") for n in range(2)])
    with sqlite3.connect(path) as db:
        for table in ("rollup_hourly", "rollup_daily"):
            db.execute(f"UPDATE {table} SET latency_sum = 1e308 * 10, cost_usd = 1e308 * 10")
    return project


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("metrics", "--json"), id="metrics"),
        pytest.param(("metrics", "trend", "--json"), id="trend"),
    ],
)
def test_an_infinite_figure_is_json_null(
    huge_figures: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    (row,) = strict_json(out)
    assert row["latency_ms"]["avg"] is None
    assert row["cost_usd"] is None
    assert row["requests"] == 2


def test_a_huge_cost_keeps_its_table_row_short(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_store("sqlite:///.rolecall/rolecall.db") as store:
        store.record([attempt_event(cost_usd=1e300)])
    code, out, _ = run_cli(capsys, "metrics")
    assert code == 0
    _, row = out.splitlines()
    assert len(row) < 150
    assert row.endswith("$1.00e+300")


def test_an_infinite_cost_leaves_a_gap_in_the_chart(
    huge_figures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "metrics", "trend", "--plot", "--metric", "cost")
    assert code == 0
    title, line = out.splitlines()
    assert title.startswith("cost (USD) per day")
    assert line.split() == ["gpt/coder"]
