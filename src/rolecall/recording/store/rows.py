"""Typed rows the store and the run log return; ``to_dict()`` is the JSON the CLI prints.

The shapes are the public contract of ``rolecall metrics --format json`` and
``rolecall runs show --json``; the README's Commands section describes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rolecall.events import moved_on

__all__ = [
    "Advice",
    "AttemptDetail",
    "MetricsRow",
    "RunDetail",
    "RunSummary",
    "TaskDetail",
    "TrendRow",
    "build_tasks",
    "folded_attempt",
    "iso",
]


def iso(ts: float | None) -> str | None:
    """A UTC ISO 8601 time (milliseconds) for an epoch time; None for none, or for one
    past the calendar's years (a store written by a broken clock still reads)."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class MetricsRow:
    """Totals for one group (by default one provider in one role) over a time range.

    ``requests`` counts every call (attempt) made, retries included; ``successes`` those that
    returned an answer; ``failures`` the rest, by kind in ``errors``. Latencies cover every
    attempt; percentiles are nearest-rank, read from log-scale histograms (within ~1%).
    """

    provider: str | None
    role: str | None
    model: str | None
    requests: int
    successes: int
    failures: int
    errors: dict[str, int]
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_avg_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    group_by: tuple[str, ...] = ("provider", "role")
    cached_input_tokens: int = 0  # of input_tokens, read from the vendors' prompt caches
    # Calls with a known cost (a provider with pricing); None: not counted, taken as all.
    priced_requests: int | None = None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.requests if self.requests else None

    @property
    def cost_complete(self) -> bool:
        """Whether every answered call has a known cost (a failed call costs nothing), so
        ``cost_usd`` is the whole spend, not the part of it that was priced."""
        return self.priced_requests is None or self.priced_requests >= self.successes

    @property
    def cost_per_success(self) -> float | None:
        """Spend per answer (a failed call costs nothing, so spend per call would make a
        provider that fails look cheap); None when unknown, or known for only some answered
        calls (it would make the provider look cheaper than it is)."""
        if self.cost_usd is None or not self.successes or not self.cost_complete:
            return None
        return self.cost_usd / self.successes

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"provider": self.provider, "role": self.role}
        if "model" in self.group_by:
            data["model"] = self.model
        data.update(
            {
                "requests": self.requests,
                "successes": self.successes,
                "failures": self.failures,
                "success_rate": _round(self.success_rate, 4),
                "latency_ms": {
                    "avg": _round(self.latency_avg_ms, 3),
                    "p50": _round(self.latency_p50_ms, 3),
                    "p95": _round(self.latency_p95_ms, 3),
                    "p99": _round(self.latency_p99_ms, 3),
                },
                "tokens": {
                    "input": self.input_tokens,
                    "output": self.output_tokens,
                    "cached_input": self.cached_input_tokens,
                },
                "cost_usd": _round(self.cost_usd, 9),
                "priced_requests": self.priced_requests,
                "errors": dict(sorted(self.errors.items())),
            }
        )
        return data


@dataclass(frozen=True, slots=True)
class TrendRow:
    """One group's metrics in one time bucket (a UTC hour or day)."""

    bucket_start: float
    metrics: MetricsRow

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": iso(self.bucket_start), **self.metrics.to_dict()}


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    kind: str
    status: str
    started_at: float
    finished_at: float | None
    tasks: int
    tasks_failed: int
    attempts: int
    handovers: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RunSummary:
        """A row of the ``runs`` table (its columns in ``statements.RUN_COLUMNS`` order)."""
        return cls(
            run_id=str(row[0]),
            kind=str(row[1]),
            status=str(row[2]),
            started_at=float(row[3]),
            finished_at=None if row[4] is None else float(row[4]),
            tasks=int(row[5]),
            tasks_failed=int(row[6]),
            attempts=int(row[7]),
            handovers=int(row[8]),
            input_tokens=int(row[9]),
            output_tokens=int(row[10]),
            cost_usd=None if row[11] is None else float(row[11]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "status": self.status,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "tasks": self.tasks,
            "tasks_failed": self.tasks_failed,
            "attempts": self.attempts,
            "handovers": self.handovers,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": _round(self.cost_usd, 9),
        }


@dataclass(frozen=True, slots=True)
class AttemptDetail:
    provider: str
    attempt: int
    outcome: str
    error_kind: str | None
    latency_ms: float
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    cached_input_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "error_kind": self.error_kind,
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass(slots=True)
class TaskDetail:
    task_id: str
    role: str
    stage: str | None
    status: str
    provider: str | None
    model: str | None
    attempts: list[AttemptDetail]
    input_tokens: int
    output_tokens: int
    latency_ms: float
    cost_usd: float | None = None
    error: str | None = None
    cached_input_tokens: int = 0
    dialect: str | None = None  # the gateway API it came in on (chat, messages, responses)
    note: str | None = None  # what the workflow said of it ("written", "failed: 1 of 2"...)

    @property
    def handovers(self) -> int:
        return sum(1 for attempt in self.attempts if moved_on(attempt.outcome, attempt.error_kind))

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "role": self.role or None,  # a task that calls no model (a check) has none
            "stage": self.stage,
            "dialect": self.dialect,
            "status": self.status,
            "provider": self.provider,
            "model": self.model,
            "attempts": [attempt.to_dict() for attempt in self.attempts],
            "handovers": self.handovers,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "cost_usd": _round(self.cost_usd, 9),
            "error": self.error,
            "note": self.note,
        }


