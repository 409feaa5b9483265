"""Runs: summaries, one run's tasks and attempts, prefixes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from factories import attempt_event, task_event
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent, TaskEvent
from rolecall.recording.store import MetricsStore, open_store

T0 = 1_767_225_600.0


def _workflow_events(run_id: str) -> list[AttemptEvent | TaskEvent]:
    return [
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
            error="429 from gpt",
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
            latency_ms=900.0,
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
            latency_ms=990.0,
            input_tokens=200,
            output_tokens=300,
            stage="generate",
            ts=T0 + 4.1,
        ),
        attempt_event(
            run_id=run_id,
            task_id="rev-1",
            role="reviewer",
            provider="gemini",
            model="m",
            outcome="handover",
            error_kind=ErrorKind.AUTH,
            latency_ms=10.0,
            ts=T0 + 5,
        ),
        task_event(
            run_id=run_id,
            task_id="rev-1",
            role="reviewer",
            status="failed",
            provider=None,
            model=None,
            handovers=1,
            latency_ms=10.0,
            error="every provider failed",
            stage="review",
            ts=T0 + 5.1,
        ),
    ]


def test_run_detail_has_every_task_and_attempt(store: MetricsStore) -> None:
    store.start_run("20260101-000000-abcdef", "workflow", {"spec": "wc.md"}, started_at=T0)
    store.record(_workflow_events("20260101-000000-abcdef"))
    store.finish_run("20260101-000000-abcdef", "failed", finished_at=T0 + 6)
    run = store.run("20260101-000000-abcdef")
    assert run is not None
    data = run.to_dict()
    assert {"run_id", "status", "started_at", "finished_at", "tasks"} <= set(data)
    assert data["status"] == "failed" and run.kind == "workflow" and run.meta == {"spec": "wc.md"}
    assert data["started_at"] == "2026-01-01T00:00:00.000+00:00"
    assert data["finished_at"] == "2026-01-01T00:00:06.000+00:00"
    tasks = data["tasks"]
    assert [t["task_id"] for t in tasks] == ["plan", "gen-1", "rev-1"]
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
    } <= set(tasks[1])
    gen = tasks[1]
    assert (gen["role"], gen["stage"], gen["status"], gen["provider"]) == (
        "coder",
        "generate",
        "ok",
        "claude",
    )
    assert gen["attempts"] == [
        {
            "provider": "gpt",
            "attempt": 1,
            "outcome": "retry",
            "error_kind": "rate_limit",
            "latency_ms": 50.0,
        },
        {
            "provider": "gpt",
            "attempt": 2,
            "outcome": "handover",
            "error_kind": "quota",
            "latency_ms": 40.0,
        },
        {
            "provider": "claude",
            "attempt": 1,
            "outcome": "ok",
            "error_kind": None,
            "latency_ms": 900.0,
        },
    ]
    assert (gen["input_tokens"], gen["output_tokens"], gen["latency_ms"]) == (200, 300, 990.0)
    assert gen["handovers"] == 1
    assert tasks[2]["status"] == "failed" and tasks[2]["provider"] is None
    assert tasks[0]["cost_usd"] == 0.002 and gen["cost_usd"] is None


def test_runs_list_summarises_from_the_runs_table(store: MetricsStore) -> None:
    store.start_run("a-run", "ask", started_at=T0 - 100)
    store.finish_run("a-run", "ok", finished_at=T0 - 99)
    store.start_run("b-run", "workflow", started_at=T0)
    store.record(_workflow_events("b-run"))
    summaries = store.runs()
    assert [s.run_id for s in summaries] == ["b-run", "a-run"]
    latest = summaries[0].to_dict()
    assert latest["status"] == "running" and latest["finished_at"] is None
    assert (latest["tasks"], latest["tasks_failed"], latest["attempts"], latest["handovers"]) == (
        3,
        1,
        5,
        2,
    )
    assert (latest["input_tokens"], latest["output_tokens"]) == (300, 350)
    assert latest["cost_usd"] == 0.002
    assert [s.run_id for s in store.runs(limit=1)] == ["b-run"]
    assert summaries[1].to_dict()["cost_usd"] is None


def test_a_batch_of_several_runs_adds_to_each_run_its_own(store: MetricsStore) -> None:
    first, second = _workflow_events("x-run"), _workflow_events("y-run")
    store.record([event for pair in zip(first, second, strict=True) for event in pair])
    for summary in store.runs():
        latest = summary.to_dict()
        assert (
            latest["tasks"],
            latest["tasks_failed"],
            latest["attempts"],
            latest["handovers"],
            latest["input_tokens"],
            latest["output_tokens"],
            latest["cost_usd"],
        ) == (3, 1, 5, 2, 300, 350, 0.002), summary.run_id
    assert len(store.runs()) == 2


def _call(task_id: str, status: str, ts: float) -> list[AttemptEvent | TaskEvent]:
    """One call of task ``task_id`` of run ``w``: its attempt and the task event it ends in."""
    shared = {"run_id": "w", "task_id": task_id, "input_tokens": 10, "output_tokens": 5}
    if status == "ok":
        return [attempt_event(**shared, ts=ts), task_event(**shared, ts=ts)]
    failed = {**shared, "input_tokens": 0, "output_tokens": 0}
    return [
        attempt_event(**failed, outcome="handover", error_kind="server", ts=ts),
        task_event(**failed, status="failed", provider=None, error="server", ts=ts),
    ]


def test_a_task_that_finishes_again_counts_once_with_every_call_summed(
    store: MetricsStore,
) -> None:
    # A file continued past the token limit: three calls of one task, the first two in
    # one batch, the third in the next; a second task answered at once.
    store.start_run("w", "workflow", started_at=T0)
    store.record([*_call("gen:a", "ok", T0 + 1), *_call("gen:a", "ok", T0 + 2)])
    store.record([*_call("gen:a", "ok", T0 + 3), *_call("gen:b", "ok", T0 + 4)])
    (summary,) = store.runs()
    assert (summary.tasks, summary.tasks_failed, summary.attempts) == (2, 0, 4)
    assert (summary.input_tokens, summary.output_tokens) == (40, 20)
    run = store.run("w")
    assert run is not None and summary.tasks == len(run.tasks)


def test_a_failed_task_that_succeeds_later_is_no_longer_counted_failed(
    store: MetricsStore,
) -> None:
    # A resumed run tries the failed task again, in the same run.
    store.start_run("w", "workflow", started_at=T0)
    store.record([*_call("gen:a", "failed", T0 + 1), *_call("gen:b", "failed", T0 + 2)])
    assert (store.runs()[0].tasks, store.runs()[0].tasks_failed) == (2, 2)
    store.record(_call("gen:a", "ok", T0 + 10))
    (summary,) = store.runs()
    assert (summary.tasks, summary.tasks_failed) == (2, 1)
    run = store.run("w")
    assert run is not None
    assert summary.tasks_failed == sum(1 for task in run.tasks if task.status == "failed")


def test_events_without_a_started_run_still_make_one(store: MetricsStore) -> None:
    store.record(_workflow_events("orphan"))
    run = store.run("orphan")
    assert run is not None and run.status == "running" and len(run.tasks) == 3
    assert run.started_at is not None and run.started_at < T0 + 1


def test_unfinished_task_is_running_then_incomplete(store: MetricsStore) -> None:
    store.start_run("r", "workflow", started_at=T0)
    store.record(
        [
            attempt_event(
                run_id="r",
                task_id="t",
                role="coder",
                provider="gpt",
                model="g",
                outcome="retry",
                error_kind=ErrorKind.TIMEOUT,
                latency_ms=60000.0,
                ts=T0 + 60,
            )
        ]
    )
    running = store.run("r")
    assert running is not None and running.tasks[0].status == "running"
    assert running.tasks[0].provider == "gpt"
    store.finish_run("r", "interrupted")
    done = store.run("r")
    assert done is not None and done.tasks[0].status == "incomplete"


def test_find_runs_by_prefix(store: MetricsStore) -> None:
    for run_id in ("20260101-aaa", "20260101-aab", "20260102-b_c"):
        store.start_run(run_id, started_at=time.time())
    assert store.find_runs("20260102") == ["20260102-b_c"]
    assert store.find_runs("20260101-aa") == ["20260101-aaa", "20260101-aab"]
    assert store.find_runs("20260101-aaa") == ["20260101-aaa"]
    assert store.find_runs("2026010_") == []  # no LIKE wildcards
    assert store.find_runs("zzz") == []


def test_secrets_in_error_text_are_redacted(store: MetricsStore) -> None:
    from rolecall._secrets import Secret

    key = "sk-test-" + "9" * 24
    Secret(key)
    store.record(
        [
            attempt_event(
                run_id="s",
                task_id="t",
                role="coder",
                provider="gpt",
                model="g",
                outcome="handover",
                error_kind=ErrorKind.AUTH,
                latency_ms=5.0,
                error=f"bad key {key}",
                ts=T0,
            )
        ]
    )
    rows = store._read("SELECT error FROM attempts")
    assert key not in rows[0][0] and "bad key" in rows[0][0]


def test_missing_text_is_null_and_any_text_is_kept_as_written(store: MetricsStore) -> None:
    # SQLite binds these columns' None as a stand-in that its INSERT turns back into NULL:
    # no string, however close to it ("0", ""), may become NULL, and no None a string.
    texts = [None, "0", "", "NULL", "stalled"]
    kinds = [None if text is None else ErrorKind.STALLED for text in texts]
    store.record(
        [
            attempt_event(run_id="n", task_id=f"t{i}", error_kind=kinds[i], error=text, ts=T0 + i)
            for i, text in enumerate(texts)
        ]
        + [
            # Two attempts each: no attempt's row is folded into its task's.
            task_event(
                run_id="n",
                task_id=f"t{i}",
                attempts=2,
                stage=text,
                error=text,
                dialect=text,
                ts=T0 + i,
            )
            for i, text in enumerate(texts)
        ]
    )
    attempts = store._read("SELECT error_kind, error FROM attempts ORDER BY ts")
    tasks = store._read("SELECT stage, error, dialect FROM tasks ORDER BY ts")
    assert attempts == [(kind, text) for kind, text in zip(kinds, texts, strict=True)]
    assert tasks == [(text, text, text) for text in texts]


def test_a_stall_lost_to_the_next_provider_counts_as_a_handover(store: MetricsStore) -> None:
    from factories import attempt_event, task_event

    store.start_run("r", "workflow", started_at=T0)
    store.record(
        [
            attempt_event(
                provider="gpt", outcome="cancelled", error_kind="stalled", latency_ms=5000.0
            ),
            attempt_event(provider="claude", outcome="ok"),
            task_event(provider="claude", attempts=2, handovers=1),
        ]
    )
    run = store.run("r")
    assert run is not None and run.tasks[0].handovers == 1
    [summary] = store.runs()
    assert summary.handovers == 1


def _answered_and_retried(run_id: str) -> list[AttemptEvent | TaskEvent]:
    """Task ``a`` answered at its first call (as every plain gateway call), task ``b`` at
    its second."""
    shared = {"run_id": run_id, "provider": "gpt", "model": "g", "input_tokens": 7}
    return [
        attempt_event(**shared, task_id="a", latency_ms=40.5, cost_usd=0.002, ts=T0),
        task_event(**shared, task_id="a", latency_ms=41.25, cost_usd=0.002, ts=T0 + 0.001),
        attempt_event(**shared, task_id="b", outcome="retry", error_kind="server", ts=T0 + 1),
        attempt_event(**shared, task_id="b", attempt=2, latency_ms=30.0, ts=T0 + 2),
        task_event(**shared, task_id="b", attempts=2, latency_ms=131.0, ts=T0 + 2.001),
    ]


def test_an_answered_task_keeps_its_attempt_on_its_row(store: MetricsStore, tmp_path: Path) -> None:
    from rolecall.recording.runlog import RunLog, read_run, run_log_path

    events = _answered_and_retried("g")
    store.start_run("g", "gateway", started_at=T0 - 1)
    store.record(events)
    # Task b's two attempts have rows of their own; task a's is on a's row.
    assert store._read("SELECT COUNT(*) FROM attempts")[0][0] == 2
    assert store._read(
        "SELECT task_id, attempt, outcome, latency_ms, input_tokens, cost_usd, ts "
        "FROM all_attempts ORDER BY ts"
    ) == [
        ("a", 1, "ok", 40.5, 7, 0.002, T0),
        ("b", 1, "retry", 100.0, 7, None, T0 + 1),
        ("b", 2, "ok", 30.0, 7, None, T0 + 2),
    ]
    run = store.run("g")
    assert run is not None
    [a, b] = run.tasks
    assert (a.latency_ms, [(x.attempt, x.outcome, x.latency_ms) for x in a.attempts]) == (
        41.25,
        [(1, "ok", 40.5)],
    )
    assert [(x.attempt, x.outcome) for x in b.attempts] == [(1, "retry"), (2, "ok")]
    # The run log of the same events reads back the same tasks.
    RunLog(tmp_path).append(events)
    assert read_run(run_log_path(tmp_path, "g")).tasks == run.tasks
    [summary] = store.runs()
    assert (summary.tasks, summary.attempts, summary.handovers) == (2, 3, 0)
    assert store.prune(T0 + 10) == 4  # b's two attempts, both tasks (a's attempt with a)
    assert store._read("SELECT COUNT(*) FROM all_attempts")[0][0] == 0


@pytest.mark.parametrize("how", ["deleted", "moved aside"])
def test_a_file_deleted_or_moved_while_recording_gets_what_follows(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "metrics.db"
    with open_store(f"sqlite:///{path}") as store:
        store.record(_workflow_events("before"))
        for file in tmp_path.glob("metrics.db*"):  # the database, its WAL and shared memory
            if how == "deleted":
                file.unlink()
            else:
                file.rename(tmp_path / f"old-{file.name}")
        store.record(_workflow_events("after"))
    with open_store(f"sqlite:///{path}", create=False) as reopened:
        assert [run.run_id for run in reopened.runs()] == ["after"]
        after = reopened.run("after")
        assert after is not None and len(after.tasks) == 3
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "was deleted or replaced while recording" in warning


def _gateway_run(run_id: str, tasks: int) -> list[AttemptEvent | TaskEvent]:
    """``tasks`` gateway calls, every third retried once, then one call still in flight
    (its first attempt failed, no task record yet)."""
    events: list[AttemptEvent | TaskEvent] = []
    for number in range(tasks):
        task_id, ts = f"call-{number}", T0 + number
        if number % 3 == 0:
            events.append(
                attempt_event(
                    run_id=run_id,
                    task_id=task_id,
                    outcome="retry",
                    error_kind=ErrorKind.OVERLOADED,
                    latency_ms=5.0,
                    ts=ts,
                )
            )
        events.append(
            attempt_event(run_id=run_id, task_id=task_id, attempt=2 if number % 3 == 0 else 1,
                          latency_ms=90.0, input_tokens=number, ts=ts + 0.1)
        )  # fmt: skip
        events.append(
            task_event(run_id=run_id, task_id=task_id, attempts=1 + (number % 3 == 0),
                       latency_ms=100.0, input_tokens=number, ts=ts + 0.2, dialect="chat")
        )  # fmt: skip
    events.append(
        attempt_event(
            run_id=run_id,
            task_id="in-flight",
            outcome="retry",
            error_kind=ErrorKind.TIMEOUT,
            ts=T0 + tasks,
        )
    )
    return events


def test_a_run_read_for_its_newest_tasks_reads_only_those(store: MetricsStore) -> None:
    """A gateway run holds up to 100,000 tasks: the dashboard asks for its newest ones,
    which come whole (every attempt) without the rest of the run being read."""
    store.start_run("gw", "gateway", started_at=T0)
    store.record(_gateway_run("gw", 40))
    store.record([task_event(run_id="gw", task_id="call-38", latency_ms=7.0, ts=T0 + 50)])
    whole = store.run("gw")
    newest = store.run("gw", last_tasks=5)
    assert whole is not None and newest is not None
    assert len(whole.tasks) == 41 and whole.tasks_total is None
    by_id = {task.task_id: task for task in whole.tasks}
    # The last five task records are those of calls 36, 37, 39 and 38 (twice); the call
    # in flight has none yet.
    assert [task.task_id for task in newest.tasks] == [
        "call-36",
        "call-37",
        "call-38",
        "call-39",
        "in-flight",
    ]
    assert newest.tasks == [by_id[task.task_id] for task in newest.tasks]
    assert [len(task.attempts) for task in newest.tasks] == [2, 1, 1, 2, 1]
    assert newest.tasks_total == 40
    assert store.run("gw", last_tasks=41) == whole
