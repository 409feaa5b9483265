"""Pre-aggregated metrics per (hour or day, provider, role, model) and per run.

Each batch of events is folded into deltas here, in memory, then merged into the
``rollup_hourly`` / ``rollup_daily`` rows and the ``runs`` summary in the same
transaction as the raw insert, so queries read only these small tables.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, TypeVar

from rolecall.events import AttemptEvent, TaskEvent, TaskOutcome, moved_on
from rolecall.recording.store import histogram
from rolecall.recording.store.rows import MetricsRow

__all__ = [
    "ROLLUP_COLUMNS",
    "Rollup",
    "RunDelta",
    "aggregate",
    "count_tasks",
    "daily_from_hourly",
    "run_deltas",
]

HOUR = 3600
DAY = 86400

# Column order of a rollup row after its key columns.
ROLLUP_COLUMNS = (
    "requests",
    "successes",
    "failures",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_count",
    "latency_sum",
    "latency_hist",
    "cached_input_tokens",
)

RollupKey = tuple[int, str, str, str]  # (period start, provider, role, model)

# One encoder: json.dumps with options builds a new one per call.
_ERRORS_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
_input_tokens = attrgetter("input_tokens")
_output_tokens = attrgetter("output_tokens")
_cached_tokens = attrgetter("cached_input_tokens")
_cost = attrgetter("cost_usd")
_latency = attrgetter("latency_ms")


@dataclass(slots=True)
class Rollup:
    requests: int = 0
    successes: int = 0
    failures: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_count: int = 0  # attempts with a known cost; 0 means "cost unknown"
    latency_sum: float = 0.0
    hist: histogram.DenseHistogram = field(default_factory=histogram.DenseHistogram)
    cached_input_tokens: int = 0

    def add_attempts(self, events: Sequence[AttemptEvent]) -> None:
        """Fold attempt events in: one loop of slot reads (which the interpreter
        specializes), cheaper than a pass of ``attrgetter`` per field."""
        successes = input_tokens = output_tokens = cached = cost_count = 0
        cost_sum = 0.0
        latencies: list[float] = []
        add_latency = latencies.append
        errors = self.errors
        for e in events:
            if e.outcome == "ok":
                successes += 1
            else:
                # No kind: the call was cancelled (its client went away, Ctrl-C), not failed
                # by the provider; counted under that word rather than an unnamed kind.
                kind = "cancelled" if e.error_kind is None else str(e.error_kind)
                errors[kind] = errors.get(kind, 0) + 1
            input_tokens += e.input_tokens
            output_tokens += e.output_tokens
            cached += e.cached_input_tokens
            cost = e.cost_usd
            if cost is not None:
                cost_sum += cost
                cost_count += 1
            add_latency(e.latency_ms)
        self.requests += len(events)
        self.successes += successes
        self.failures += len(events) - successes
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cached_input_tokens += cached
        if cost_count:
            self.cost_usd += cost_sum
            self.cost_count += cost_count
        self.latency_sum += sum(latencies)
        self.hist.add_sparse(Counter(histogram.buckets_of(latencies)))

    def merge(self, other: Rollup) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.failures += other.failures
        for kind, count in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cost_usd += other.cost_usd
        self.cost_count += other.cost_count
        self.latency_sum += other.latency_sum
        self.hist.merge(other.hist)

    def add_row(self, row: Sequence[Any]) -> None:
        """Add a stored row whose columns are :data:`ROLLUP_COLUMNS`, in order."""
        self.requests += int(row[0])
        self.successes += int(row[1])
        self.failures += int(row[2])
        if row[3]:
            for kind, count in json.loads(row[3]).items():
                self.errors[kind] = self.errors.get(kind, 0) + int(count)
        self.input_tokens += int(row[4])
        self.output_tokens += int(row[5])
        self.cost_usd += float(row[6] or 0.0)
        self.cost_count += int(row[7])
        self.latency_sum += float(row[8])
        self.hist.add_text(row[9])
        self.cached_input_tokens += int(row[10] or 0)

    def to_row(self) -> tuple[Any, ...]:
        return (
            self.requests,
            self.successes,
            self.failures,
            _ERRORS_JSON(self.errors),
            self.input_tokens,
            self.output_tokens,
            self.cost_usd,
            self.cost_count,
            self.latency_sum,
            self.hist.dumps(),
            self.cached_input_tokens,
        )

    def to_metrics(
        self,
        provider: str | None,
        role: str | None,
        model: str | None,
        group_by: tuple[str, ...],
    ) -> MetricsRow:
        p50, p95, p99 = self.hist.percentiles((0.50, 0.95, 0.99))
        return MetricsRow(
            provider=provider,
            role=role,
            model=model,
            requests=self.requests,
            successes=self.successes,
            failures=self.failures,
            errors=dict(self.errors),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd if self.cost_count else None,
            latency_avg_ms=self.latency_sum / self.requests if self.requests else None,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
            group_by=group_by,
            cached_input_tokens=self.cached_input_tokens,
            priced_requests=self.cost_count,
        )


def aggregate(attempts: Iterable[AttemptEvent]) -> dict[RollupKey, Rollup]:
    """Hourly deltas for a batch of attempt events.

    A provider skipped before any call (attempt 0: it could not take the request) made
    no request, so it is left out of the metrics; runs still show it as a hand-over.
    """
    groups: dict[RollupKey, list[AttemptEvent]] = {}
    hour, start, end = 0, 0.0, 0.0  # the hour of the last event, [start, end) in seconds
    for event in attempts:
        if event.attempt == 0:
            continue
        ts = event.ts
        if not start <= ts < end:  # a batch's events mostly fall within one hour
            hour = int(ts // HOUR) * HOUR
            start, end = float(hour), float(hour + HOUR)
        key = (hour, event.provider, event.role, event.model or "")
        group = groups.get(key)
        if group is None:
            groups[key] = [event]
        else:
            group.append(event)
    out: dict[RollupKey, Rollup] = {}
    for key, group in groups.items():
        rollup = out[key] = Rollup()
        rollup.add_attempts(group)
    return out


def daily_from_hourly(hourly: dict[RollupKey, Rollup]) -> dict[RollupKey, Rollup]:
    out: dict[RollupKey, Rollup] = {}
    for (hour, provider, role, model), rollup in hourly.items():
        key = ((hour // DAY) * DAY, provider, role, model)
        day = out.get(key)
        if day is None:
            day = out[key] = Rollup()
        day.merge(rollup)
    return out


@dataclass(slots=True)
class RunDelta:
    """What one batch adds to a run's summary row."""

    first_ts: float
    tasks: int = 0
    tasks_failed: int = 0
    attempts: int = 0
    handovers: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


