"""Which process writes a run, and whether it is still alive: ``running`` vs ``abandoned``.

A run whose process is killed (SIGKILL, a crash, a power cut) never gets its end record,
so its log and store row say ``running`` forever. To tell such a run from a live one,
each recording process holds an advisory lock (``flock``) on a file of its own under
``<runs_dir>/.writers/`` for as long as it records, and names that file, its host and
its process id in every run it opens. A reader on the same host shows a ``running`` run
as ``abandoned`` when that lock file is gone or nobody holds its lock.

The kernel drops the lock when the process dies, however it dies, so a reused process id
cannot make a dead run look alive. A run written on another host (a shared PostgreSQL
store) cannot be checked from here and keeps its recorded status.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rolecall._flock import lock_held
from rolecall.recording.store.rows import RunDetail, RunSummary

try:
    import fcntl
except ImportError:  # pragma: no cover - not on this platform: liveness is unknown
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "settle_run", "settle_summary", "settled_status", "writer_alive"]

WRITERS_DIR = ".writers"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class WriterLock:
    """This process's lock file: taken before its first run is written, freed on close."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._fd: int | None = None
        self._path: Path | None = None
        self.info: dict[str, Any] | None = None

    def acquire(self) -> dict[str, Any] | None:
        """The writer record to store with each run, or None when no lock can be had."""
        if self.info is not None or fcntl is None:
            return self.info
        host, pid = socket.gethostname(), os.getpid()
        directory = (self.runs_dir / WRITERS_DIR).absolute()
        path = directory / f"{_UNSAFE.sub('_', host)}-{pid}-{uuid.uuid4().hex[:12]}.lock"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: never contended
        except OSError:
            os.close(fd)
            return None
        self._fd, self._path = fd, path
        self.info = {"host": host, "pid": pid, "lock": str(path)}
        return self.info

    def release(self) -> None:
        """Remove the lock file and drop the lock (after the last record is written)."""
        fd, path = self._fd, self._path
        self._fd = self._path = None
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def writer_alive(writer: Any) -> bool | None:
    """True while the writer holds its lock, False once it is gone, None when unknown."""
    if fcntl is None or not isinstance(writer, Mapping):
        return None
    lock = writer.get("lock")
    if not isinstance(lock, str) or writer.get("host") != socket.gethostname():
        return None
    return lock_held(lock)


def settled_status(status: str, writer: Any) -> str:
    """``abandoned`` for a ``running`` run whose writer is known to be gone, else ``status``."""
    if status == "running" and writer_alive(writer) is False:
        return "abandoned"
    return status


def settle_summary(summary: RunSummary, meta: Mapping[str, Any]) -> RunSummary:
    """A run-list row with ``abandoned`` for a run whose writer (in its meta) is gone."""
    status = settled_status(summary.status, meta.get("writer"))
    return summary if status == summary.status else replace(summary, status=status)


def settle_run(run: RunDetail) -> RunDetail:
    """A stored run with ``abandoned`` status, and its unfinished tasks ``incomplete``,
    when its writer is gone."""
    status = settled_status(run.status, run.meta.get("writer"))
    if status != run.status:
        run.status = status
        for task in run.tasks:
            if task.status == "running":
                task.status = "incomplete"
    return run
