"""Trends over hour and day buckets; advice on a seeded history."""

from __future__ import annotations

import random

from factories import attempt_event
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent
from rolecall.recording.store import MetricsStore
from rolecall.recording.store.advise import advise
from rolecall.recording.store.rows import MetricsRow

DAY0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _calls(
    provider: str,
    role: str,
    count: int,
    success: float,
    latency: float,
    cost: float | None,
    start: float,
    seed: int,
    spacing: float = 60.0,
) -> list[AttemptEvent]:
    rng = random.Random(seed)
    out = []
    for index in range(count):
        ok = rng.random() < success
        out.append(
            attempt_event(
                run_id=f"run-{provider}-{role}",
                task_id=f"t{index}",
                role=role,
                provider=provider,
                model=f"{provider}-m",
                outcome="ok" if ok else "retry",
                error_kind=None if ok else ErrorKind.SERVER,
                latency_ms=latency * rng.uniform(0.9, 1.1),
                input_tokens=100,
                output_tokens=50,
                cost_usd=cost,
                ts=start + index * spacing,
            )
        )
    return out


def test_trend_has_a_bucket_per_hour_and_day(store: MetricsStore) -> None:
    # Two days, a few hours each.
    events = _calls("gpt", "coder", 30, 1.0, 200, None, DAY0 + 3600, seed=1, spacing=300)
    events += _calls("gpt", "coder", 10, 0.0, 900, None, DAY0 + 86400 + 7200, seed=2)
    store.record(events)
    days = store.trend("day")
    assert [row.to_dict()["bucket"] for row in days] == [
        "2026-01-01T00:00:00.000+00:00",
        "2026-01-02T00:00:00.000+00:00",
    ]
    assert [(r.metrics.requests, r.metrics.successes) for r in days] == [(30, 30), (10, 0)]
    hours = store.trend("hour")
    assert len(hours) >= 3
    assert sum(r.metrics.requests for r in hours) == 40
    assert hours[0].bucket_start == DAY0 + 3600
    # Hour-bucket ranges and day-bucket ranges agree with the overall metrics.
    assert store.trend("day", since=DAY0 + 86400)[0].metrics.requests == 10
    assert sum(r.metrics.requests for r in store.trend("hour", until=DAY0 + 86400)) == 30
    data = days[0].to_dict()
    assert data["provider"] == "gpt" and data["latency_ms"]["p95"] is not None


def test_trend_groups_by_provider(store: MetricsStore) -> None:
    store.record(
        _calls("gpt", "coder", 5, 1.0, 100, None, DAY0, seed=3)
        + _calls("claude", "reviewer", 5, 1.0, 100, None, DAY0, seed=4)
    )
    rows = store.trend("day", group_by=("provider",))
    assert [(r.metrics.provider, r.metrics.role) for r in rows] == [("claude", None), ("gpt", None)]


def _seeded(store: MetricsStore) -> None:
    events = []
    # coder: gpt fails often, claude rarely.
    events += _calls("gpt", "coder", 388, 0.71, 900, 0.001, DAY0, seed=10)
    events += _calls("claude", "coder", 412, 0.99, 1000, 0.003, DAY0, seed=11)
    # reviewer: gemini is 3x slower than claude, equally reliable.
    events += _calls("claude", "reviewer", 100, 1.0, 800, 0.002, DAY0, seed=12)
    events += _calls("gemini", "reviewer", 120, 1.0, 2400, 0.002, DAY0, seed=13)
    # planner: too little data.
    events += _calls("gpt", "planner", 5, 1.0, 500, 0.001, DAY0, seed=14)
    events += _calls("claude", "planner", 3, 1.0, 500, 0.001, DAY0, seed=15)
    store.record(events)


def test_advise_names_the_weak_pair_and_the_better_provider(store: MetricsStore) -> None:
    _seeded(store)
    findings = store.advise(min_requests=20)
    by_metric = {(f.role, f.provider, f.metric): f for f in findings if f.kind == "reassign"}
    success = by_metric[("coder", "gpt", "success_rate")]
    assert success.better == "claude"
    assert success.requests == 388 and success.better_requests == 412
    assert success.suggestion is not None
    assert success.suggestion.startswith("roles.coder.provider: claude (success 9")
    assert "over 412 vs 388 calls" in success.suggestion
    slow = by_metric[("reviewer", "gemini", "p95_latency")]
    assert slow.better == "claude" and slow.value is not None and slow.better_value is not None
    assert slow.value > 2 * slow.better_value
    # claude is dearer per answer in coder but gpt fails far more: no cost advice against it.
    assert ("coder", "claude", "cost_per_success") not in by_metric
    assert not any(f.provider == "claude" for f in findings if f.kind == "reassign")
    thin = [f for f in findings if f.kind == "insufficient_data"]
    assert [f.role for f in thin] == ["planner"]
    assert "too little data" in thin[0].message and "gpt 5" in thin[0].message


def test_advise_with_too_little_data_says_so(store: MetricsStore) -> None:
    store.record(
        _calls("gpt", "coder", 12, 0.5, 900, None, DAY0, seed=1)
        + _calls("claude", "coder", 12, 1.0, 100, None, DAY0, seed=2)
    )
    findings = store.advise(min_requests=20)
    assert [f.kind for f in findings] == ["insufficient_data"]
    assert "need at least 20 calls" in findings[0].message
    # With a lower bar the same data is judged.
    assert any(f.kind == "reassign" for f in store.advise(min_requests=10))


def _row(
    provider: str, requests: int, successes: int, p95: float, cost: float | None
) -> MetricsRow:
    return MetricsRow(
        provider,
        "coder",
        None,
        requests,
        successes,
        requests - successes,
        {},
        0,
        0,
        cost,
        p95,
        p95,
        p95,
        p95,
    )


def test_advise_ignores_small_differences() -> None:
    rows = [_row("a", 500, 480, 1000, 1.0), _row("b", 500, 490, 1200, 1.2)]
    assert advise(rows) == []


def test_advise_flags_cost_between_equally_reliable_providers() -> None:
    rows = [_row("a", 500, 495, 1000, 5.0), _row("b", 500, 496, 1000, 1.0)]
    [finding] = advise(rows)
    assert (finding.provider, finding.better, finding.metric) == ("a", "b", "cost_per_success")
    assert "cost per answer $0.0020 vs $0.0101" in (finding.suggestion or "")


def test_single_provider_role_is_not_judged() -> None:
    [finding] = advise([_row("a", 500, 100, 9000, 9.0)])
    assert finding.kind == "insufficient_data" and "calls: a 500" in finding.message
