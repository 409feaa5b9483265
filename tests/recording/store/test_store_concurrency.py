"""Several writers on one store (a gateway and a workflow run, say) keep rollups exact."""

from __future__ import annotations

import threading
from pathlib import Path

from factories import attempt_event
from rolecall.events import AttemptEvent
from rolecall.recording.store import open_store

T0 = 1_767_225_600.0


def test_concurrent_writers_keep_rollups_exact(store_url: str) -> None:
    writers, batches, per_batch = 4, 15, 40
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            with open_store(store_url) as store:  # its own connection
                for batch in range(batches):
                    store.record(
                        [
                            attempt_event(
                                run_id=f"run-{index}",
                                task_id=f"t{batch}-{n}",
                                role="coder",
                                provider="gpt",
                                model="g",
                                latency_ms=100.0 + n,
                                input_tokens=1,
                                output_tokens=2,
                                cost_usd=0.5,
                                ts=T0 + batch * 60 + n,
                            )
                            for n in range(per_batch)
                        ]
                    )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = writers * batches * per_batch
    with open_store(store_url) as store:
        [row] = store.metrics()
        assert (row.requests, row.input_tokens, row.output_tokens) == (total, total, 2 * total)
        assert row.cost_usd == total * 0.5
        assert sum(r.metrics.requests for r in store.trend("hour")) == total
        assert sorted(s.attempts for s in store.runs()) == [batches * per_batch] * writers


def test_stores_opening_a_new_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    # SQLite refuses a second journal-mode switch on a fresh file without waiting;
    # a gateway and a workflow started together must both open the store anyway.
    errors: list[BaseException] = []

    def open_and_close(path: Path, ready: threading.Barrier) -> None:
        try:
            ready.wait()
            open_store(f"sqlite:///{path}").close()
        except BaseException as exc:
            errors.append(exc)

    for attempt in range(40):
        path = tmp_path / f"metrics-{attempt}.db"
        ready = threading.Barrier(6)
        threads = [threading.Thread(target=open_and_close, args=(path, ready)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_batches_alternating_between_two_connections_keep_rollups_exact(store_url: str) -> None:
    # Each store merges a batch into the rollup rows it wrote last only while nobody
    # else wrote since: here every other batch comes from the other connection.
    def batch(number: int, calls: int) -> list[AttemptEvent]:
        return [
            attempt_event(
                run_id=f"run-{number}",
                task_id=f"t{number}-{n}",
                latency_ms=100.0 + n,
                input_tokens=number,
                cost_usd=0.25,
                ts=T0 + number * 60 + n,
            )
            for n in range(calls)
        ]

    with open_store(store_url) as first, open_store(store_url) as second:
        for number, store in enumerate([first, second, first, first, second, first]):
            store.record(batch(number, calls=10 + number))
        [row] = first.metrics()
        [day] = second.trend("day")
    requests = sum(10 + number for number in range(6))
    assert (row.requests, day.metrics.requests) == (requests, requests)
    assert row.input_tokens == sum(number * (10 + number) for number in range(6))
    assert row.cost_usd == requests * 0.25
