"""The local model's worker thread: jobs in order, and it outlives a job that fails."""

from __future__ import annotations

import threading

from rolecall.providers._local_worker import Worker


class _Panic(BaseException):
    """As pyo3 raises for a panic inside a Rust runtime: not an ``Exception``."""


def test_jobs_run_in_order_and_a_failing_one_does_not_stop_the_next() -> None:
    worker = Worker()
    done: list[str] = []
    finished = threading.Event()

    def panics() -> None:
        done.append("panics")
        raise _Panic("thread 'x' panicked")

    def fails() -> None:
        done.append("fails")
        raise ValueError("bad")

    def last() -> None:
        done.append("last")
        finished.set()

    for job in (panics, fails, last):
        worker.submit(job)
    assert finished.wait(30), "the worker stopped after a failing job: later requests hang"
    assert done == ["panics", "fails", "last"]
