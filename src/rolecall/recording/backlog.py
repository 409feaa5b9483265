"""What the recorder could not write to the metrics store yet, kept to write once it can.

While the store cannot be reached or written (a PostgreSQL server down, a SQLite file
another process keeps locked), each batch the recorder splits for the store is kept
here, in order, and written before any newer batch once a write succeeds again. The
run log takes every batch as usual meanwhile, so it stays whole whatever happens here.

Memory is bounded: at most :data:`MOST_KEPT` records (run starts and ends, calls, tasks)
are kept. Past that the oldest batches are dropped, and the calls and tasks they held
are counted, so the recorder can say how many the store lacks and that the run logs
hold them.

A batch is written again from the step that failed: its run starts and ends are upserts
(writing one twice changes nothing), and its calls and tasks go in one transaction that
either stored them all or none, so none is stored twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rolecall.events import AttemptEvent, TaskEvent, TaskOutcome
from rolecall.recording.store.starts import NO_CALLS, CallsInFlight

if TYPE_CHECKING:
    from rolecall.recording.store.base import MetricsStore

__all__ = ["MOST_KEPT", "StoreBacklog", "StoreBatch", "calls_and_tasks"]

# Records kept while the store cannot be written: about 40 MB of events at most, some
# minutes of a busy gateway's calls.
MOST_KEPT = 100_000


class _Start(Protocol):
    """A run's start (the recorder's ``RunStart``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def meta(self) -> dict[str, Any] | None: ...
    @property
    def ts(self) -> float: ...


class _End(Protocol):
    """A run's end (the recorder's ``RunEnd``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def ts(self) -> float: ...


@dataclass(slots=True)
class StoreBatch:
    """One batch for the store: run starts, then calls, tasks and what the front end
    concluded of its tasks, then run ends."""

    starts: Sequence[_Start] = ()
    attempts: Sequence[AttemptEvent] = ()
    tasks: Sequence[TaskEvent] = ()
    ends: Sequence[_End] = ()
    outcomes: Sequence[TaskOutcome] = ()
    resent: bool = False  # a worker's records sent again: the store may hold some already
    in_flight: CallsInFlight = NO_CALLS  # the calls the batch starts and ends
    _rows_stored: bool = False

    def __len__(self) -> int:
        rows = len(self.attempts) + len(self.tasks) + len(self.outcomes)
        calls = len(self.in_flight.begun) + len(self.in_flight.ended)
        return len(self.starts) + rows + calls + len(self.ends)

    def write(self, store: MetricsStore) -> None:
        """Store what of the batch is not stored yet; raises what the store raised."""
        for start in self.starts:
            store.start_run(start.run_id, start.kind, start.meta, start.ts)
        if not self._rows_stored:
            store.record_rows(
                self.attempts,
                self.tasks,
                self.outcomes,
                resent=self.resent,
                in_flight=self.in_flight,
            )
            self._rows_stored = True
        for end in self.ends:
            store.finish_run(end.run_id, end.status, end.ts)


def calls_and_tasks(calls: int, tasks: int) -> str:
    """``3 calls and 1 task``, ``2 calls``, ``1 task`` (a count of none left out)."""
    parts = [
        f"{count} {noun}{'' if count == 1 else 's'}"
        for count, noun in ((calls, "call"), (tasks, "task"))
        if count
    ]
    return " and ".join(parts) or "0 calls"


class StoreBacklog:
    """The batches the store has not taken yet, oldest first, at most ``most`` records."""

    def __init__(self, most: int | None = None) -> None:
        self.most = MOST_KEPT if most is None else most
        self._batches: deque[StoreBatch] = deque()
        self._kept = 0
        self.lost_calls = 0
        self.lost_tasks = 0

    def __bool__(self) -> bool:
        return bool(self._batches)

    def counts(self) -> tuple[int, int]:
        """The calls and tasks kept now."""
        return (
            sum(len(batch.attempts) for batch in self._batches),
            sum(len(batch.tasks) for batch in self._batches),
        )

    def add(self, batch: StoreBatch) -> None:
        """Keep ``batch``; drop (and count) the oldest while more than ``most`` are kept."""
        self._batches.append(batch)
        self._kept += len(batch)
        while self._kept > self.most and self._batches:
            oldest = self._batches.popleft()
            self._kept -= len(oldest)
            self.lost_calls += len(oldest.attempts)
            self.lost_tasks += len(oldest.tasks)

    def write(self, store: MetricsStore) -> None:
        """Store the kept batches in order; the one that fails, and those after it, stay."""
        while self._batches:
            batch = self._batches[0]
            batch.write(store)
            self._batches.popleft()
            self._kept -= len(batch)

    def back_message(self, label: str, kept: tuple[int, int], runs_dir: object) -> str:
        """What to say once the store takes writes again: what it got of the ``kept``
        calls and tasks, and what it lacks for good (forgotten then)."""
        lost = self.take_lost()
        message = f"the metrics store {label} takes writes again"
        if any(kept):
            message += f": stored the {calls_and_tasks(*kept)} kept meanwhile"
        if any(lost):
            message += (
                f"; it lacks {calls_and_tasks(*lost)} dropped past the "
                f"{self.most:,} records kept: the run logs in {runs_dir} hold them"
            )
        return message

    def take_lost(self) -> tuple[int, int]:
        """The calls and tasks dropped since the last call, and forget them."""
        lost = (self.lost_calls, self.lost_tasks)
        self.lost_calls = self.lost_tasks = 0
        return lost
