"""``metrics trend --plot`` fits the terminal: a line the terminal would wrap breaks a
sparkline in two and mixes it with the next group's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli, store_events

from factories import T0, attempt_event

HOUR = 3600.0
WINDOW = ("--since", "2026-01-01T00:00Z", "--until", "2026-01-03T00:00Z", "--bucket", "hour")


@pytest.fixture
def two_days(project: Path) -> Path:
    """Two days of hourly calls in two groups, one with a long name."""
    store_events(
        *(attempt_event(run_id="a", task_id=f"a{h}", ts=T0 + h * HOUR) for h in range(48)),
        *(
            attempt_event(
                run_id="b",
                task_id=f"b{h}",
                provider="claude-sonnet-long-name",
                role="reviewer",
                ts=T0 + h * HOUR,
            )
            for h in range(0, 48, 2)
        ),
    )
    return project


@pytest.mark.parametrize("columns", [20, 40, 80])
def test_no_line_of_the_chart_is_wider_than_the_terminal(
    two_days: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = run_cli(capsys, "metrics", "trend", *WINDOW, "--plot")
    assert code == 0, err
    lines = out.rstrip("\n").split("\n")
    assert all(len(line) <= columns for line in lines), lines
    # Each group keeps its name (cut short past the terminal's width) and a sparkline of
    # its latest hours.
    assert any(line.startswith("gpt/coder") for line in lines)
    long_name = "claude-sonnet-long-name/reviewer"
    assert any(line.startswith(long_name[: columns - 1]) for line in lines)
    assert sum("█" in line for line in lines) == 2


def test_without_a_terminal_width_the_chart_shows_every_bucket(
    two_days: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, err = run_cli(capsys, "metrics", "trend", *WINDOW, "--plot")
    assert code == 0, err
    gpt = next(line for line in out.splitlines() if line.startswith("gpt/coder"))
    assert gpt.split()[1] == "█" * 48
