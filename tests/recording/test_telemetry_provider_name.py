"""Telemetry names each provider's vendor as ``gen_ai.provider.name``, the attribute of the
current GenAI semantic conventions, with their values; ``gen_ai.system``, the name it
replaced, carries the same value for the tools that still read it."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from factories import attempt_event, task_event
from rolecall.recording.telemetry import TelemetrySink

# The provider names of the GenAI semantic conventions' registry; an OpenAI-compatible
# server is `openai`, as the conventions ask when the OpenAI API is how it is reached.
EXPECTED = {
    "openai": "openai",
    "openai-compatible": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure-openai": "azure.ai.openai",
}


@pytest.mark.parametrize(("provider_type", "name"), sorted(EXPECTED.items()))
def test_spans_and_metrics_name_the_provider(provider_type: str, name: str) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    sink = TelemetrySink(
        {"p": provider_type},
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    sink.emit(attempt_event(provider="p", input_tokens=3, output_tokens=5))
    sink.emit(task_event(provider="p"))

    finished = spans.get_finished_spans()
    assert len(finished) == 2  # the task and its attempt
    for span in finished:
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.provider.name"] == name
        assert attributes["gen_ai.system"] == name
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        dict(point.attributes or {})
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]
    assert len(points) == 3  # the duration, and the input and output tokens
    assert all(point["gen_ai.provider.name"] == name for point in points)
    assert all(point["gen_ai.system"] == name for point in points)
