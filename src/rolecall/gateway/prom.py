"""Prometheus text exposition (format 0.0.4) for the gateway, written small by hand.

:class:`GatewayMetrics` is an event sink: the router's attempt and task events
feed per provider x role counters and histograms, and the gateway adds its own
HTTP request counts. Everything runs on the server's event loop, so plain dicts
suffice. No dependency: the format is a few lines of text per series. Under
``rolecall serve --workers N`` each worker's values are summed by
:mod:`rolecall.gateway.prom_share` (:meth:`GatewayMetrics.values` and ``add``).

Kept rather than replaced by ``prometheus_client``, which costs measurably more:
``benchmarks/bench_prom.py`` renders the same 20 provider x role series (calls,
failures, hand-overs, tokens, latency histogram) in 1.3 ms against 15.3 ms with
prometheus_client 0.26 (~12x), and records an attempt in 3.5 us against 14.8 us
(shared 2-core machine). /metrics is scraped every few seconds and recording sits
on the request path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rolecall.events import AttemptEvent, Event, TaskEvent

__all__ = ["CONTENT_TYPE", "Counter", "GatewayMetrics", "Gauge", "Histogram", "Registry"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; LLM calls span milliseconds (local fakes, caches) to minutes (long answers).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

Labels = tuple[str, ...]
# One metric's values as plain JSON-able data (a worker's share of the sum under --workers N).
Values = list[list[Any]]
_Series = tuple[list[int], list[float]]  # a histogram series: per-bucket counts; sum and count


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:  # pragma: no cover - overridden
        return ()

    def values_list(self) -> Values:  # pragma: no cover - overridden
        return []

    def add_values(self, values: Values) -> None:  # pragma: no cover - overridden
        pass


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        # labels -> a one-item list holding the value: a cell the hot paths keep and add to.
        self.cells: dict[Labels, list[float]] = {}

    def cell(self, labels: Labels) -> list[float]:
        """The series' value cell (created at 0: it is rendered from now on)."""
        cell = self.cells.get(labels)
        if cell is None:
            cell = self.cells[labels] = [0.0]
        return cell

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.cell(labels)[0] += amount

    def samples(self) -> Iterable[str]:
        for labels, (value,) in sorted(self.cells.items()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"

    def values_list(self) -> Values:
        return [[list(labels), value] for labels, (value,) in self.cells.items()]

    def add_values(self, values: Values) -> None:
        """Add another copy's :meth:`values_list` to these (a gauge too: summed)."""
        for labels, value in values:
            self.inc(tuple(labels), value)


class Gauge(Counter):
    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        self.cell(labels)[0] = value


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        # labels -> (count per bucket, not cumulative; sum; count)
        self.series: dict[Labels, _Series] = {}

    def entry(self, labels: Labels) -> _Series:
        """The series' counts and totals, for :func:`observe` (created empty)."""
        entry = self.series.get(labels)
        if entry is None:
            entry = self.series[labels] = ([0] * len(self.buckets), [0.0, 0.0])
        return entry

    def observe(self, labels: Labels, value: float) -> None:
        observe(self.buckets, self.entry(labels), value)

    def samples(self) -> Iterable[str]:
        for labels, (counts, (total, count)) in sorted(self.series.items()):
            running = 0
            for bound, hits in zip(self.buckets, counts, strict=True):
                running += hits
                le = _labels(self.labelnames, labels, f'le="{_number(bound)}"')
                yield f"{self.name}_bucket{le} {running}"
            inf = _labels(self.labelnames, labels, 'le="+Inf"')
            yield f"{self.name}_bucket{inf} {_number(count)}"
            plain = _labels(self.labelnames, labels)
            yield f"{self.name}_sum{plain} {_number(total)}"
            yield f"{self.name}_count{plain} {_number(count)}"

    def values_list(self) -> Values:
        return [[list(k), counts, total, n] for k, (counts, (total, n)) in self.series.items()]

    def add_values(self, values: Values) -> None:
        """Add another copy's :meth:`values_list` (same buckets) to these."""
        for labels, counts, total, count in values:
            entry = self.series.setdefault(tuple(labels), ([0] * len(self.buckets), [0.0, 0.0]))
            mine, totals = entry
            for index, hits in enumerate(counts):
                mine[index] += hits
            totals[0] += total
            totals[1] += count


_M = TypeVar("_M", bound=_Metric)


def observe(buckets: tuple[float, ...], entry: _Series, value: float) -> None:
    """Count ``value`` in a histogram series (``Histogram.entry``)."""
    counts, totals = entry
    for index, bound in enumerate(buckets):
        if value <= bound:
            counts[index] += 1
            break
    totals[0] += value
    totals[1] += 1


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: _M) -> _M:
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            lines += metric.header()
            lines += metric.samples()
        return "\n".join(lines) + "\n"


@dataclass(slots=True)
class _AttemptCells:
    """What an attempt of one (provider, role, outcome) counts in (token cells on first use)."""

    calls: list[float]
    seconds: _Series
    handovers: list[float] | None  # only for the outcome "handover"
    input: list[float] | None = None
    output: list[float] | None = None


