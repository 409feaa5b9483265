"""The Prometheus text the gateway serves."""

from __future__ import annotations

import re

from factories import attempt_event, task_event
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent
from rolecall.gateway.prom import Counter, GatewayMetrics, Histogram, Registry

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="([^"\\]|\\.)*",?)*\})? \S+$')


def assert_valid_exposition(text: str) -> None:
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) \w+ .+$", line), line
        else:
            assert SAMPLE.match(line), line


def attempt(provider: str, outcome: str, kind: ErrorKind | None, ms: float) -> AttemptEvent:
    return attempt_event(
        run_id="r",
        task_id="t",
        role="coder",
        provider=provider,
        model="m",
        outcome=outcome,
        error_kind=kind,
        latency_ms=ms,
        input_tokens=3 if kind is None else 0,
        output_tokens=5 if kind is None else 0,
    )


def test_events_become_series() -> None:
    metrics = GatewayMetrics()
    metrics.emit(attempt("gpt", "handover", ErrorKind.SERVER, 30))
    metrics.emit(attempt("claude", "ok", None, 120))
    metrics.emit(
        task_event(
            run_id="r",
            task_id="t",
            role="coder",
            provider="claude",
            model="m",
            attempts=2,
            handovers=1,
            latency_ms=150,
        )
    )
    metrics.request_started()
    metrics.request_finished("coder", 200, 0.2)
    metrics.set_health({"gpt": "open", "claude": "ok"}, ("ok", "open"))
    text = metrics.render()
    assert_valid_exposition(text)
    assert 'rolecall_provider_failures_total{provider="gpt",role="coder",kind="server"} 1' in text
    assert 'rolecall_handovers_total{provider="gpt",role="coder"} 1' in text
    assert 'rolecall_provider_calls_total{provider="claude",role="coder",outcome="ok"} 1' in text
    assert 'rolecall_tokens_total{provider="claude",role="coder",direction="output"} 5' in text
    assert 'rolecall_gateway_requests_total{model="coder",status="200"} 1' in text
    assert 'rolecall_tasks_total{role="coder",status="ok"} 1' in text
    assert 'rolecall_provider_health{provider="gpt",state="open"} 1' in text
    assert 'rolecall_provider_health{provider="gpt",state="ok"} 0' in text
    assert "rolecall_gateway_in_flight 0" in text
    # 0.12 s lands in the 0.25 bucket and every bucket above it, not in 0.1
    assert (
        'rolecall_provider_call_duration_seconds_bucket{provider="claude",role="coder",le="0.1"} 0'
        in text
    )
    assert (
        'rolecall_provider_call_duration_seconds_bucket{provider="claude",role="coder",le="0.25"} 1'
        in text
    )


def test_histogram_is_cumulative_with_sum_and_count() -> None:
    registry = Registry()
    hist = registry.add(Histogram("h", "help", ("a",), buckets=(1, 2)))
    for value in (0.5, 1.5, 1.7, 9):
        hist.observe(("x",), value)
    text = registry.render()
    assert 'h_bucket{a="x",le="1"} 1\n' in text
    assert 'h_bucket{a="x",le="2"} 3\n' in text
    assert 'h_bucket{a="x",le="+Inf"} 4\n' in text
    assert 'h_sum{a="x"} 12.7\n' in text
    assert 'h_count{a="x"} 4\n' in text


def test_label_values_are_escaped() -> None:
    registry = Registry()
    registry.add(Counter("c", "help", ("m",))).inc(('a"b\\c\nd',))
    text = registry.render()
    assert 'c{m="a\\"b\\\\c\\nd"} 1' in text
    assert_valid_exposition(text)


def test_a_provider_skipped_before_any_call_is_a_handover_and_no_call() -> None:
    # Attempt 0: skipped without a call (all its slots taken, or the request unsupported),
    # as the metrics store counts it: no request, no failure, no latency; a hand-over.
    metrics = GatewayMetrics()
    for kind in (ErrorKind.OVERLOADED, ErrorKind.UNSUPPORTED):
        metrics.emit(attempt_event(provider="busy", attempt=0, outcome="handover", error_kind=kind))
    text = metrics.render()
    assert_valid_exposition(text)
    assert 'rolecall_handovers_total{provider="busy",role="coder"} 2' in text
    assert 'rolecall_provider_calls_total{provider="busy"' not in text
    assert 'rolecall_provider_failures_total{provider="busy"' not in text
    assert 'rolecall_provider_call_duration_seconds_count{provider="busy"' not in text
