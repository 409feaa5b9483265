"""Records a worker sends again to the writer that replaced a killed one: whatever the
killed writer had written of them, in the run log or the store, is not written twice."""

from __future__ import annotations

import time
from pathlib import Path

from factories import attempt_event, task_event
from rolecall.config.schema import MetricsConfig
from rolecall.events import TaskOutcome
from rolecall.recording import runlog
from rolecall.recording.recorder import Recorder, RecordItem, RunEnd, RunStart
from rolecall.recording.runlog import run_log_path
from rolecall.recording.store import open_store


def _config(tmp_path: Path) -> MetricsConfig:
    return MetricsConfig.model_validate(
        {
            "url": f"sqlite:///{tmp_path / 'm.db'}",
            "runs_dir": str(tmp_path / "runs"),
            "flush_interval": 3600.0,
        }
    )


def _calls(run_id: str, first: int, last: int) -> list[RecordItem]:
    """Tasks ``first`` to ``last``: each answered at once, but every third after a retry,
    and every fourth concluded by its front end."""
    items: list[RecordItem] = []
    for number in range(first, last + 1):
        task = {"run_id": run_id, "task_id": f"task-{number}"}
        retried = number % 3 == 0
        if retried:
            items.append(attempt_event(**task, attempt=1, outcome="retry", error_kind="server"))
        items.append(attempt_event(**task, attempt=2 if retried else 1, ts=time.time()))
        items.append(task_event(**task, attempts=2 if retried else 1, ts=time.time()))
        if number % 4 == 0:
            items.append(TaskOutcome(**task, role="coder", stage="code", status="ok"))
    return items


def _written(recorder: Recorder, items: list[RecordItem], *, resent: bool = False) -> None:
    recorder.accept(items, resent=resent)
    recorder.flush()


def test_what_a_killed_writer_wrote_is_not_written_again(tmp_path: Path, line_writer: str) -> None:
    start = RunStart("gw", "gateway", None, time.time())
    sent = [start, *_calls("gw", 1, 12)]
    killed = Recorder(_config(tmp_path), install_signal_handlers=False)
    _written(killed, sent[:20])  # what it wrote before it died, unconfirmed
    killed._closed = True  # killed: it closes nothing

    replacement = Recorder(_config(tmp_path), install_signal_handlers=False)
    _written(replacement, sent, resent=True)
    _written(replacement, [*_calls("gw", 13, 14), RunEnd("gw", "ok", time.time())])
    replacement.close()

    with open_store(_config(tmp_path).url) as store:
        (run,) = store.runs()
        assert (run.status, run.tasks, run.attempts) == ("ok", 14, 18)
        assert store._read("SELECT COUNT(*) FROM all_attempts")[0][0] == 18
        assert store._read("SELECT COUNT(*) FROM tasks WHERE outcome = 1")[0][0] == 3
        (row,) = store.metrics()
        assert (row.requests, row.successes, row.failures) == (18, 14, 4)
    records = runlog._records(run_log_path(tmp_path / "runs", "gw"))[0]
    kinds = [record["type"] for record in records]
    assert kinds.count("attempt") == 18 and kinds.count("task") == 14
    assert (kinds.count("outcome"), kinds.count("run_start"), kinds.count("run_end")) == (3, 1, 1)


def test_a_one_off_call_sent_again_is_one_run_of_one_task(tmp_path: Path) -> None:
    call = _calls("ask-1", 1, 1)
    killed = Recorder(_config(tmp_path), install_signal_handlers=False)
    _written(killed, call)
    killed._closed = True

    replacement = Recorder(_config(tmp_path), install_signal_handlers=False)
    _written(replacement, call, resent=True)
    replacement.close()

    kinds = [r["type"] for r in runlog._records(run_log_path(tmp_path / "runs", "ask-1"))[0]]
    assert kinds == ["run_start", "attempt", "task", "run_end"]
    with open_store(_config(tmp_path).url) as store:
        (run,) = store.runs()
        assert (run.status, run.tasks, run.attempts) == ("ok", 1, 1)
