"""Times no clock gives (past year 9999, before year 1) in the store read as unknown.

A store written by a broken clock, or by another program, must still list its runs
and trends: the time shows as ``-`` in a table and ``null`` in JSON, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli, store_events, strict_json

from factories import attempt_event


@pytest.fixture
def far_times(project: Path) -> Path:
    """Calls stamped far past year 9999 and before year 1, as a broken clock would."""
    store_events(
        attempt_event(run_id="run-far", ts=1e15),
        attempt_event(run_id="run-past", ts=-1e14),
    )
    return project


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("runs", "list"), id="runs-list"),
        pytest.param(("runs", "list", "--json"), id="runs-list-json"),
        pytest.param(("runs", "show", "run-far"), id="runs-show"),
        pytest.param(("runs", "show", "run-past", "--json"), id="runs-show-json"),
        pytest.param(("metrics", "trend", "--since", "0001-01-01"), id="trend"),
        pytest.param(("metrics", "trend", "--since", "0001-01-01", "--json"), id="trend-json"),
        pytest.param(("metrics", "trend", "--since", "0001-01-01", "--plot"), id="trend-plot"),
    ],
)
def test_times_past_the_calendar_show_as_unknown(
    far_times: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    if "--json" in args:
        data = strict_json(out)
        rows = data if isinstance(data, list) else [data]
        assert rows
        assert all(row.get("started_at", row.get("bucket")) is None for row in rows)
    else:
        assert out.strip()


@pytest.fixture
def far_and_now(project: Path) -> Path:
    """One call stamped far past year 9999 and one stamped now, in one store."""
    store_events(attempt_event(run_id="run-far", ts=1e15), attempt_event(run_id="run-now"))
    return project


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_the_terminal_chart_of_a_span_past_the_calendar_stays_small(
    far_and_now: Path, capsys: pytest.CaptureFixture[str], bucket: str
) -> None:
    """Billions of hours from now to the broken clock's time: the chart builds only the
    120 columns it shows, not every bucket of the span first."""
    code, out, err = run_cli(
        capsys, "metrics", "trend", "--since", "0001-01-01", "--bucket", bucket, "--plot"
    )
    assert code == 0 and err == ""
    title, line = out.strip().splitlines()
    assert title == f"requests per {bucket}, - .. - UTC"
    assert line.startswith("gpt/coder") and len(line) < 160


@pytest.mark.parametrize("stored", ["far_times", "far_and_now"])
def test_a_png_leaves_out_buckets_past_the_calendar(
    stored: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="--png needs rolecall[plot]")
    path = request.getfixturevalue(stored) / "trend.png"
    code, out, err = run_cli(
        capsys, "metrics", "trend", "--since", "0001-01-01", "--bucket", "day", "--png", str(path)
    )
    assert (code, err) == (0, "")
    assert out.strip() == f"wrote {path}"
    assert path.read_bytes().startswith(b"\x89PNG")
