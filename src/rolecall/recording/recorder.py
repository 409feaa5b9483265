"""The event sink that feeds the run log and the metrics store.

``emit`` only appends to an in-memory queue (a deque append: no lock, no I/O, cannot
block). A daemon thread drains the queue every ``flush_interval`` and writes the batch
to the run log and, in one transaction, to the store. ``close()`` (also run at
interpreter exit and on SIGTERM/SIGINT) writes whatever is left, so a clean exit loses
nothing and a kill loses at most the last interval. A stop signal that arrives while
``close()`` writes (a second Ctrl-C, the store slow) waits until that write is done, which
is bounded; a further one stops at once. A failing log or store is reported once on the
``rolecall.recorder`` logger; calls never notice.

While the metrics store cannot be opened or written (a PostgreSQL server down, a SQLite
file another process keeps locked past the wait), the run log goes on taking every
batch, and what the store missed is kept in a bounded backlog
(:mod:`~rolecall.recording.backlog`, at most 100,000 records; past that the oldest are
dropped and counted). The store is tried again every few seconds; once a write succeeds
the backlog is written first, in order, and the recorder says so, with the number of
calls and tasks the store lacks for good, if any (the run logs hold them). ``close()``
tries the store once more and says what it could not store.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from rolecall._secrets import redact
from rolecall.errors import RolecallError
from rolecall.events import AttemptEvent, AttemptStart, Event, TaskEvent, TaskOutcome
from rolecall.recording._starts import OpenStarts
from rolecall.recording._stop_signals import StopSignals
from rolecall.recording.backlog import StoreBacklog, StoreBatch, calls_and_tasks
from rolecall.recording.records import RecordItem, RecordQueue, Resent, RunEnd, RunStart
from rolecall.recording.runlog import RunLog, outcome_record, run_end_record, run_start_record
from rolecall.recording.runwriter import WriterLock
from rolecall.recording.store import StoreError
from rolecall.recording.store.starts import NO_CALLS

if TYPE_CHECKING:
    from rolecall.config.schema import MetricsConfig
    from rolecall.recording.store.base import MetricsStore

__all__ = ["RecordItem", "RecordQueue", "Recorder", "RunEnd", "RunStart"]

log = logging.getLogger("rolecall.recorder")

_MAX_TRACKED_RUNS = 10_000
_REOPEN_AFTER = 30.0  # seconds between attempts to open an unreachable store
_REWRITE_AFTER = 5.0  # seconds between attempts to write to a store that failed a write
_PRUNE_EVERY = 3600.0
# Old rows one flush deletes, at most: a store holding millions (retention just turned on,
# or lowered) is pruned over as many flushes, with this process's records in between.
_PRUNE_PER_FLUSH = 50_000
# Items written at a time (run log lines, then one store transaction). A flush writes what
# half a second of a busy gateway queued in parts of this size, not in one: every list the
# write builds (the items, the rows' values) is traversed by each collection of the young
# generation that happens while it lives, which the event loop's own allocations set off
# all the time; small parts keep those collections short.
_MOST_PER_WRITE = 4096
_CLOSE_WAIT = 60.0  # seconds close() waits on the flush thread and a write in progress


@dataclass(slots=True)
class _RunState:
    explicit: bool
    # A run nobody opened ends with each of its tasks: failed once one failed, else
    # interrupted once one was cancelled (its caller went away), else ok.
    status: str = "ok"


def _with_writer(start: RunStart, writer: dict[str, Any] | None) -> RunStart:
    """The start as the store keeps it: the writing process goes in its meta."""
    if writer is None:
        return start
    return RunStart(start.run_id, start.kind, {**(start.meta or {}), "writer": writer}, start.ts)


class Recorder(RecordQueue):
    """Records events to the run log and the metrics store, off the call path.

    A run opened with :meth:`start_run` stays open until :meth:`finish_run` (or is closed
    as ``interrupted`` by :meth:`close`). Events of a run nobody started (a one-off call)
    open an ``ask`` run of their own that ends with its task.
    """

    def __init__(
        self,
        metrics: MetricsConfig,
        *,
        base_dir: Path | None = None,
        install_signal_handlers: bool = True,
        clock: Callable[[], float] = time.monotonic,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        """``clock`` times the attempts to reach a store that failed (tests pass a fake);
        ``on_written(count)`` hears, after each write, how many queued items it took (the
        run writer of ``rolecall serve --workers N`` then tells their workers)."""
        base = base_dir if base_dir is not None else Path.cwd()
        runs_dir = Path(metrics.runs_dir).expanduser()
        self.enabled = metrics.enabled
        self.url = metrics.url
        self.base_dir = base
        self.runs_dir = runs_dir if runs_dir.is_absolute() else base / runs_dir
        self.flush_interval = max(0.01, float(metrics.flush_interval))
        self._retention_days = metrics.retention_days
        self._buffer: deque[RecordItem | Resent] = deque()
        # Resent items queued and written so far (each count moved by one thread only).
        self._resent_queued = 0
        self._resent_written = 0
        self._write_lock = threading.Lock()
        self._lock_owner: int | None = None
        self._stop = threading.Event()
        self._closed = not self.enabled
        self._log = RunLog(self.runs_dir)
        self._writer = WriterLock(self.runs_dir)
        self._store: MetricsStore | None = None
        self._store_retry_at = 0.0
        self._clock = clock
        self._on_written = on_written
        self._backlog = StoreBacklog()
        self._store_failure: str | None = None  # the last failure of the current outage
        self._last_prune = 0.0
        self._prune_left = False  # the last prune stopped at _PRUNE_PER_FLUSH rows
        self._warned: set[str] = set()
        self._runs: OrderedDict[str, _RunState] = OrderedDict()
        self._open_starts = OpenStarts()
        self._signals = StopSignals()
        self._thread: threading.Thread | None = None
        if not self.enabled:
            return
        self._thread = threading.Thread(
            target=self._flush_loop, name="rolecall-recorder", daemon=True
        )
        self._thread.start()
        atexit.register(self._at_exit)
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._signals.install(self._on_signal)

    def accept(self, items: list[RecordItem], *, resent: bool = False) -> None:
        """Queue items another process queued (events, run starts and ends), in order.

        ``resent``: a worker sends them again because the writer it sent them to was
        killed before it confirmed them; whatever that writer had written of them, in
        the run log or the store, is not written again.
        """
        if self._closed:
            return
        if resent:
            self._resent_queued += len(items)
            self._buffer.extend(map(Resent, items))
        else:
            self._buffer.extend(items)

    # -- flushing -----------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything queued so far, now, in the calling thread."""
        if self.enabled:
            self._flush_pending()

    def close(self) -> None:
        """Write everything queued, close runs left open as ``interrupted``, release files."""
        self._close(wait=_CLOSE_WAIT)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close(self, wait: float, *, deliver_held: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        with self._signals.closing(wait) as deadline:
            self._close_writing(deadline)
        atexit.unregister(self._at_exit)
        self._signals.restore(self._on_signal)
        # The stop a held signal asked for, now that nothing is lost.
        self._signals.deliver_held(drop=not deliver_held)

    def _close_writing(self, deadline: float) -> None:
        """Write what is left and release the store and the lock file, waiting on the
        flush thread and on a write in progress until ``deadline`` at most."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._store_retry_at = 0.0  # one more try at a store that failed, whenever it did
        self._flush_pending(finish_open="interrupted", wait=max(0.0, deadline - time.monotonic()))
        # Not when a signal interrupted this very thread mid-write: that write still needs it.
        if self._lock_owner != threading.get_ident() and self._write_lock.acquire(
            timeout=max(0.0, deadline - time.monotonic())
        ):
            try:
                self._report_unstored()
                if self._store is not None:
                    with contextlib.suppress(Exception):  # closing must not raise at exit
                        self._store.close()
                    self._store = None
            finally:
                self._write_lock.release()
        self._writer.release()  # every run of this process is closed now

    def _at_exit(self) -> None:
        self._close(wait=10.0, deliver_held=False)  # the process ends anyway

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self._flush_pending()

    def _flush_pending(self, finish_open: str | None = None, wait: float = -1) -> None:
        me = threading.get_ident()
        if self._lock_owner == me:
            return  # a signal arrived while this thread was writing: that write finishes it
        if not self._write_lock.acquire(timeout=wait):
            return
        self._lock_owner = me
        try:
            # What is queued now, a part at a time; what emit adds meanwhile waits for the
            # next flush.
            popleft = self._buffer.popleft
            left = len(self._buffer)
            while True:
                size = min(left, _MOST_PER_WRITE)
                left -= size
                batch: list[RecordItem | Resent] = [popleft() for _ in range(size)]
                parts = self._parts(batch)
                if finish_open is not None and not left:
                    parts.append((self._open_runs_ended(parts, finish_open), False))
                for part, resent in parts:
                    if part:
                        try:
                            self._write(part, resent=resent)
                        except Exception as exc:  # the flush thread must survive anything
                            self._warn("recorder", f"recording failed: {exc}")
                if size and self._on_written is not None:
                    self._on_written(size)
                if not left:
                    break
            if self._backlog:  # nothing new, or a store that may take writes again
                try:
                    self._store_batch(StoreBatch())
                except Exception as exc:  # the flush thread must survive anything
                    self._warn("recorder", f"recording failed: {exc}")
        finally:
            self._lock_owner = None
            self._write_lock.release()

    def _parts(self, batch: list[RecordItem | Resent]) -> list[tuple[list[RecordItem], bool]]:
        """The batch in parts, in order, each sent again or not (see :meth:`accept`)."""
        if self._resent_written == self._resent_queued:  # the batch has no resent item
            return [(cast("list[RecordItem]", batch), False)]
        parts: list[tuple[list[RecordItem], bool]] = []
        for entry in batch:
            resent = isinstance(entry, Resent)
            item = entry.item if isinstance(entry, Resent) else entry
            if not parts or parts[-1][1] != resent:
                parts.append(([], resent))
            parts[-1][0].append(item)
            self._resent_written += resent
        return parts

    def _open_runs_ended(
        self, parts: list[tuple[list[RecordItem], bool]], status: str
    ) -> list[RecordItem]:
        """The ends, with ``status``, of the runs still open after ``parts``."""
        open_runs = {rid for rid, state in self._runs.items() if state.explicit}
        for part, _ in parts:
            for item in part:
                if isinstance(item, RunStart):
                    open_runs.add(item.run_id)
                elif isinstance(item, RunEnd):
                    open_runs.discard(item.run_id)
        now = time.time()
        return [RunEnd(run_id, status, now) for run_id in sorted(open_runs)]

    def _write(self, batch: list[RecordItem], *, resent: bool = False) -> None:
        records: list[dict[str, Any] | Event] = []
        starts: list[RunStart] = []
        attempts: list[AttemptEvent] = []
        tasks: list[TaskEvent] = []
        ends: list[RunEnd] = []
        outcomes: list[TaskOutcome] = []
        placed: list[tuple[int, AttemptStart]] = []  # the calls begun, where they came
        runs = self._runs
        writer = self._writer.info
        for item in batch:
            # The many first, by exact type: cheaper than isinstance, whose union of the
            # two classes would be built anew for every item.
            if type(item) is AttemptEvent:
                attempts.append(item)
            elif type(item) is TaskEvent:
                tasks.append(item)
            elif isinstance(item, AttemptEvent):
                attempts.append(item)
            elif isinstance(item, TaskEvent):
                tasks.append(item)
            else:
                if isinstance(item, TaskOutcome):
                    outcomes.append(item)
                    records.append(outcome_record(item))
                elif isinstance(item, AttemptStart):
                    writer = self._open_implicit(item, item.ts, writer, records, starts)[1]
                    placed.append((len(records), item))
                else:
                    writer = self._write_run_item(item, writer, records, starts, ends)
                continue
            state = runs.get(item.run_id)
            if state is None:  # a call nobody opened a run for: it is a run of its own
                started = item.ts - item.latency_ms / 1000.0
                state, writer = self._open_implicit(item, started, writer, records, starts)
            records.append(item)
            if not state.explicit and isinstance(item, TaskEvent):
                if item.status != "ok" and state.status != "failed":
                    state.status = "interrupted" if item.status == "cancelled" else "failed"
                end = RunEnd(item.run_id, state.status, item.ts)
                ends.append(end)
                records.append(run_end_record(end.run_id, end.status, end.ts))
        in_flight = NO_CALLS
        if placed or self._open_starts:
            in_flight = self._open_starts.in_flight(batch, records, placed, writer)
        try:
            self._log.append(self._log.unwritten(records) if resent else records)
        except Exception as exc:
            self._warn("log", f"cannot write the run log in {self.runs_dir}: {exc}")
        self._store_batch(StoreBatch(starts, attempts, tasks, ends, outcomes, resent, in_flight))

    def _open_implicit(
        self,
        item: AttemptEvent | TaskEvent | AttemptStart,
        started: float,
        writer: dict[str, Any] | None,
        records: list[dict[str, Any] | Event],
        starts: list[RunStart],
    ) -> tuple[_RunState, dict[str, Any] | None]:
        """The state of ``item``'s run, opened as a run of its own, ``started`` then, when
        nobody opened it."""
        runs = self._runs
        state = runs.get(item.run_id)
        if state is None:
            state = runs[item.run_id] = _RunState(explicit=False)
            if len(runs) > _MAX_TRACKED_RUNS:
                runs.popitem(last=False)
            writer = writer or self._writer.acquire()
            starts.append(_with_writer(RunStart(item.run_id, "ask", None, started), writer))
            records.append(run_start_record(item.run_id, "ask", None, started, writer))
        return state, writer

    def _store_batch(self, batch: StoreBatch) -> None:
        """Write the backlog, then ``batch``, to the store; keep them when it cannot be."""
        backlog = self._backlog
        if len(batch):
            backlog.add(batch)
        if not backlog or self._clock() < self._store_retry_at:
            return
        store = self._open_store()
        if store is None:
            return
        kept = backlog.counts()
        try:
            backlog.write(store)
        except Exception as exc:
            self._store_retry_at = self._clock() + _REWRITE_AFTER
            # A store error names the store already.
            if isinstance(exc, StoreError):
                self._store_failed(exc.message)
            else:
                self._store_failed(f"cannot write to the metrics store {self._label()}: {exc}")
            return
        if self._store_failure is not None:
            self._store_back(kept)
        try:
            self._prune(store)
        except Exception as exc:
            self._warn("prune", f"cannot prune the metrics store {self._label()}: {exc}")

    def _store_failed(self, message: str) -> None:
        self._store_failure = message
        self._warn(
            "store",
            message,
            f"calls go on; the run logs in {self.runs_dir} take them, and up to "
            f"{self._backlog.most:,} records are kept for the store until it takes writes again",
        )

    def _store_back(self, kept: tuple[int, int]) -> None:
        """A write succeeded after failures: say what the store got and what it lacks."""
        message = self._backlog.back_message(self._label(), kept, self.runs_dir)
        log.warning("%s", redact(message))
        self._store_failure = None
        self._warned.discard("store")  # another outage is reported again

    def _report_unstored(self) -> None:
        """At close: the calls and tasks the store never got, and where they are."""
        kept = self._backlog.counts()
        lost = self._backlog.take_lost()
        calls, tasks = kept[0] + lost[0], kept[1] + lost[1]
        if not (calls or tasks) or self._store_failure is None:
            return
        log.warning(
            "%s",
            redact(
                f"the metrics store lacks {calls_and_tasks(calls, tasks)} recorded since it "
                f"failed ({self._store_failure}); the run logs in {self.runs_dir} hold them"
            ),
        )

    def _write_run_item(
        self,
        item: RecordItem,
        writer: dict[str, Any] | None,
        records: list[dict[str, Any] | Event],
        starts: list[RunStart],
        ends: list[RunEnd],
    ) -> dict[str, Any] | None:
        """A run's start or end among the batch (or an object that is no record, warned
        about); returns the writer record, taken at the first start."""
        if isinstance(item, RunStart):
            self._runs[item.run_id] = _RunState(explicit=True)
            writer = writer or self._writer.acquire()
            starts.append(_with_writer(item, writer))
            records.append(run_start_record(item.run_id, item.kind, item.meta, item.ts, writer))
        elif isinstance(item, RunEnd):
            self._runs.pop(item.run_id, None)
            ends.append(item)
            records.append(run_end_record(item.run_id, item.status, item.ts))
        else:
            self._warn("event", f"ignored an object that is not an event: {item!r:.80}")
        return writer

    def _open_store(self) -> MetricsStore | None:
        if self._store is not None:
            return self._store
        try:
            from rolecall.recording.store import open_store

            self._store = open_store(self.url, base_dir=self.base_dir)
        except Exception as exc:
            self._store_retry_at = self._clock() + _REOPEN_AFTER
            # A store error names the store and the fix already.
            message = exc.message if isinstance(exc, RolecallError) else str(exc)
            if not isinstance(exc, StoreError):
                message = f"cannot open the metrics store {self._label()}: {message}"
            self._store_failed(message)
        return self._store

    def _prune(self, store: MetricsStore) -> None:
        if self._retention_days is None:
            return
        now = time.time()
        if now - self._last_prune < _PRUNE_EVERY and not self._prune_left:
            return
        cutoff = now - self._retention_days * 86400.0
        if not self._prune_left:
            self._last_prune = now
            # A run still open here (an idle gateway's) keeps its log, however old.
            self._log.prune(cutoff, keep={rid for rid, st in self._runs.items() if st.explicit})
        self._prune_left = store.prune(cutoff, most=_PRUNE_PER_FLUSH) >= _PRUNE_PER_FLUSH

    def _label(self) -> str:
        from rolecall.recording.store import describe_url

        return describe_url(self.url)

    def _warn(
        self,
        what: str,
        message: str,
        then: str = "calls go on, further failures are not reported",
    ) -> None:
        if what in self._warned:
            return
        self._warned.add(what)
        log.warning("%s; %s", redact(message), then)

    # -- signals ------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signals.hold(signum):
            return  # a stop while close() writes the last records: once they are written
        previous = self._signals.previous.get(signum, signal.SIG_DFL)
        terminating = previous in (signal.SIG_DFL, None)
        try:
            if terminating:
                self._close(wait=5.0)
            elif not self._closed:
                self._flush_pending(wait=5.0)
        except Exception:  # a handler must not raise anything of its own
            pass
        if callable(previous):
            previous(signum, frame)
        elif terminating:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
