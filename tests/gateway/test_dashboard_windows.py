"""The dashboard's ``/api/`` reads the windows and filters ``rolecall metrics`` reads.

A window without ``until`` ends now, as the CLI's without ``--until``: calls stamped later
(a clock that ran ahead) are in no chart and weigh in no advice. ``/api/advise`` and
``/api/trend`` take the CLI's ``provider`` and ``role`` and answer what the CLI prints.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from factories import T0, attempt_event
from rolecall.cli import main
from rolecall.dashboard.server import DashboardServer
from rolecall.events import AttemptEvent
from rolecall.recording.store import open_store

# 2100-01-01 00:00 UTC: later than any clock running these tests, a fixed time all the same.
AHEAD = 4_102_444_800.0
SINCE = T0 - 86400  # 2025-12-31 00:00 UTC


def _calls(provider: str, role: str, count: int, failed: int, ts: float) -> list[AttemptEvent]:
    """``count`` calls in ``role`` from ``ts`` on, the first ``failed`` of them handed over."""
    return [
        attempt_event(
            run_id=f"{provider}-{role}-{ts:.0f}",
            task_id=f"t{index}",
            provider=provider,
            role=role,
            outcome="handover" if index < failed else "ok",
            error_kind="overloaded" if index < failed else None,
            ts=ts + index,
        )
        for index in range(count)
    ]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """On 2026-01-01 gpt fails in both roles where claude does well, and among clarifiers
    only gemini has enough calls to judge; in the year 2100 (a clock that ran ahead) claude
    fails every coder call."""
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    with open_store(url) as store:
        store.record(
            _calls("gpt", "coder", 100, 40, T0)
            + _calls("claude", "coder", 100, 0, T0)
            + _calls("gpt", "reviewer", 100, 40, T0)
            + _calls("claude", "reviewer", 100, 0, T0)
            + _calls("gemini", "clarifier", 30, 0, T0)
            + _calls("claude", "clarifier", 5, 0, T0)
            + _calls("claude", "coder", 400, 400, AHEAD)
        )
    return url


@pytest.fixture
def dashboard(store_url: str) -> Iterator[DashboardServer]:
    server = DashboardServer(store_url).start()
    yield server
    server.stop()


def _get(server: DashboardServer, path: str, **query: Any) -> Any:
    url = f"{server.url}{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat()


def test_a_window_without_until_ends_now(dashboard: DashboardServer) -> None:
    rows = _get(dashboard, "/api/metrics", since=SINCE, role="coder")
    assert {row["provider"]: row["requests"] for row in rows} == {"gpt": 100, "claude": 100}
    trend = _get(dashboard, "/api/trend", since=SINCE, bucket="day")
    assert {row["bucket"][:4] for row in trend} == {"2026"}
    advice = _get(dashboard, "/api/advise", since=SINCE)
    assert {(f["provider"], f["role"]) for f in advice if f["kind"] == "reassign"} == {
        ("gpt", "coder"),
        ("gpt", "reviewer"),
    }


def test_until_a_later_time_reads_calls_stamped_later(dashboard: DashboardServer) -> None:
    rows = _get(dashboard, "/api/metrics", since=SINCE, until=AHEAD + 86400, role="coder")
    assert {row["provider"]: row["requests"] for row in rows} == {"gpt": 100, "claude": 500}


def test_since_later_than_now_without_until_is_a_400_naming_the_fix(
    dashboard: DashboardServer,
) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(dashboard, "/api/metrics", since=AHEAD)
    assert caught.value.code == 400
    message = json.loads(caught.value.read())["error"]
    assert "later than now" in message and "until" in message


@pytest.mark.parametrize(
    ("query", "reassigned"),
    [
        ({"role": "reviewer"}, {("gpt", "reviewer")}),
        ({"provider": "gpt"}, {("gpt", "coder"), ("gpt", "reviewer")}),
        ({"provider": "claude", "role": "coder"}, set()),
    ],
    ids=["role", "provider", "both"],
)
def test_advise_takes_the_filters_of_the_cli(
    dashboard: DashboardServer,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
    query: dict[str, str],
    reassigned: set[tuple[str, str]],
) -> None:
    options = [f"--{name}={value}" for name, value in query.items()]
    expected = _cli_json(
        capsys, "metrics", "advise", "--json", "--store", store_url, "--since", _iso(SINCE),
        "--until", _iso(T0 + 86400), *options,
    )  # fmt: skip
    answer = _get(dashboard, "/api/advise", since=SINCE, until=T0 + 86400, **query)
    assert answer == expected
    assert {(f["provider"], f["role"]) for f in answer if f["kind"] == "reassign"} == reassigned
    assert all(f["role"] != "clarifier" for f in answer)


def test_trend_takes_the_filters_of_the_cli(
    dashboard: DashboardServer, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _cli_json(
        capsys, "metrics", "trend", "--json", "--store", store_url, "--since", _iso(SINCE),
        "--until", _iso(T0 + 86400), "--provider", "gpt", "--role", "reviewer",
    )  # fmt: skip
    answer = _get(
        dashboard,
        "/api/trend",
        since=SINCE,
        until=T0 + 86400,
        bucket="day",
        provider="gpt",
        role="reviewer",
    )
    assert answer == expected
    assert [(row["provider"], row["role"]) for row in answer] == [("gpt", "reviewer")]


def test_a_since_given_as_a_duration_counts_back_from_the_servers_clock(
    store_url: str,
) -> None:
    # The page asks for "the last 24 hours" as since=24h, so a browser whose clock is off
    # (here the server's reads 2026-01-01 03:00, a year before the machine's) sees its window.
    server = DashboardServer(store_url, clock=lambda: T0 + 3 * 3600).start()
    try:
        rows = _get(server, "/api/metrics", since="24h", role="coder")
        assert {row["provider"]: row["requests"] for row in rows} == {"gpt": 100, "claude": 100}
        trend = _get(server, "/api/trend", since="2d", bucket="hour", role="coder")
        assert {row["bucket"][:10] for row in trend} == {"2026-01-01"}
        assert _get(server, "/api/metrics", since="1h", role="coder") == []  # from 02:00
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["24x", "-24h", "h", "9" * 400 + "d"])
def test_a_since_that_is_no_duration_nor_a_time_is_a_400(
    dashboard: DashboardServer, value: str
) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(dashboard, "/api/metrics", since=value)
    assert caught.value.code == 400
    message = json.loads(caught.value.read())["error"]
    assert message.startswith("since=") and "24h" in message and "\n" not in message