class GatewayMetrics:
    """The gateway's series; also an :class:`~rolecall.events.EventSink` for router events."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.requests = r.add(
            Counter(
                "rolecall_gateway_requests_total",
                "Requests to the front doors (chat completions, messages, responses) by model "
                "(role or provider id) and status.",
                ("model", "status"),
            )
        )
        self.request_seconds = r.add(
            Histogram(
                "rolecall_gateway_request_duration_seconds",
                "Time to answer a front-door request (to the last byte when streaming).",
                ("model",),
            )
        )
        self.in_flight = r.add(Gauge("rolecall_gateway_in_flight", "Chat requests in progress."))
        self.reloads = r.add(
            Counter("rolecall_config_reloads_total", "Config file reloads by result.", ("result",))
        )
        self.tasks = r.add(
            Counter("rolecall_tasks_total", "Routed tasks by role and status.", ("role", "status"))
        )
        self.task_seconds = r.add(
            Histogram("rolecall_task_duration_seconds", "Routed task latency by role.", ("role",))
        )
        self.calls = r.add(
            Counter(
                "rolecall_provider_calls_total",
                "Calls to providers (every attempt) by outcome: ok, retry or handover.",
                ("provider", "role", "outcome"),
            )
        )
        self.failures = r.add(
            Counter(
                "rolecall_provider_failures_total",
                "Failed provider calls by error kind.",
                ("provider", "role", "kind"),
            )
        )
        self.handovers = r.add(
            Counter(
                "rolecall_handovers_total",
                "Hand-overs from a provider to the next in the role's chain.",
                ("provider", "role"),
            )
        )
        self.call_seconds = r.add(
            Histogram(
                "rolecall_provider_call_duration_seconds",
                "Provider call latency by provider and role.",
                ("provider", "role"),
            )
        )
        self.tokens = r.add(
            Counter(
                "rolecall_tokens_total",
                "Tokens by provider, role and direction (input or output).",
                ("provider", "role", "direction"),
            )
        )
        self.health = r.add(
            Gauge(
                "rolecall_provider_health",
                "1 for the provider's current health state, 0 for the others.",
                ("provider", "state"),
            )
        )
        # Requests in progress, written into the in_flight gauge when read (render, values),
        # once this process has served one: a sum of workers' values keeps the summed gauge.
        self._in_flight = 0
        self._served = False
        # The cells each label set feeds, looked up once per (provider, role, outcome),
        # (role, status) or (model, status) rather than per series on every call.
        self._attempts: dict[tuple[str, str, str], _AttemptCells] = {}
        self._tasks: dict[tuple[str, str], tuple[list[float], _Series]] = {}
        self._requests: dict[tuple[str, int], tuple[list[float], _Series]] = {}

    # EventSink
    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptEvent):
            self._attempt(event)
        elif isinstance(event, TaskEvent):
            key = (event.role, event.status)
            cells = self._tasks.get(key)
            if cells is None:
                cells = self._tasks[key] = (self.tasks.cell(key), self.task_seconds.entry(key[:1]))
            cells[0][0] += 1
            observe(self.task_seconds.buckets, cells[1], event.latency_ms / 1000)

    def _attempt(self, event: AttemptEvent) -> None:
        if event.attempt == 0:  # skipped before any call (no slot, unsupported): no call made
            self.handovers.inc((event.provider, event.role))
            return
        key = (event.provider, event.role, event.outcome)
        cells = self._attempts.get(key)
        if cells is None:
            cells = self._attempts[key] = self._attempt_cells(key)
        cells.calls[0] += 1
        observe(self.call_seconds.buckets, cells.seconds, event.latency_ms / 1000)
        if event.error_kind is not None:
            self.failures.inc((*key[:2], str(event.error_kind)))
        if cells.handovers is not None:
            cells.handovers[0] += 1
        if event.input_tokens:
            if cells.input is None:
                cells.input = self.tokens.cell((*key[:2], "input"))
            cells.input[0] += event.input_tokens
        if event.output_tokens:
            if cells.output is None:
                cells.output = self.tokens.cell((*key[:2], "output"))
            cells.output[0] += event.output_tokens

    def _attempt_cells(self, key: tuple[str, str, str]) -> _AttemptCells:
        where = key[:2]
        handovers = self.handovers.cell(where) if key[2] == "handover" else None
        return _AttemptCells(self.calls.cell(key), self.call_seconds.entry(where), handovers)

    def request_started(self) -> None:
        self._in_flight += 1
        self._served = True

    def request_finished(self, model: str, status: int, seconds: float) -> None:
        self._in_flight -= 1
        key = (model, status)
        cells = self._requests.get(key)
        if cells is None:
            count = self.requests.cell((model, str(status)))
            cells = self._requests[key] = (count, self.request_seconds.entry((model,)))
        cells[0][0] += 1
        observe(self.request_seconds.buckets, cells[1], seconds)

    def set_health(self, states: Mapping[str, str], all_states: Sequence[str]) -> None:
        """Replace the health gauge with one provider -> state mapping."""
        self.health.cells.clear()
        for provider, state in states.items():
            for candidate in all_states:
                self.health.set((provider, candidate), 1.0 if candidate == state else 0.0)

    def render(self) -> str:
        self._show_in_flight()
        return self.registry.render()

    def _show_in_flight(self) -> None:
        if self._served:
            self.in_flight.set((), self._in_flight)

    # ---- one sum over the workers of `rolecall serve --workers N` (gateway.prom_share) ----

    def values(self) -> dict[str, Values]:
        """Every series but health (each worker reads that from the host's shared table)."""
        self._show_in_flight()
        return {m.name: m.values_list() for m in self.registry.metrics if m is not self.health}

    def add(self, values: Mapping[str, Values], *, live: bool) -> None:
        """Add another worker's :meth:`values`; its gauges only while it is ``live``."""
        for metric in self.registry.metrics:
            data = values.get(metric.name)
            if data and metric is not self.health and (live or not isinstance(metric, Gauge)):
                metric.add_values(data)
