"""A run whose rows hold what rolecall never writes (another program's, a damaged store).

A task's latency that is text instead of a number, or a run's meta that is not JSON, made
``/api/runs/RUN`` raise: the dashboard dropped the connection (the browser said "Failed to
fetch") with a traceback on its console, and ``rolecall runs show`` printed one. A row it
cannot read is now one line naming the run and the store; a meta it cannot read (it only
informs) is read as none.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from factories import T0, attempt_event, task_event
from rolecall.cli import main
from rolecall.dashboard.server import DashboardServer
from rolecall.recording.store import open_store

RUN = "r<b>"


def _recorded(tmp_path: Path, damage: str) -> str:
    path = tmp_path / "metrics.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        store.record(
            [
                attempt_event(run_id=RUN, outcome="handover", error_kind="overloaded", ts=T0),
                attempt_event(run_id=RUN, attempt=2, ts=T0 + 1),
                task_event(run_id=RUN, attempts=2, handovers=1, ts=T0 + 2),
            ]
        )
    with sqlite3.connect(path) as conn:
        conn.execute(damage)
    return url


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return _recorded(tmp_path, "UPDATE tasks SET latency_ms = 'fast'")


def test_the_dashboard_answers_a_one_line_error_for_a_run_it_cannot_read(store_url: str) -> None:
    server = DashboardServer(store_url).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{server.url}/api/runs/{urllib.parse.quote(RUN)}")
    finally:
        server.stop()
    assert caught.value.code == 503
    message = json.loads(caught.value.read())["error"]
    assert repr(RUN) in message and "metrics.db" in message and "\n" not in message


def test_runs_show_prints_one_line_for_a_run_it_cannot_read(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "show", RUN, "--store", store_url]) != 0
    err = capsys.readouterr().err
    assert repr(RUN) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("meta", ["'{oops'", "'[1, 2]'", "X'FF'"])
def test_a_run_whose_meta_is_no_json_object_is_shown_without_it(
    tmp_path: Path, meta: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _recorded(tmp_path, f"UPDATE runs SET meta = {meta}")
    server = DashboardServer(url).start()
    try:
        with urllib.request.urlopen(f"{server.url}/api/runs/{urllib.parse.quote(RUN)}") as got:
            run = json.loads(got.read())
        with urllib.request.urlopen(f"{server.url}/api/runs") as got:
            runs = json.loads(got.read())
    finally:
        server.stop()
    assert [task["attempts"][-1]["outcome"] for task in run["tasks"]] == ["ok"]
    assert [summary["run_id"] for summary in runs] == [RUN]
