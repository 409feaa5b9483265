"""OpenTelemetry spans for tasks and attempts (``rolecall[otel]``).

A span per task and a child span per attempt, following the GenAI semantic
conventions, parented under the caller's current span. Spans are built from
the router's events when the task ends, with the real start and end times, so
tracing adds nothing to the call path beyond one event. Events carry no prompt
or completion text, so none is ever recorded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rolecall.errors import MissingExtra
from rolecall.events import AttemptEvent, Event, TaskEvent

__all__ = ["TelemetrySink", "telemetry_enabled"]

# rolecall provider type -> gen_ai.system value of the semantic conventions.
_GEN_AI_SYSTEM = {
    "openai": "openai",
    "openai-compatible": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "local": "rolecall.local",
}


def telemetry_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Tracing is on when the standard OTEL_* variables ask for it."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "")
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or (exporter and exporter != "none")
    )


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class TelemetrySink:
    """An event sink that turns each finished task into a span tree."""

    def __init__(
        self, provider_types: Mapping[str, str], *, tracer_provider: Any | None = None
    ) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingExtra("otel", "opentelemetry-api", "OpenTelemetry tracing") from exc
        self._trace = trace
        self._tracer = trace.get_tracer("rolecall", tracer_provider=tracer_provider)
        self._systems = {pid: _GEN_AI_SYSTEM.get(t, t) for pid, t in provider_types.items()}
        self._pending: dict[tuple[str, str], list[AttemptEvent]] = {}

    def emit(self, event: Event) -> None:
        key = (event.run_id, event.task_id)
        if isinstance(event, AttemptEvent):
            self._pending.setdefault(key, []).append(event)
            return
        self._task_span(event, self._pending.pop(key, []))

    def _task_span(self, task: TaskEvent, attempts: list[AttemptEvent]) -> None:
        trace = self._trace
        task_start = task.ts - task.latency_ms / 1000
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "rolecall.role": task.role,
            "rolecall.run_id": task.run_id,
            "rolecall.task_id": task.task_id,
            "rolecall.attempts": task.attempts,
            "rolecall.handovers": task.handovers,
            "gen_ai.usage.input_tokens": task.input_tokens,
            "gen_ai.usage.output_tokens": task.output_tokens,
        }
        if task.provider:
            attributes["rolecall.provider"] = task.provider
            attributes["gen_ai.system"] = self._systems.get(task.provider, "unknown")
        if task.model:
            attributes["gen_ai.response.model"] = task.model
        if task.stage:
            attributes["rolecall.stage"] = task.stage
        span = self._tracer.start_span(
            f"rolecall.task {task.role}", start_time=_ns(task_start), attributes=attributes
        )
        if task.status != "ok":
            span.set_attribute("error.type", "all_providers_failed")
            span.set_status(trace.Status(trace.StatusCode.ERROR, task.error or ""))
        context = trace.set_span_in_context(span)
        for attempt in attempts:
            self._attempt_span(attempt, context)
        span.end(end_time=_ns(task.ts))

    def _attempt_span(self, attempt: AttemptEvent, context: Any) -> None:
        trace = self._trace
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": self._systems.get(attempt.provider, "unknown"),
            "gen_ai.request.model": attempt.model,
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
            f"chat {attempt.model}",
            context=context,
            kind=trace.SpanKind.CLIENT,
            start_time=_ns(attempt.ts - attempt.latency_ms / 1000),
            attributes=attributes,
        )
        if attempt.error_kind is not None:
            span.set_attribute("error.type", attempt.error_kind.value)
            span.set_status(trace.Status(trace.StatusCode.ERROR, attempt.error or ""))
        span.end(end_time=_ns(attempt.ts))
