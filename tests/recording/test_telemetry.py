"""OpenTelemetry spans: one task span, a child span per attempt, under the caller's span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rolecall.config.schema import RolecallConfig
from rolecall.recording.telemetry import TelemetrySink, telemetry_enabled
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer


@pytest.fixture
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    with (
        SimServer("openai", models=("gpt-sim",)) as gpt,
        SimServer("anthropic", models=("claude-sim",)) as claude,
    ):
        yield gpt, claude


def _config(gpt: SimServer, claude: SimServer) -> RolecallConfig:
    return RolecallConfig.model_validate(
        {
            "providers": {
                "gpt": {
                    "type": "openai",
                    "model": "gpt-sim",
                    "api_key": "test-key",
                    "base_url": gpt.base_url,
                },
                "claude": {
                    "type": "anthropic",
                    "model": "claude-sim",
                    "api_key": "test-key",
                    "base_url": claude.base_url,
                },
            },
            "roles": {"coder": {"provider": "gpt", "fallback": ["claude"]}},
        }
    )


async def test_handover_is_a_task_span_with_two_attempt_children(
    sims: tuple[SimServer, SimServer],
) -> None:
    gpt, claude = sims
    gpt.script(Fault("auth"))
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = _config(gpt, claude)
    sink = TelemetrySink(
        {pid: p.type for pid, p in config.providers.items()}, tracer_provider=tracer_provider
    )
    caller = tracer_provider.get_tracer("caller")
    async with Router(config, sinks=[sink]) as router:
        with caller.start_as_current_span("user-request") as parent:
            reply = await router.complete("coder", "write hello world")
    assert reply.provider == "claude"

    spans = {span.name: span for span in exporter.get_finished_spans()}
    task = spans["rolecall.task coder"]
    failed = spans["chat gpt-sim"]
    answered = spans["chat claude-sim"]
    assert task.parent is not None and task.parent.span_id == parent.get_span_context().span_id
    assert failed.parent is not None and failed.parent.span_id == task.context.span_id
    assert answered.parent is not None and answered.parent.span_id == task.context.span_id
    assert failed.attributes["error.type"] == "auth"
    assert failed.attributes["gen_ai.system"] == "openai"
    assert failed.attributes["rolecall.outcome"] == "handover"
    assert answered.attributes["gen_ai.system"] == "anthropic"
    assert answered.attributes["gen_ai.request.model"] == "claude-sim"
    assert answered.attributes["gen_ai.response.model"] == "claude-sim"
    assert answered.attributes["gen_ai.usage.output_tokens"] == reply.usage.output_tokens
    assert task.attributes["rolecall.provider"] == "claude"
    assert task.attributes["rolecall.handovers"] == 1
    assert failed.start_time <= failed.end_time <= answered.start_time
    # No prompt or completion text on any span.
    for span in spans.values():
        assert "write hello world" not in str(dict(span.attributes or {}))


def test_enabled_only_by_standard_variables() -> None:
    assert not telemetry_enabled({})
    assert telemetry_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not telemetry_enabled({"OTEL_TRACES_EXPORTER": "none"})
    assert not telemetry_enabled(
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    )
