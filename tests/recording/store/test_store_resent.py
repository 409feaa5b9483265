"""A batch a worker sent again (``resent``): what the store holds of it already is left
out of its rows, its runs' summaries and the rollups, in SQLite and PostgreSQL alike."""

from __future__ import annotations

from factories import T0, attempt_event, task_event
from rolecall.events import AttemptEvent, TaskEvent, TaskOutcome
from rolecall.recording.store import MetricsStore


def _batch(first: int, last: int) -> tuple[list[AttemptEvent], list[TaskEvent], list[TaskOutcome]]:
    """Tasks ``first`` to ``last`` of run ``gw``: even ones answered at once (their attempt
    on the task's row), odd ones after a retry; every third concluded by its front end."""
    attempts, tasks, outcomes = [], [], []
    for number in range(first, last + 1):
        task = {"run_id": "gw", "task_id": f"task-{number}"}
        ts = T0 + number
        if number % 2:
            attempts.append(
                attempt_event(**task, attempt=1, outcome="retry", error_kind="server", ts=ts)
            )
        attempts.append(attempt_event(**task, attempt=1 + number % 2, ts=ts + 0.5))
        tasks.append(task_event(**task, attempts=1 + number % 2, ts=ts + 0.5))
        if number % 3 == 0:
            outcomes.append(TaskOutcome(**task, role="coder", stage=None, status="ok", ts=ts + 0.7))
    return attempts, tasks, outcomes


def test_a_resent_batch_stores_only_what_is_not_stored(store: MetricsStore) -> None:
    store.start_run("gw", "gateway", started_at=T0)
    store.record_rows(*_batch(1, 6))  # what a writer stored before it was killed
    store.record_rows(*_batch(1, 9), resent=True)
    store.record_rows(*_batch(10, 10), resent=True)  # sent again, never stored

    (run,) = store.runs()
    assert (run.tasks, run.attempts) == (10, 15)
    assert store._read("SELECT COUNT(*) FROM all_attempts")[0][0] == 15
    assert store._read("SELECT COUNT(*) FROM tasks WHERE outcome = 0")[0][0] == 10
    assert store._read("SELECT COUNT(*) FROM tasks WHERE outcome = 1")[0][0] == 3
    (row,) = store.metrics()
    assert (row.requests, row.successes, row.failures) == (15, 10, 5)
    detail = store.run("gw")
    assert detail is not None and len(detail.tasks) == 10
    assert sum(len(task.attempts) for task in detail.tasks) == 15


def test_a_batch_not_resent_is_stored_as_it_is(store: MetricsStore) -> None:
    store.record_rows(*_batch(1, 2))
    store.record_rows(*_batch(1, 2))  # the same records twice: nothing told it is a resend
    (row,) = store.metrics()
    assert row.requests == 6