@dataclass(slots=True)
class RunDetail:
    run_id: str
    kind: str
    status: str
    started_at: float | None
    finished_at: float | None
    tasks: list[TaskDetail] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # Set when ``tasks`` holds only the run's newest tasks: the tasks it finished in all.
    tasks_total: int | None = None

    @property
    def cost_usd(self) -> float | None:
        costs = [task.cost_usd for task in self.tasks if task.cost_usd is not None]
        return sum(costs) if costs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "status": self.status,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "cost_usd": _round(self.cost_usd, 9),
            "tasks": [task.to_dict() for task in self.tasks],
        }


@dataclass(frozen=True, slots=True)
class Advice:
    """One finding of ``metrics advise``.

    ``kind`` is ``reassign`` (``provider`` under-performs ``better`` in ``role`` on
    ``metric``), ``rate_limited`` (429s took ``value`` of ``provider``'s calls in ``role``)
    or ``insufficient_data`` (too few calls in ``role`` to judge).
    """

    kind: str
    role: str
    message: str
    provider: str | None = None
    better: str | None = None
    metric: str | None = None
    value: float | None = None
    better_value: float | None = None
    requests: int = 0
    better_requests: int = 0
    suggestion: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "role": self.role,
            "provider": self.provider,
            "better": self.better,
            "metric": self.metric,
            "value": self.value,
            "better_value": self.better_value,
            "requests": self.requests,
            "better_requests": self.better_requests,
            "suggestion": self.suggestion,
            "message": self.message,
        }


