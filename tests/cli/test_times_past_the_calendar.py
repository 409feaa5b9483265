"""Times no clock gives (past year 9999, before year 1) in the store read as unknown.

A store written by a broken clock, or by another program, must still list its runs:
the time shows as ``-`` in a table and ``null`` in JSON, not a traceback. A trend, whose
window ends now, leaves out a call stamped past year 9999 and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from cli_helpers import DEFAULT_STORE, run_cli, store_events, strict_json

from factories import attempt_event
from rolecall.cli._charts import save_png, terminal_chart
from rolecall.recording.store import EARLIEST_TIME, open_store
from rolecall.recording.store.rows import TrendRow


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


@pytest.mark.parametrize("shown", [(), ("--json",), ("--plot",)], ids=["table", "json", "plot"])
def test_a_trend_leaves_out_a_call_past_the_calendar_and_says_so(
    far_times: Path, capsys: pytest.CaptureFixture[str], shown: tuple[str, ...]
) -> None:
    code, out, err = run_cli(capsys, "metrics", "trend", "--since", "0001-01-01", *shown)
    assert code == 0
    assert (strict_json(out) == []) if shown == ("--json",) else "no calls" in out
    assert err.startswith("note: 1 call stamped later than now")


@pytest.fixture
def far_and_now(project: Path) -> Path:
    """One call stamped far past year 9999 and one stamped now, in one store."""
    store_events(attempt_event(run_id="run-far", ts=1e15), attempt_event(run_id="run-now"))
    return project


def _stored_trend(bucket: Literal["hour", "day"]) -> list[TrendRow]:
    """The store's trend from year 1 on, with no end: the call past year 9999 among it."""
    with open_store(DEFAULT_STORE) as store:
        return store.trend(bucket, since=EARLIEST_TIME)


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_the_terminal_chart_of_a_span_past_the_calendar_stays_small(
    far_and_now: Path, bucket: Literal["hour", "day"]
) -> None:
    """Billions of hours from now to the broken clock's time: the chart builds only the
    120 columns it shows, not every bucket of the span first."""
    title, line = terminal_chart(_stored_trend(bucket), "requests", bucket).splitlines()
    assert title == f"requests per {bucket}, - .. - UTC"
    assert line.startswith("gpt/coder") and len(line) < 160


@pytest.mark.parametrize("stored", ["far_times", "far_and_now"])
def test_a_png_leaves_out_buckets_past_the_calendar(
    stored: str, request: pytest.FixtureRequest
) -> None:
    pytest.importorskip("matplotlib", reason="--png needs rolecall[plot]")
    path = request.getfixturevalue(stored) / "trend.png"
    save_png(_stored_trend("day"), "requests", "day", str(path))
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_chart_of_a_window_that_ends_now_draws_the_call_stamped_now(
    far_and_now: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "metrics", "trend", "--since", "0001-01-01", "--bucket", "day", "--plot"
    )
    assert code == 0
    title, line = out.strip().splitlines()
    assert " - " not in title and line.startswith("gpt/coder")
    assert err.startswith("note: 1 call stamped later than now")
