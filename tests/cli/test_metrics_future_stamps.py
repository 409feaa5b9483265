"""Calls stamped later than now (a host whose clock ran ahead, a worker on another machine
writing to a shared store) are not read into a window that ends now.

A window without ``--until`` ends now: ``metrics``, ``metrics trend`` and ``metrics
advise`` leave such calls out, and say on stderr how many and how to count them
(``--until`` a later time), so nothing is dropped in silence.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli, store_events, strict_json

from factories import T0, attempt_event

# 2100-01-01 00:00 UTC: later than any clock running these tests, a fixed time all the same.
AHEAD = 4_102_444_800.0
SINCE = "2025-12-31T00:00Z"


@pytest.fixture
def clock_ahead(project: Path) -> Path:
    """In the coder role: 30 calls to gpt answered on 2026-01-01, and 30 calls to claude,
    all failed, stamped by a clock that ran ahead to the year 2100."""
    store_events(
        *(attempt_event(run_id="now", task_id=f"g{i}", ts=T0 + i) for i in range(30)),
        *(
            attempt_event(
                run_id="ahead",
                task_id=f"c{i}",
                provider="claude",
                outcome="handover",
                error_kind="overloaded",
                ts=AHEAD + i,
            )
            for i in range(30)
        ),
    )
    return project


def test_a_window_that_ends_now_leaves_out_calls_stamped_later_and_says_so(
    clock_ahead: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "metrics", "--since", SINCE, "--format", "json")
    assert code == 0, err
    assert [(row["provider"], row["requests"]) for row in strict_json(out)] == [("gpt", 30)]
    assert "30 calls" in err and "--until" in err


def test_until_a_later_time_counts_them(
    clock_ahead: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "metrics", "--since", SINCE, "--until", "2101-01-01", "--format", "json"
    )
    assert code == 0, err
    rows = strict_json(out)
    assert sorted((row["provider"], row["requests"]) for row in rows) == [
        ("claude", 30),
        ("gpt", 30),
    ]
    assert err == ""


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_a_trend_shows_no_bucket_later_than_now(
    clock_ahead: Path, capsys: pytest.CaptureFixture[str], bucket: str
) -> None:
    code, out, err = run_cli(
        capsys, "metrics", "trend", "--bucket", bucket, "--since", SINCE, "--json"
    )
    assert code == 0, err
    rows = strict_json(out)
    assert [row["bucket"][:4] for row in rows] == ["2026"]
    assert "30 calls" in err


def test_advise_does_not_weigh_calls_stamped_later_than_now(
    clock_ahead: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "metrics", "advise", "--since", SINCE, "--min-requests", "5", "--json"
    )
    assert code == 0, err
    assert not any(finding["kind"] == "reassign" for finding in strict_json(out))
    assert "30 calls" in err


def test_since_later_than_now_without_until_names_the_fix(
    clock_ahead: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "metrics", "--since", "2099-12-31")
    assert code == 2
    assert "later than now" in err and "--until" in err
    assert "None" not in err and "Traceback" not in err
