"""One event holding what no column or line takes (a NaN, an infinity, a lone surrogate,
a NUL, a count past 64 bits) costs no other event of its batch: the store and the run log
keep every event, the odd values changed as little as they can be and reported once."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factories import T0, attempt_event, task_event
from rolecall import _secrets
from rolecall.config.schema import MetricsConfig
from rolecall.recording.recorder import Recorder
from rolecall.recording.runlog import read_run, run_log_path
from rolecall.recording.store import open_store

# The fields of one odd attempt, and what the store keeps of them.
ODD_VALUES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "NaN latency": ({"latency_ms": math.nan}, {"latency_ms": 0.0}),
    "infinite cost": ({"cost_usd": math.inf}, {"cost_usd": None}),
    "NaN cost": ({"cost_usd": math.nan}, {"cost_usd": None}),
    "NaN time": ({"ts": math.nan}, {}),
    "lone surrogate in the model": ({"model": "gpt-\ud800"}, {"model": "gpt-\\ud800"}),
    "lone surrogate in the role": ({"role": "coder\udcff"}, {"role": "coder\\udcff"}),
    "NUL in the model": ({"model": "gpt\x00"}, {"model": "gpt\\x00"}),
    "lone surrogate in the provider's message": (
        {"outcome": "retry", "error_kind": "server", "error": "bad \ud800 gateway"},
        {"outcome": "retry"},
    ),
    "count past 64 bits": ({"input_tokens": 2**70}, {"input_tokens": 2**63 - 1}),
}


@pytest.fixture(autouse=True)
def _secrets_forgotten_after() -> Iterator[None]:
    """The test store's URL password is registered as a secret: not for later tests."""
    with _secrets._scoped_registry():
        yield


def _config(tmp_path: Path, url: str) -> MetricsConfig:
    return MetricsConfig.model_validate(
        {"url": url, "runs_dir": str(tmp_path / "runs"), "flush_interval": 60}
    )


@pytest.mark.parametrize("odd", list(ODD_VALUES))
def test_one_odd_attempt_costs_no_other_event_of_its_batch(
    tmp_path: Path, store_url: str, odd: str, caplog: pytest.LogCaptureFixture
) -> None:
    fields, kept = ODD_VALUES[odd]
    as_it_is = odd == "NUL in the model" and store_url.startswith("sqlite")
    if as_it_is:  # SQLite text holds a NUL: nothing to change
        kept = fields
    recorder = Recorder(_config(tmp_path, store_url), install_signal_handlers=False)
    recorder.start_run("r", "workflow")
    recorder.emit(attempt_event(task_id="before", cost_usd=0.5, ts=T0))
    recorder.emit(attempt_event(task_id="odd", attempt=2, **{"ts": T0 + 1, **fields}))
    recorder.emit(attempt_event(task_id="after", cost_usd=0.25, ts=T0 + 2))
    recorder.emit(task_event(task_id="after", cost_usd=0.25, ts=T0 + 2))
    recorder.finish_run("r", "ok")
    with caplog.at_level(logging.WARNING):
        recorder.close()

    with open_store(store_url) as store:
        run = store.run("r")
        summary = store.runs()[0]
        metrics = store.metrics()
    assert run is not None and run.status == "ok"
    tasks = {t.task_id: t for t in run.tasks}
    assert sorted(tasks) == ["after", "before", "odd"]
    odd_attempt = tasks["odd"].attempts[0]
    for name, value in kept.items():
        where = tasks["odd"] if name == "role" else odd_attempt
        assert getattr(where, name) == value, name
    assert summary.attempts == 3 and summary.tasks == 1
    assert sum(row.requests for row in metrics) == 3
    # The sums stay finite numbers: the odd figure joins none of them.
    assert all(math.isfinite(row.latency_avg_ms or 0.0) for row in metrics)
    if "cost" in odd:
        assert summary.cost_usd == pytest.approx(0.75)
    # Reported once, naming the store; the run log holds all four lines too.
    told = [r.getMessage() for r in caplog.records if "metrics store" in r.getMessage()]
    assert len(told) == (0 if as_it_is else 1)
    assert all("later ones are counted" in message for message in told)
    logged = read_run(run_log_path(tmp_path / "runs", "r"))
    assert sorted(t.task_id for t in logged.tasks) == ["after", "before", "odd"]


def test_a_run_whose_id_has_a_lone_surrogate_is_stored(tmp_path: Path, store_url: str) -> None:
    recorder = Recorder(_config(tmp_path, store_url), install_signal_handlers=False)
    recorder.start_run("run-\ud800", "gateway", {"dir": "out\udcff", ("not", "a key"): 1})
    recorder.emit(attempt_event(run_id="run-\ud800", task_id="t"))
    recorder.emit(task_event(run_id="run-\ud800", task_id="t"))
    recorder.close()

    with open_store(store_url) as store:
        [summary] = store.runs()
        run = store.run(summary.run_id)
    assert summary.run_id == "run-\\ud800" and summary.tasks == 1
    assert run is not None and run.status == "interrupted" and len(run.tasks) == 1
    assert run.meta["dir"] == "out\udcff"


@pytest.mark.parametrize("writer", ["orjson", "stdlib"])
def test_one_unwritable_event_costs_the_run_log_no_other_line(
    tmp_path: Path, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolecall.recording import _runlog_lines
    from rolecall.recording.runlog import RunLog, run_start_record

    if writer == "stdlib":
        monkeypatch.setitem(sys.modules, "orjson", None)
    _runlog_lines._orjson_dumps.cache_clear()
    try:
        log = RunLog(tmp_path / "runs")
        log.append(
            [
                run_start_record("r", "ask", {("tuple", "key"): 1, "spec": "s"}, T0),
                attempt_event(task_id="before", ts=T0),
                attempt_event(task_id="odd", attempt=2, input_tokens=math.nan, ts=T0 + 1),
                attempt_event(task_id="none", attempt=2, output_tokens=None, ts=T0 + 2),
                attempt_event(task_id="after", ts=T0 + 3),
            ]
        )
    finally:
        _runlog_lines._orjson_dumps.cache_clear()
    lines = (tmp_path / "runs" / "r.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert json.loads(lines[0])["meta"] == {"spec": "s"}
    assert [json.loads(line)["task_id"] for line in lines[1:]] == ["before", "odd", "none", "after"]
