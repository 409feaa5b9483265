"""Events the router emits for every attempt, hand-over and result, and the sink protocol.

Sinks (run log, metrics store, telemetry) receive events synchronously from the
router and must return at once: anything slow belongs on the sink's own
background queue. :class:`EventBus` shields calls from failing sinks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from rolecall.errors import ErrorKind

__all__ = [
    "AttemptEvent",
    "AttemptStart",
    "Event",
    "EventBus",
    "EventSink",
    "StartSink",
    "TaskEvent",
    "TaskOutcome",
    "answered_at_once",
    "event_to_dict",
    "moved_on",
    "new_run_id",
]

log = logging.getLogger("rolecall.events")


def moved_on(outcome: str, error_kind: str | None) -> bool:
    """Did this attempt hand the task over to another provider?

    A failure that was not retried, or a stalled call cancelled because the next
    provider in the chain answered first (the stall race).
    """
    return outcome == "handover" or (outcome == "cancelled" and error_kind == "stalled")


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made
# building an event 3.5x slower (4.8 vs 1.4 us, two events per call on the request path).
# Every sink receives the same object: sinks read events and never change them.
@dataclass(slots=True, kw_only=True)
class AttemptEvent:
    """One call to one provider finished (answered, will be retried, or handed over)."""

    run_id: str
    task_id: str
    role: str
    provider: str
    model: str
    attempt: int
    outcome: Literal["ok", "retry", "handover", "cancelled"]
    error_kind: ErrorKind | None
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    ts: float = field(default_factory=time.time)
    type: Literal["attempt"] = "attempt"
    cached_input_tokens: int = 0  # of input_tokens, read from the vendor's prompt cache


@dataclass(slots=True, kw_only=True)
class TaskEvent:
    """A task finished: which provider answered (or that none did), or that it was cancelled
    (its caller went away, or the router closed under it) before either was known."""

    run_id: str
    task_id: str
    role: str
    status: Literal["ok", "failed", "cancelled"]
    provider: str | None
    model: str | None
    attempts: int
    handovers: int
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    stage: str | None = None
    finish_reason: str | None = None
    ts: float = field(default_factory=time.time)
    type: Literal["task"] = "task"
    cached_input_tokens: int = 0  # of input_tokens, read from the vendor's prompt cache
    # The API the task came in on at the gateway (chat, messages, responses); None elsewhere.
    dialect: str | None = None


Event = AttemptEvent | TaskEvent


@dataclass(slots=True, kw_only=True)
class AttemptStart:
    """A call to one provider began; its :class:`AttemptEvent` says how it ended.

    Only sinks that ask for starts receive it (``EventBus.add(sink, starts=True)``): a
    process killed mid-call leaves the start without its end, which tells the records
    that the provider was called (and may have billed the work). ``(run_id, task_id,
    provider, attempt)`` is what its end repeats.
    """

    run_id: str
    task_id: str
    role: str
    provider: str
    model: str
    attempt: int
    stage: str | None = None
    ts: float = field(default_factory=time.time)
    type: Literal["attempt_start"] = "attempt_start"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOutcome:
    """What a front end (the workflow) concluded of one of its tasks.

    A task's calls can all be answered and the task still fail (a plan still invalid
    after its repair, a file that cannot be written), or a task can make no call at all
    (the checks, a task blocked by a failed one). The run log and the store keep this
    record after the task's own events, and ``runs show`` gives the task its ``status``,
    ``error`` and ``note``. It is no event: no sink of the router sees it, so the
    metrics stay about the providers' calls.
    """

    run_id: str
    task_id: str
    role: str | None
    stage: str | None
    status: str  # ok, failed or blocked
    error: str | None = None
    note: str | None = None
    ts: float = field(default_factory=time.time)
    type: Literal["outcome"] = "outcome"


def answered_at_once(attempt: AttemptEvent, task: object) -> bool:
    """Is ``task`` the task ``attempt`` answered, at its first call, with nothing else to tell?

    Such a task (every gateway call that needed no retry or hand-over) repeats all of its
    attempt but the attempt's latency and time, so the run log and the store keep the
    two on one line or row.
    """
    return (
        type(task) is TaskEvent
        and task.attempts == 1
        and attempt.attempt == 1
        and attempt.outcome == "ok"
        and task.status == "ok"
        and attempt.error is None
        and attempt.error_kind is None
        and task.error is None
        # what the task repeats of its attempt (slot reads, which the interpreter
        # specializes: an attrgetter of these names and a tuple compare take 4x longer)
        and task.task_id == attempt.task_id
        and task.run_id == attempt.run_id
        and task.role == attempt.role
        and task.provider == attempt.provider
        and task.model == attempt.model
        and task.input_tokens == attempt.input_tokens
        and task.output_tokens == attempt.output_tokens
        and task.cached_input_tokens == attempt.cached_input_tokens
        and task.cost_usd == attempt.cost_usd
    )


class EventSink(Protocol):
    def emit(self, event: Event) -> None:
        """Accept one event; must not block or raise for long."""
        ...


class StartSink(EventSink, Protocol):
    def emit_start(self, start: AttemptStart) -> None:
        """Accept one attempt start; must not block or raise for long."""
        ...


class EventBus:
    """Fans events out to sinks; a sink that raises is reported once and skipped.

    Attempt starts go only to the sinks added with ``starts=True`` (the recorder of ``ask``
    and of the workflow); ``starts`` says whether there is one, so that a router whose
    sinks take none (the gateway's) pays one attribute read per call for them.
    """

    def __init__(self, sinks: list[EventSink] | None = None) -> None:
        self._sinks: list[EventSink] = list(sinks or [])
        self._start_sinks: list[StartSink] = []
        self.starts = False
        self._warned: set[int] = set()

    def add(self, sink: EventSink, *, starts: bool = False) -> None:
        self._sinks.append(sink)
        if starts:
            self._start_sinks.append(cast("StartSink", sink))
            self.starts = True

    def remove(self, sink: EventSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
        self._start_sinks = [other for other in self._start_sinks if other is not sink]
        self.starts = bool(self._start_sinks)

    def emit_start(self, start: AttemptStart) -> None:
        for sink in self._start_sinks:
            try:
                sink.emit_start(start)
            except Exception as exc:  # a sink must never break a call
                self._failed(sink, exc)

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink.emit(event)
            except Exception as exc:  # a sink must never break a call
                self._failed(sink, exc)

    def _failed(self, sink: object, exc: Exception) -> None:
        """Say once per sink that it failed (it is skipped for that event only)."""
        if id(sink) not in self._warned:
            self._warned.add(id(sink))
            log.warning("event sink %s failed and is skipped: %s", type(sink).__name__, exc)

    def __bool__(self) -> bool:
        return bool(self._sinks)


def new_run_id() -> str:
    """A sortable, unique run id: UTC time to the second plus random hex."""
    import secrets

    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict of an event."""
    from dataclasses import asdict

    data = asdict(event)
    if data.get("error_kind") is not None:
        data["error_kind"] = str(data["error_kind"])
    return data
