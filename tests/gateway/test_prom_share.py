"""/metrics summed over the workers of one serve: two workers' metrics in one directory."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from test_prom import assert_valid_exposition

from factories import attempt_event
from rolecall.gateway.prom import GatewayMetrics
from rolecall.gateway.prom_share import SharedMetrics

STATES = ("ok", "open")


def _attempt(metrics: GatewayMetrics, ms: float, tokens: int) -> None:
    metrics.emit(attempt_event(latency_ms=ms, output_tokens=tokens))


def test_a_scrape_sums_every_worker_and_keeps_a_stopped_workers_counts(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str]:
        one, two = GatewayMetrics(), GatewayMetrics()
        first, second = SharedMetrics(tmp_path, one), SharedMetrics(tmp_path, two)
        first.start()
        second.start()
        _attempt(one, 20, 5)
        _attempt(two, 300, 7)
        _attempt(two, 40, 1)
        one.request_started()
        one.request_finished("coder", 200, 0.02)
        two.request_started()  # still in flight when the second worker stops
        one.set_health({"gpt": "ok"}, STATES)
        two.set_health({"gpt": "ok"}, STATES)
        second.render()  # a scrape the second worker answers publishes its values
        both = first.render()
        await second.stop()
        after = first.render()
        await first.stop()
        return both, after

    both, after = asyncio.run(scenario())
    assert_valid_exposition(both)
    for text in (both, after):
        assert 'rolecall_provider_calls_total{provider="gpt",role="coder",outcome="ok"} 3' in text
        assert 'rolecall_tokens_total{provider="gpt",role="coder",direction="output"} 13' in text
        assert 'rolecall_gateway_requests_total{model="coder",status="200"} 1' in text
        count = 'rolecall_provider_call_duration_seconds_count{provider="gpt",role="coder"} 3'
        assert count in text
        bucket = 'rolecall_provider_call_duration_seconds_bucket{provider="gpt",role="coder",'
        assert bucket + 'le="0.025"} 1' in text
        assert bucket + 'le="0.05"} 2' in text
        assert bucket + 'le="0.5"} 3' in text
        total = 'rolecall_provider_call_duration_seconds_sum{provider="gpt",role="coder"} 0.36'
        assert total in text
        # Health is each worker's view of the host's shared table: never summed.
        assert 'rolecall_provider_health{provider="gpt",state="ok"} 1' in text
    assert "rolecall_gateway_in_flight 1" in both  # the second worker's request
    assert "rolecall_gateway_in_flight 0" in after  # the stopped worker's gauge is gone


def test_a_worker_publishes_on_its_timer_without_being_scraped(tmp_path: Path) -> None:
    async def scenario() -> str:
        one, two = GatewayMetrics(), GatewayMetrics()
        first = SharedMetrics(tmp_path, one)
        second = SharedMetrics(tmp_path, two, interval=0.01)
        first.start()
        second.start()
        two.request_started()
        two.request_finished("coder", 200, 0.5)
        for _ in range(200):
            await asyncio.sleep(0.01)
            text = first.render()
            if 'rolecall_gateway_requests_total{model="coder",status="200"} 1' in text:
                break
        await second.stop()
        await first.stop()
        return text

    text = asyncio.run(scenario())
    assert 'rolecall_gateway_requests_total{model="coder",status="200"} 1' in text


def test_a_worker_file_of_another_shape_is_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = GatewayMetrics(), GatewayMetrics()
    _attempt(one, 20, 5)
    _attempt(two, 40, 1)
    SharedMetrics(tmp_path, two).publish()  # a worker that finished: its file stays
    odd = {
        "a-list": [],
        "text-for-values": {"rolecall_provider_calls_total": "x"},
        "text-for-a-number": {"rolecall_provider_calls_total": [[["gpt", "coder", "ok"], "1"]]},
        "numbers-for-labels": {"rolecall_provider_calls_total": [[[1, 2, 3], 1]]},
        "too-many-buckets": {
            "rolecall_provider_call_duration_seconds": [[["gpt", "coder"], [1] * 99, 0.1, 1]]
        },
    }
    for name, values in odd.items():
        (tmp_path / f"worker-{name}.json").write_text(json.dumps(values))
    scraper = SharedMetrics(tmp_path, one)

    with caplog.at_level(logging.WARNING, logger="rolecall.gateway"):
        scrapes = [scraper.render() for _ in range(3)]

    for text in scrapes:
        assert_valid_exposition(text)
        assert 'rolecall_provider_calls_total{provider="gpt",role="coder",outcome="ok"} 2' in text
    warned = [r.getMessage() for r in caplog.records if "skipping the metrics" in r.getMessage()]
    assert sorted(name for name in odd if any(f"worker-{name}" in w for w in warned)) == sorted(odd)
    assert len(warned) == len(odd)


def test_a_sum_is_the_same_whichever_worker_answers_the_scrape(tmp_path: Path) -> None:
    # Float addition depends on its order: summed with its own values first, these three
    # latencies made 3.477 on one worker and 3.4769999999999994 on another, and a total one
    # bit lower on the next scrape reads as a counter reset (rate() jumps by the whole sum).
    workers = [GatewayMetrics() for _ in range(3)]
    shared = [SharedMetrics(tmp_path, metrics) for metrics in workers]
    for metrics, seconds in zip(workers, (0.51, 0.732, 2.235), strict=True):
        metrics.request_started()
        metrics.request_finished("coder", 200, seconds)
        metrics.emit(attempt_event(latency_ms=seconds * 1000))
    for worker in shared:
        worker.publish()

    scrapes = [worker.render() for worker in shared for _ in range(2)]

    sums = [
        line
        for text in scrapes
        for line in text.splitlines()
        if line.startswith("rolecall_") and "_sum{" in line
    ]
    assert len(sums) == 2 * len(scrapes)
    assert len(set(sums)) == 2, sums
