"""Attempt spans and the client metrics carry ``server.address`` and ``server.port`` (the
GenAI conventions recommend them), from the address each provider is reached at: the port
its scheme implies when the URL names none, and never the URL's user or password."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from factories import attempt_event, task_event
from rolecall.recording.telemetry import TelemetrySink


def _record(url: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The attempt span's attributes and the metric points' of one call to provider ``p``."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    sink = TelemetrySink(
        {"p": "openai"},
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        provider_urls={} if url is None else {"p": url},
    )
    sink.emit(attempt_event(provider="p", input_tokens=3, output_tokens=5))
    sink.emit(task_event(provider="p"))
    attempt = next(s for s in spans.get_finished_spans() if s.name.startswith("chat"))
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        dict(point.attributes or {})
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]
    return dict(attempt.attributes or {}), points


@pytest.mark.parametrize(
    ("url", "address", "port"),
    [
        ("https://api.openai.com/v1", "api.openai.com", 443),
        ("http://127.0.0.1:11434/v1", "127.0.0.1", 11434),
        ("http://user:s3cret-pass@proxy.internal/v1", "proxy.internal", 80),
        ("https://[::1]:8443/v1", "::1", 8443),
    ],
)
def test_the_server_is_named_on_spans_and_metrics(url: str, address: str, port: int) -> None:
    span, points = _record(url)
    assert (span["server.address"], span["server.port"]) == (address, port)
    assert all((p["server.address"], p["server.port"]) == (address, port) for p in points)
    assert "s3cret" not in repr(span) + repr(points)


def test_a_provider_at_no_known_address_names_no_server() -> None:
    span, points = _record(None)
    assert "server.address" not in span
    assert all("server.address" not in p for p in points)
