"""What a front end records through, and the run items queued among the events.

:class:`RecordQueue` is the call path both recorders share: the in-process
:class:`~rolecall.recording.recorder.Recorder` and a ``serve --workers`` worker's
:class:`~rolecall.recording.relay.RecordRelay`, which feeds the host's one writer.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from rolecall.events import AttemptEvent, AttemptStart, Event, TaskEvent, TaskOutcome

__all__ = ["RecordItem", "RecordQueue", "Resent", "RunEnd", "RunStart"]


@dataclass(frozen=True, slots=True)
class RunStart:
    """A run opened (queued as an item among the events)."""

    run_id: str
    kind: str
    meta: dict[str, Any] | None
    ts: float


@dataclass(frozen=True, slots=True)
class RunEnd:
    """A run closed with ``status``."""

    run_id: str
    status: str
    ts: float


RecordItem = AttemptEvent | TaskEvent | RunStart | RunEnd | TaskOutcome | AttemptStart


@dataclass(frozen=True, slots=True)
class Resent:
    """An item a ``serve --workers`` worker sent again, queued in the writer's recorder:
    written only where the run log or the store does not hold it already."""

    item: RecordItem


class RecordQueue:
    """What a front end records through: :class:`Recorder`, or a worker's
    :class:`~rolecall.recording.relay.RecordRelay` feeding the host's one writer.

    The call path is theirs in common: each method is a deque append (no lock, no I/O).
    """

    _buffer: deque[RecordItem] | deque[RecordItem | Resent]
    _closed: bool

    def emit(self, event: Event) -> None:
        """Queue one event; costs a deque append."""
        if not self._closed:
            self._buffer.append(event)

    def emit_start(self, start: AttemptStart) -> None:
        """Queue a call's start (the recorder writes it only if the call outlasts a flush)."""
        if not self._closed:
            self._buffer.append(start)

    def start_run(self, run_id: str, kind: str = "ask", meta: dict[str, Any] | None = None) -> None:
        """Open a run (``ask``, ``workflow`` or ``gateway``); ``meta`` is stored as JSON."""
        if not self._closed:
            self._buffer.append(RunStart(run_id, kind, dict(meta) if meta else None, time.time()))

    def finish_run(self, run_id: str, status: str) -> None:
        """Close a run with ``status`` (``ok``, ``failed``, ``interrupted``...)."""
        if not self._closed:
            self._buffer.append(RunEnd(run_id, status, time.time()))

    def task_outcome(self, outcome: TaskOutcome) -> None:
        """Record what the front end concluded of a task (after the task's own events)."""
        if not self._closed:
            self._buffer.append(outcome)

    def close(self) -> None:
        """Write or hand over everything queued, then release what the recorder holds."""
        raise NotImplementedError