def folded_attempt(task: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the attempt kept on a task's line or row (a task its first attempt
    answered: :func:`~rolecall.events.answered_at_once`), taking the attempt's two fields
    out of ``task``; None when the task holds no attempt."""
    latency = task.pop("attempt_latency_ms", None)
    ts = task.pop("attempt_ts", None)
    if ts is None:
        return None
    get = task.get
    return {
        "run_id": get("run_id"),
        "task_id": get("task_id"),
        "role": get("role"),
        "provider": get("provider"),
        "model": get("model"),
        "attempt": 1,
        "outcome": "ok",
        "error_kind": None,
        "latency_ms": latency,
        "input_tokens": get("input_tokens", 0),
        "output_tokens": get("output_tokens", 0),
        "cost_usd": get("cost_usd"),
        "error": None,
        "ts": ts,
        "type": "attempt",
        "cached_input_tokens": get("cached_input_tokens", 0),
    }


def build_tasks(events: Iterable[Mapping[str, Any]], *, run_open: bool) -> list[TaskDetail]:
    """Tasks in first-seen order from attempt, task and outcome records (``event_to_dict``
    shape; an outcome: :class:`~rolecall.events.TaskOutcome`'s fields).

    A task with attempts but no task record is ``running`` while its run is open and
    ``incomplete`` after (the process stopped mid-task). An outcome (what the workflow
    concluded of the task) sets its status, error and note over what its calls said; a
    task of the workflow that made no call (the checks, a blocked task) has only that.
    A call's start (``attempt_start``) with no attempt record after it is a call in
    flight: once the run is no longer open (its process was killed mid-call), it is
    the ``cancelled`` attempt it became, with the time it was known to have run.
    """
    tasks: dict[str, TaskDetail] = {}
    finished: set[str] = set()
    in_flight: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for event in events:
        task_id = str(event.get("task_id", ""))
        task = tasks.get(task_id)
        if task is None:
            task = TaskDetail(
                task_id=task_id,
                role=str(event.get("role") or ""),
                stage=event.get("stage"),
                status="running" if run_open else "incomplete",
                provider=None,
                model=None,
                attempts=[],
                input_tokens=0,
                output_tokens=0,
                latency_ms=0.0,
            )
            tasks[task_id] = task
        kind = event.get("type")
        if kind == "attempt_start":
            in_flight.setdefault(_call_key(event), []).append(event)
        elif kind == "attempt":
            begun = in_flight.get(_call_key(event))
            if begun:
                begun.pop(0)
            attempt = AttemptDetail(
                provider=str(event["provider"]),
                attempt=int(event.get("attempt") or 0),
                outcome=str(event.get("outcome")),
                error_kind=event.get("error_kind"),
                latency_ms=float(event.get("latency_ms") or 0.0),
                model=event.get("model"),
                input_tokens=int(event.get("input_tokens") or 0),
                output_tokens=int(event.get("output_tokens") or 0),
                cost_usd=event.get("cost_usd"),
                cached_input_tokens=int(event.get("cached_input_tokens") or 0),
            )
            task.attempts.append(attempt)
            if task_id not in finished:
                # Until the task record arrives, show what the attempts add up to.
                task.provider = attempt.provider
                task.model = attempt.model
                task.input_tokens += attempt.input_tokens
                task.output_tokens += attempt.output_tokens
                task.cached_input_tokens += attempt.cached_input_tokens
                task.latency_ms += attempt.latency_ms
                if attempt.cost_usd is not None:
                    task.cost_usd = (task.cost_usd or 0.0) + attempt.cost_usd
        elif kind == "task":
            # A task that calls again (a workflow file continued past the token limit, an
            # answer asked again, a resumed run) spends the sum of its calls; the last one
            # says how it ended.
            again = task_id in finished
            finished.add(task_id)
            task.status = str(event.get("status"))
            task.stage = event.get("stage") or task.stage
            task.dialect = event.get("dialect") or task.dialect
            task.provider = event.get("provider")
            task.model = event.get("model")
            if not again:
                task.input_tokens = task.output_tokens = task.cached_input_tokens = 0
                task.latency_ms = 0.0
            task.input_tokens += int(event.get("input_tokens") or 0)
            task.output_tokens += int(event.get("output_tokens") or 0)
            task.cached_input_tokens += int(event.get("cached_input_tokens") or 0)
            task.latency_ms += float(event.get("latency_ms") or 0.0)
            if event.get("cost_usd") is not None:
                earlier = (task.cost_usd or 0.0) if again else 0.0
                task.cost_usd = earlier + float(event["cost_usd"])
            task.error = event.get("error")
        elif kind == "outcome":
            task.status = str(event.get("status"))
            task.stage = event.get("stage") or task.stage
            task.error = event.get("error")
            task.note = event.get("note")
    if not run_open:
        for begun in in_flight.values():
            for start in begun:
                _cut_short(tasks[str(start.get("task_id", ""))], start, finished)
    return list(tasks.values())


def _call_key(record: Mapping[str, Any]) -> tuple[str, str, int]:
    """What a call's start and its attempt record share within a run."""
    task_id, provider = str(record.get("task_id", "")), str(record.get("provider"))
    return (task_id, provider, int(record.get("attempt") or 0))


def _cut_short(task: TaskDetail, start: Mapping[str, Any], finished: set[str]) -> None:
    """Add to ``task`` the call ``start`` began, which its killed process never ended."""
    attempt = AttemptDetail(
        provider=str(start.get("provider")),
        attempt=int(start.get("attempt") or 0),
        outcome="cancelled",
        error_kind=None,
        latency_ms=float(start.get("latency_ms") or 0.0),
        model=start.get("model"),
    )
    task.attempts.append(attempt)
    if task.task_id not in finished:
        task.provider, task.model = attempt.provider, attempt.model
        task.latency_ms += attempt.latency_ms
