"""A run's saved state, so an interrupted or failed run can be resumed.

``<runs_dir>/<run_id>/state.json`` holds the spec, the options and every task's
record (with its result). It is rewritten after each task, atomically (temporary
file + rename), so a kill at any moment leaves a complete state behind. The
snapshot is taken on the event loop; the file is written by one background
thread that only ever writes the newest snapshot, so saving never stalls the
tasks in flight. ``flush()`` waits for the write.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rolecall.workflow.engine import EngineObserver, TaskRecord
from rolecall.workflow.errors import WorkflowUsageError
from rolecall.workflow.files import write_private
from rolecall.workflow.spec import Spec

__all__ = ["STATE_FILE", "STATE_VERSION", "RunState", "StateSaver", "run_dir_of"]

log = logging.getLogger("rolecall.workflow")

STATE_FILE = "state.json"
STATE_VERSION = 1


def _dumps(value: Any) -> str:
    # Compact JSON: the C encoder keeps a snapshot well under a millisecond.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _write_state(path: Path, text: str) -> None:
    try:
        write_private(path, text)
    except UnicodeEncodeError:
        # A lone surrogate (a name read from a file system that is not UTF-8, say), which
        # UTF-8 cannot hold: it stands in a JSON string, where its escape reads back as it.
        write_private(path, text.encode("utf-8", "backslashreplace").decode("utf-8"))


class _LatestWriter:
    """Writes text files on one background thread; only the newest pending text is kept."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rolecall-state")
        self._lock = threading.Lock()
        self._latest: tuple[Path, str] | None = None
        self._scheduled = False
        self.error: Exception | None = None

    def submit(self, path: Path, text: str) -> None:
        with self._lock:
            self._latest = (path, text)
            if self._scheduled:
                return
            self._scheduled = True
        self._executor.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                item, self._latest = self._latest, None
                if item is None:
                    self._scheduled = False
                    return
            try:
                _write_state(*item)
            except Exception as exc:  # this thread must write the next snapshot still
                if self.error is None:
                    log.warning("cannot save the run state: %s", exc)
                self.error = exc

    def flush(self) -> None:
        """Return once everything submitted so far is on disk (FIFO: a no-op goes last)."""
        self._executor.submit(lambda: None).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)


@dataclass
class RunState:
    run_id: str
    run_dir: Path
    spec: Spec
    output_dir: str
    options: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    # Checks run again on the finished output (``rolecall run --verify-only``), oldest first.
    rechecks: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    _writer: _LatestWriter | None = field(default=None, repr=False, compare=False)
    _encoded: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return self.run_dir / STATE_FILE

    def snapshot(self) -> str:
        """The state as JSON text; finished tasks are encoded once and reused."""
        self.updated_at = time.time()
        head = {
            "version": STATE_VERSION,
            "run_id": self.run_id,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "spec": self.spec.to_dict(),
            "output_dir": self.output_dir,
            "options": self.options,
            "rechecks": self.rechecks,
        }
        encoded = self._encoded
        tasks = ",".join(
            f"{_dumps(name)}:{encoded.get(name) or _dumps(record.to_dict())}"
            for name, record in self.tasks.items()
        )
        return f'{_dumps(head)[:-1]},"tasks":{{{tasks}}}}}\n'

    def task_done(self, record: TaskRecord) -> None:
        """Record a finished task (its JSON is cached: it no longer changes) and save."""
        self.tasks[record.name] = record
        if record.finished:
            self._encoded[record.name] = _dumps(record.to_dict())
        else:  # an interrupted task went back to pending
            self._encoded.pop(record.name, None)
        self.save()

    def save(self) -> None:
        """Queue the current state for writing (see :meth:`flush`)."""
        if self._writer is None:
            self._writer = _LatestWriter()
        self._writer.submit(self.path, self.snapshot())

    def flush(self) -> None:
        """Wait until the last saved state is on disk; stop the writer thread."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.flush()
            writer.close()

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        path = run_dir / STATE_FILE
        run_id = run_dir.name
        try:
            found = path.is_file()
        except OSError:  # a name longer than a file name can be: no run has it
            found = False
        if not found:
            raise WorkflowUsageError(
                f"no saved workflow run '{run_id}' (looked for {path}); "
                "'rolecall runs list' shows recorded runs"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"state version {data.get('version')!r} is not supported")
            return cls(
                run_id=str(data["run_id"]),
                run_dir=run_dir,
                spec=Spec.from_dict(data["spec"]),
                output_dir=str(data["output_dir"]),
                options=dict(data.get("options") or {}),
                status=str(data.get("status", "running")),
                tasks={
                    name: TaskRecord.from_dict(record)
                    for name, record in (data.get("tasks") or {}).items()
                },
                rechecks=list(data.get("rechecks") or []),
                created_at=float(data.get("created_at", time.time())),
            )
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise WorkflowUsageError(
                f"the saved state of run '{run_id}' ({path}) cannot be read: {exc}; "
                "start a new run instead"
            ) from None


def run_dir_of(runs_dir: Path, run_id: str) -> Path:
    """The directory of run ``run_id`` under ``runs_dir``; an id that is no plain name
    (a path, ``..``, a NUL) is a usage error rather than a directory elsewhere."""
    if run_id in ("", ".", "..") or "\0" in run_id or Path(run_id).name != run_id:
        raise WorkflowUsageError(
            f"{run_id!r} is not a run id: give the id that 'rolecall runs list' shows "
            "(a name without '/')"
        )
    return runs_dir / run_id


class StateSaver(EngineObserver):
    """Keeps ``state.tasks`` in step with the engine and saves after every finished task."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def tasks_added(self, records: Sequence[TaskRecord]) -> None:
        for record in records:
            self.state.tasks[record.name] = record

    def task_started(self, record: TaskRecord) -> None:
        self.state.tasks[record.name] = record

    def task_finished(self, record: TaskRecord) -> None:
        self.state.task_done(record)
