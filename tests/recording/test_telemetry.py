"""OpenTelemetry spans: one task span, a child span per attempt, under the caller's span."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

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


async def test_a_cancelled_task_is_a_span_and_leaves_nothing_pending(
    sims: tuple[SimServer, SimServer],
) -> None:
    # A call its caller cancelled left its attempt in the sink for good, waiting for a
    # task end that never came: memory that grew with every such call, and no span.
    gpt, claude = sims
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = _config(gpt, claude)
    sink = TelemetrySink(
        {pid: p.type for pid, p in config.providers.items()}, tracer_provider=tracer_provider
    )
    async with Router(config, sinks=[sink]) as router:
        gpt.script(Fault("timeout", delay=30), Fault("stall", after_chunks=1, delay=30))
        call = asyncio.ensure_future(router.complete("coder", "hi", provider="gpt"))
        while gpt.calls < 1:  # noqa: ASYNC110 - the sim counts in its own thread
            await asyncio.sleep(0.01)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        async with router.stream("coder", "hi", provider="gpt") as stream:
            async for _ in stream:
                break  # the reader leaves after the first text
    assert not sink._pending
    spans = exporter.get_finished_spans()
    tasks = [span for span in spans if span.name == "rolecall.task coder"]
    assert len(tasks) == 2
    for task in tasks:
        assert task.attributes is not None
        assert task.attributes["rolecall.status"] == "cancelled"
        assert "error.type" not in task.attributes  # ended by its caller, not a failure
        assert task.status.status_code == StatusCode.UNSET
        [attempt] = [s for s in spans if s.parent and s.parent.span_id == task.context.span_id]
        assert attempt.attributes is not None
        assert attempt.attributes["rolecall.outcome"] == "cancelled"


def test_enabled_only_by_standard_variables() -> None:
    assert not telemetry_enabled({})
    assert telemetry_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not telemetry_enabled({"OTEL_TRACES_EXPORTER": "none"})
    assert not telemetry_enabled(
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    )
