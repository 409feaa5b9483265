"""Telemetry names the model asked for as ``gen_ai.request.model`` and the one that
answered as ``gen_ai.response.model`` (GenAI semantic conventions); a name a provider
answers with adds no metric series."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from factories import T0, attempt_event, task_event
from rolecall.recording.telemetry import TelemetrySink


def test_an_answer_from_a_dated_snapshot_is_the_response_model_only() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    sink = TelemetrySink(
        {"gpt": "openai"},
        provider_models={"gpt": "gpt-4o"},
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    # The first call fails (its event names the configured model); the retry is answered
    # by the snapshot the vendor picked, then another call by a second one.
    sink.emit(
        attempt_event(task_id="t0", model="gpt-4o", outcome="retry", error_kind="server", ts=T0)
    )
    for n, snapshot in enumerate(("gpt-4o-2024-08-06", "gpt-4o-2024-11-20")):
        task_id = f"t{n}"
        sink.emit(attempt_event(task_id=task_id, model=snapshot, attempt=2, ts=T0 + 1))
        sink.emit(task_event(task_id=task_id, model=snapshot, attempts=2, ts=T0 + 1))

    answered = [s for s in spans.get_finished_spans() if s.attributes.get("rolecall.outcome")]
    assert {s.name for s in answered} == {"chat gpt-4o"}
    assert {s.attributes["gen_ai.request.model"] for s in answered} == {"gpt-4o"}
    assert {s.attributes.get("gen_ai.response.model") for s in answered} == {
        None,  # the failed call: no answer, no response model
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
    }
    data = reader.get_metrics_data()
    assert data is not None
    series = {
        metric.name: [dict(point.attributes or {}) for point in metric.data.data_points]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    # One series per outcome for the durations, one per token type: no snapshot in any.
    assert len(series["gen_ai.client.operation.duration"]) == 2
    assert len(series["gen_ai.client.token.usage"]) == 2
    for points in series.values():
        assert all(point["gen_ai.request.model"] == "gpt-4o" for point in points)
        assert all("gen_ai.response.model" not in point for point in points)
