"""OpenTelemetry spans and metrics for tasks and attempts (``rolecall[otel]``).

A span per task and a child span per attempt, following the GenAI semantic
conventions, parented under the caller's current span. Spans are built from
the router's events when the task ends, with the real start and end times, so
tracing adds nothing to the call path beyond one event. Events carry no prompt
or completion text, so none is ever recorded.

Each attempt also feeds the GenAI client metrics: ``gen_ai.client.operation.duration``
(histogram, seconds) and ``gen_ai.client.token.usage`` (histogram, tokens, with
``gen_ai.token.type`` input or output), with the role and provider as attributes.
The vendor is ``gen_ai.provider.name``, and ``gen_ai.system`` too, its name in earlier
conventions, which many tools still read (one value, no added series).
``gen_ai.request.model`` is the model the provider was asked for (its configured one);
the name a provider answers with (an attempt event's ``model``, often a dated snapshot)
is ``gen_ai.response.model`` on the spans only, so no name a provider picks adds a
metric series.
Where the spans and metrics go is set up by :mod:`rolecall.recording.telemetry_setup`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from rolecall.config.registry import provider_types as registered_types
from rolecall.errors import MissingExtra
from rolecall.events import AttemptEvent, Event, TaskEvent

__all__ = ["TelemetrySink", "telemetry_enabled"]


# Bucket boundaries the GenAI semantic conventions recommend for the two histograms.
_DURATION_BUCKETS = tuple(0.01 * 2**power for power in range(14))  # 0.01 s .. 81.92 s
_TOKEN_BUCKETS = tuple(float(4**power) for power in range(14))


def telemetry_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Telemetry is on when the standard OTEL_* variables ask for traces or metrics."""
    from rolecall.recording.telemetry_setup import metrics_wanted, traces_wanted

    env = os.environ if environ is None else environ
    return traces_wanted(env) or metrics_wanted(env)


def _server(url: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of ``url`` (the port its scheme implies when it
    names none), or {} when it has no host."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return {}
    if not parts.hostname:
        return {}
    server: dict[str, Any] = {"server.address": parts.hostname}
    if port is not None:
        server["server.port"] = port
    return server


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class TelemetrySink:
    """An event sink that turns each finished task into a span tree."""

    def __init__(
        self,
        provider_types: Mapping[str, str],
        *,
        provider_models: Mapping[str, str] | None = None,
        tracer_provider: Any | None = None,
        meter_provider: Any | None = None,
        provider_urls: Mapping[str, str] | None = None,
    ) -> None:
        """``provider_models``: each provider's configured model, the one requested;
        ``provider_urls``: the address each is reached at, where known."""
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingExtra("otel", "opentelemetry-api", "OpenTelemetry tracing") from exc
        self._trace = trace
        self._tracer = trace.get_tracer("rolecall", tracer_provider=tracer_provider)
        meter = metrics.get_meter("rolecall", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(_TOKEN_BUCKETS),
        )
        # gen_ai.provider.name of the semantic conventions: each type's registry row says it.
        rows = registered_types()
        self._vendors = {
            pid: rows[t].genai_system if t in rows else t for pid, t in provider_types.items()
        }
        self._models: Mapping[str, str] = dict(provider_models or {})
        # server.address and server.port of each provider reached at a known address.
        self._servers = {
            pid: server for pid, url in (provider_urls or {}).items() if (server := _server(url))
        }
        self._pending: dict[tuple[str, str], list[AttemptEvent]] = {}

    def _requested(self, attempt: AttemptEvent) -> str:
        """The model ``attempt`` asked for: its provider's configured one when known (an
        answered attempt's event holds the model that answered)."""
        return self._models.get(attempt.provider) or attempt.model

    def _vendor(self, provider: str) -> dict[str, Any]:
        """The vendor's name under ``gen_ai.provider.name``, and under ``gen_ai.system``, the
        name it replaced, which tools built on earlier conventions still read; the server's
        address and port where known."""
        name = self._vendors.get(provider, "unknown")
        return {
            "gen_ai.provider.name": name,
            "gen_ai.system": name,
            **self._servers.get(provider, {}),
        }

    def emit(self, event: Event) -> None:
        key = (event.run_id, event.task_id)
        if isinstance(event, AttemptEvent):
            self._pending.setdefault(key, []).append(event)
            self._record_metrics(event)
            return
        self._task_span(event, self._pending.pop(key, []))

    def _record_metrics(self, attempt: AttemptEvent) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            **self._vendor(attempt.provider),
            "gen_ai.request.model": self._requested(attempt),
            "rolecall.role": attempt.role,
            "rolecall.provider": attempt.provider,
        }
        if attempt.error_kind is not None:
            attributes["error.type"] = attempt.error_kind.value
        self._duration.record(attempt.latency_ms / 1000, attributes)
        if attempt.outcome != "ok":
            return
        self._tokens.record(attempt.input_tokens, {**attributes, "gen_ai.token.type": "input"})
        self._tokens.record(attempt.output_tokens, {**attributes, "gen_ai.token.type": "output"})

    def _task_span(self, task: TaskEvent, attempts: list[AttemptEvent]) -> None:
        trace = self._trace
        task_start = task.ts - task.latency_ms / 1000
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "rolecall.role": task.role,
            "rolecall.run_id": task.run_id,
            "rolecall.task_id": task.task_id,
            # ok, failed or cancelled; a cancelled task (its caller went away) is no error:
            # no provider failed it, as its cancelled call says
            "rolecall.status": task.status,
            "rolecall.attempts": task.attempts,
            "rolecall.handovers": task.handovers,
            "gen_ai.usage.input_tokens": task.input_tokens,
            "gen_ai.usage.output_tokens": task.output_tokens,
        }
        if task.provider:
            attributes["rolecall.provider"] = task.provider
            attributes.update(self._vendor(task.provider))
        if task.model:
            attributes["gen_ai.response.model"] = task.model
        if task.stage:
            attributes["rolecall.stage"] = task.stage
        span = self._tracer.start_span(
            f"rolecall.task {task.role}", start_time=_ns(task_start), attributes=attributes
        )
        if task.status == "failed":
            span.set_attribute("error.type", "all_providers_failed")
            span.set_status(trace.Status(trace.StatusCode.ERROR, task.error or ""))
        context = trace.set_span_in_context(span)
        for attempt in attempts:
            self._attempt_span(attempt, context)
        span.end(end_time=_ns(task.ts))

    def _attempt_span(self, attempt: AttemptEvent, context: Any) -> None:
        trace = self._trace
        requested = self._requested(attempt)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            **self._vendor(attempt.provider),
            "gen_ai.request.model": requested,
            "rolecall.role": attempt.role,
            "rolecall.provider": attempt.provider,
            "rolecall.attempt": attempt.attempt,
            "rolecall.outcome": attempt.outcome,
        }
        if attempt.outcome == "ok":
            attributes["gen_ai.response.model"] = attempt.model
            attributes["gen_ai.usage.input_tokens"] = attempt.input_tokens
            attributes["gen_ai.usage.output_tokens"] = attempt.output_tokens
        span = self._tracer.start_span(
            f"chat {requested}",
            context=context,
            kind=trace.SpanKind.CLIENT,
            start_time=_ns(attempt.ts - attempt.latency_ms / 1000),
            attributes=attributes,
        )
        if attempt.error_kind is not None:
            span.set_attribute("error.type", attempt.error_kind.value)
            span.set_status(trace.Status(trace.StatusCode.ERROR, attempt.error or ""))
        span.end(end_time=_ns(attempt.ts))
