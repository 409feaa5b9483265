"""/metrics as one sum over the workers of ``rolecall serve --workers N``.

Each worker keeps its own :class:`~rolecall.gateway.prom.GatewayMetrics`, so
recording stays a dict update on the request path, and publishes its values
(JSON, not text) to a file of its own in the serve's private directory: on a
timer when they changed (about once a second; the file is written in a thread,
off the event loop), before every scrape it answers, and when it stops. A file
is replaced whole (temporary file, then rename), so a reader sees one
publication or the next, never half of one, and never an older one after a
newer (publications are numbered).

A scrape adds the other workers' files to its own values: counters and
histograms of every worker this serve ever ran (a dead worker's last file stays
in the sum), gauges only of live workers. A worker holds an exclusive ``flock``
on a lock file of its own for as long as it runs; the kernel drops it when the
process ends, also on ``kill -9``, so a lock that can be taken means a finished
worker, whose file will not change again (it is read once, then kept).

Totals never go backwards between scrapes, whichever worker answers them: a
scrape publishes its worker's values before it reads the others, so every value
a scrape shows is on disk and any later scrape reads it or a newer one, and every
worker adds them up in the same order (float sums depend on it). What a
worker killed with -9 counted after its last publication (at most about a
second) is lost, but no scrape had shown it. Provider health is not published:
every worker reads it from the host's shared table.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from rolecall._flock import lock_held
from rolecall._json import dumps, loads
from rolecall.gateway.prom import GatewayMetrics, Values

__all__ = ["PUBLISH_INTERVAL", "SharedMetrics"]

log = logging.getLogger("rolecall.gateway")

PUBLISH_INTERVAL = 1.0  # seconds

WorkerValues = dict[str, Values]
# What summing or rendering values of another shape raises (a list for an object, text
# for a number, a label that is no string...).
_SHAPE_ERRORS = (AttributeError, TypeError, ValueError, KeyError, IndexError)


class SharedMetrics:
    """One worker's side: publishes ``metrics`` to ``directory`` and renders the sum of all.

    ``start()`` (on the worker's event loop) takes the worker's lock and starts the
    timer; ``await stop()`` publishes a last time and releases the lock.
    """

    def __init__(
        self,
        directory: str | Path,
        metrics: GatewayMetrics,
        *,
        interval: float = PUBLISH_INTERVAL,
    ) -> None:
        self.directory = Path(directory)
        self.metrics = metrics
        self.interval = interval
        # The pid names the worker for a reader; the random part keeps a replacement that
        # gets a dead worker's pid from overwriting that worker's last counts.
        stem = f"worker-{os.getpid()}-{os.urandom(4).hex()}"
        self.path = self.directory / f"{stem}.json"
        self._lock_path = self.directory / f"{stem}.lock"
        self._lock: int | None = None
        self._published = b""  # the JSON last handed to _write
        self._sequence = self._written = 0  # publications made, and the last one on disk
        self._writing = threading.Lock()
        self._finished: dict[str, WorkerValues] = {}  # finished workers' last values, by file
        self._timer: asyncio.Task[None] | None = None
        self._skipped: set[str] = set()  # files warned about
        self._refused: set[str] = set()  # finished workers' files of another shape

    def start(self) -> None:
        # Locked before anything is published: a file whose lock is free is final.
        lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        self._lock = lock
        self._timer = asyncio.get_running_loop().create_task(self._publish_every())

    async def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        lock, self._lock = self._lock, None
        if lock is not None:
            self.publish()
            with self._writing:  # after a write the cancelled timer left to its thread
                os.close(lock)  # releases the lock: from now on a finished worker

    async def _publish_every(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            _, job = self._snapshot()
            if job is not None:
                # Writing the file costs ~0.3 ms of system calls: in a thread, off the loop.
                await loop.run_in_executor(None, self._write, *job)

    def publish(self) -> WorkerValues:
        """Write this worker's values now (when they changed); returns them."""
        values, _ = self._snapshot()
        if self._written < self._sequence:  # also when the timer's thread has yet to write it
            self._write(self._sequence, self._published)
        return values

    def _snapshot(self) -> tuple[WorkerValues, tuple[int, bytes] | None]:
        """This worker's values, and (sequence number, JSON) when they are to be written."""
        values = self.metrics.values()
        data = dumps(values)
        if data == self._published:
            return values, None
        self._published = data
        self._sequence += 1
        return values, (self._sequence, data)

    def _write(self, sequence: int, data: bytes) -> None:
        with self._writing:  # the timer's thread and a scrape on the loop
            if sequence <= self._written:
                return  # a newer publication is on disk already: never go back to this one
            try:
                temporary = self.path.with_suffix(".tmp")
                temporary.write_bytes(data)
                os.replace(temporary, self.path)
            except OSError as exc:  # a full disk must not stop the worker, nor its scrapes
                self._published = b""  # written again at the next turn
                log.warning("cannot publish this worker's metrics to %s: %s", self.path, exc)
                return
            self._written = sequence

    def render(self) -> str:
        """The exposition of every worker's sum; health as set on this worker's metrics."""
        own = self.publish()
        others = list(self._others())
        try:
            return self._sum(own, others)
        except _SHAPE_ERRORS:
            # A file of JSON of another shape (damaged, or written by something else):
            # summed without it, rather than failing every scrape.
            return self._sum(own, [other for other in others if self._usable(*other)])

    def _sum(self, own: WorkerValues, others: list[tuple[Path, WorkerValues, bool]]) -> str:
        # In one order whichever worker answers: float addition depends on it, and a total
        # one bit lower than the last scrape's would read as a counter reset.
        workers = sorted([(self.path, own, True), *others], key=lambda worker: worker[0].name)
        total = GatewayMetrics()
        for _, values, live in workers:
            total.add(values, live=live)
        total.health.cells.update((k, [v]) for k, (v,) in self.metrics.health.cells.items())
        return total.render()

    def _usable(self, path: Path, values: WorkerValues, live: bool) -> bool:
        try:
            self._sum({}, [(path, values, live)])
            return True
        except _SHAPE_ERRORS as exc:
            self._skip(path, f"not the metrics of a worker ({type(exc).__name__}: {exc})")
            if not live:
                self._finished.pop(path.name, None)
                self._refused.add(path.name)  # final: never read again
            return False

    def _skip(self, path: Path, why: object) -> None:
        """Warn, once a file, that another worker's file is left out of the sum."""
        if path.name not in self._skipped:
            self._skipped.add(path.name)
            log.warning("skipping the metrics of another worker in %s: %s", path, why)

    def _others(self) -> Iterator[tuple[Path, WorkerValues, bool]]:
        for path in self.directory.glob("worker-*.json"):
            if path == self.path or path.name in self._refused:
                continue
            finished = self._finished.get(path.name)
            if finished is not None:
                yield path, finished, False
                continue
            # Liveness first: a worker found finished wrote its file for the last time.
            live = lock_held(path.with_suffix(".lock")) is not False  # unknown: live
            try:
                values: WorkerValues = loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                self._skip(path, exc)
                continue
            if not live:
                self._finished[path.name] = values
            yield path, values, live