def run_deltas(attempts: Sequence[AttemptEvent], tasks: Sequence[TaskEvent]) -> dict[str, RunDelta]:
    """Per run: attempts, hand-overs, tokens and cost from attempts; the tasks themselves
    are counted by :func:`count_tasks`, which needs to know the tasks already stored.

    A batch's events mostly belong to one run (a gateway's): each sum is then one
    comprehension over the batch, not a field update per event.
    """
    out: dict[str, RunDelta] = {}
    for run_id, group in _by_run(attempts).items():
        delta = out[run_id] = RunDelta(first_ts=min([e.ts - e.latency_ms / 1000.0 for e in group]))
        delta.attempts = len(group)
        delta.handovers = len(
            [e for e in group if e.outcome != "ok" and moved_on(e.outcome, e.error_kind)]
        )
        delta.input_tokens = sum([e.input_tokens for e in group])
        delta.output_tokens = sum([e.output_tokens for e in group])
        costs = [e.cost_usd for e in group if e.cost_usd is not None]
        if costs:
            delta.cost_usd = sum(costs)
    for run_id, finished in _by_run(tasks).items():
        first_ts = min([t.ts - t.latency_ms / 1000.0 for t in finished])
        known = out.get(run_id)
        if known is None:
            out[run_id] = RunDelta(first_ts=first_ts)
        else:
            known.first_ts = min(known.first_ts, first_ts)
    return out


# The statuses a run's ``tasks_failed`` counts (as ``runs list`` counts them from a run log).
_FAILED = frozenset({"failed", "blocked"})


def count_tasks(
    per_run: dict[str, RunDelta],
    tasks: Sequence[TaskEvent | TaskOutcome],
    earlier: Mapping[tuple[str, str], str],
) -> None:
    """Add the batch's tasks to ``per_run`` (from :func:`run_deltas`), each task once.

    A task can finish more than once (a workflow file continued past the token limit,
    a resumed run trying a failed task again, the workflow's outcome after the task's
    calls): ``earlier`` holds the last status stored for a (run id, task id) before this
    batch. A task is counted when first seen, and counts as failed while its last finish
    failed (or was blocked); a cancelled task (its caller went away) did not fail.
    """
    last: dict[tuple[str, str], str] = {}
    for task in tasks:
        last[(task.run_id, task.task_id)] = task.status
    for key, status in last.items():
        delta = per_run[key[0]]
        before = earlier.get(key)
        if before is None:
            delta.tasks += 1
        delta.tasks_failed += int(status in _FAILED) - int(before in _FAILED)


_Event = TypeVar("_Event", AttemptEvent, TaskEvent)


def _by_run(events: Sequence[_Event]) -> dict[str, Sequence[_Event]]:
    """``events`` by run id, in their order."""
    if not events:
        return {}
    run_id = events[0].run_id
    if all([e.run_id == run_id for e in events]):
        return {run_id: events}
    groups: dict[str, list[_Event]] = {}
    for event in events:
        group = groups.get(event.run_id)
        if group is None:
            groups[event.run_id] = [event]
        else:
            group.append(event)
    return dict(groups)
