"""``metrics`` answers from rollups must agree with the raw events: exactly on counts,
tokens and cost, within 2% on latency percentiles."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from factories import attempt_event, task_event
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent, Event
from rolecall.recording.store import MetricsStore

DAY0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PRICES = {"gpt": (2.0, 8.0), "claude": (3.0, 15.0)}  # gemini has no pricing: cost unknown
FAULTS = [
    ErrorKind.RATE_LIMIT,
    ErrorKind.SERVER,
    ErrorKind.TIMEOUT,
    ErrorKind.AUTH,
    ErrorKind.CONTEXT_LENGTH,
]


@dataclass
class History:
    events: list[Event]

    @property
    def attempts(self) -> list[AttemptEvent]:
        return [e for e in self.events if isinstance(e, AttemptEvent)]


def make_history(tasks: int = 400, seed: int = 7, days: float = 3.0) -> History:
    """Tasks on chains of providers, with retries, hand-overs and failures."""
    rng = random.Random(seed)
    chains = {
        "coder": ["gpt", "claude", "gemini"],
        "reviewer": ["claude", "gemini"],
        "planner": ["gemini", "gpt"],
    }
    fail_rate = {"gpt": 0.3, "claude": 0.1, "gemini": 0.45}
    events: list[Event] = []
    for index in range(tasks):
        role = rng.choice(list(chains))
        ts = DAY0 + rng.random() * days * 86400
        attempts = handovers = 0
        answered = None
        total_latency = 0.0
        for provider in chains[role]:
            for number in (1, 2):
                attempts += 1
                ts += 0.5
                # Mix sub-millisecond, typical and very slow calls.
                latency = (
                    rng.choice([0.4, 3.0]) if rng.random() < 0.05 else rng.lognormvariate(6.5, 0.8)
                )
                total_latency += latency
                if rng.random() >= fail_rate[provider]:
                    tokens_in, tokens_out = rng.randrange(10, 3000), rng.randrange(1, 900)
                    price = PRICES.get(provider)
                    cost = (tokens_in * price[0] + tokens_out * price[1]) / 1e6 if price else None
                    events.append(
                        attempt_event(
                            run_id=f"run-{index // 10}",
                            task_id=f"task-{index}",
                            role=role,
                            provider=provider,
                            model=f"{provider}-model",
                            attempt=number,
                            latency_ms=latency,
                            input_tokens=tokens_in,
                            output_tokens=tokens_out,
                            cost_usd=cost,
                            ts=ts,
                        )
                    )
                    answered = provider
                    break
                kind = rng.choice(FAULTS)
                outcome = "retry" if kind.retryable and number == 1 else "handover"
                handovers += outcome == "handover"
                events.append(
                    attempt_event(
                        run_id=f"run-{index // 10}",
                        task_id=f"task-{index}",
                        role=role,
                        provider=provider,
                        model=f"{provider}-model",
                        attempt=number,
                        outcome=outcome,
                        error_kind=kind,
                        latency_ms=latency,
                        error=f"{kind.value} from {provider}",
                        ts=ts,
                    )
                )
                if outcome == "handover":
                    break
            if answered:
                break
        events.append(
            task_event(
                run_id=f"run-{index // 10}",
                task_id=f"task-{index}",
                role=role,
                status="ok" if answered else "failed",
                provider=answered,
                model=None,
                attempts=attempts,
                handovers=handovers,
                latency_ms=total_latency,
                stage="generate",
                ts=ts + 0.1,
            )
        )
    return History(events)


def record_in_batches(store: MetricsStore, events: Sequence[Event], seed: int = 1) -> None:
    rng = random.Random(seed)
    pos = 0
    while pos < len(events):
        size = rng.randrange(1, 200)
        store.record(events[pos : pos + size])
        pos += size


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def expected_rows(attempts: Sequence[AttemptEvent], keys: Sequence[str]) -> dict[tuple, dict]:
    groups: dict[tuple, list[AttemptEvent]] = {}
    for event in attempts:
        groups.setdefault(tuple(getattr(event, k) for k in keys), []).append(event)
    out = {}
    for key, group in groups.items():
        costs = [e.cost_usd for e in group if e.cost_usd is not None]
        latencies = [e.latency_ms for e in group]
        out[key] = {
            "requests": len(group),
            "successes": sum(e.outcome == "ok" for e in group),
            "failures": sum(e.outcome != "ok" for e in group),
            "errors": dict(Counter(str(e.error_kind) for e in group if e.outcome != "ok")),
            "input": sum(e.input_tokens for e in group),
            "output": sum(e.output_tokens for e in group),
            "cost": sum(costs) if costs else None,
            "avg": sum(latencies) / len(latencies),
            "p50": exact_percentile(latencies, 0.50),
            "p95": exact_percentile(latencies, 0.95),
            "p99": exact_percentile(latencies, 0.99),
        }
    return out


def assert_matches(store_rows: list, expected: dict[tuple, dict], keys: Sequence[str]) -> None:
    got = {tuple(getattr(row, k) for k in keys): row for row in store_rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        data = row.to_dict()
        assert row.requests == want["requests"], key
        assert row.successes == want["successes"], key
        assert row.failures == want["failures"], key
        assert row.errors == want["errors"], key
        assert data["tokens"] == {
            "input": want["input"],
            "output": want["output"],
            "cached_input": 0,
        }, key
        if want["cost"] is None:
            assert data["cost_usd"] is None, key
        else:
            assert data["cost_usd"] == pytest.approx(want["cost"], rel=1e-9), key
        assert data["success_rate"] == round(want["successes"] / want["requests"], 4)
        assert row.latency_avg_ms == pytest.approx(want["avg"], rel=1e-9), key
        for q in ("p50", "p95", "p99"):
            got_q = data["latency_ms"][q]
            assert abs(got_q - want[q]) <= 0.02 * want[q], (key, q, got_q, want[q])


def test_metrics_agree_with_raw_events(store: MetricsStore) -> None:
    history = make_history()
    record_in_batches(store, history.events)
    rows = store.metrics()
    assert_matches(
        rows, expected_rows(history.attempts, ("provider", "role")), ("provider", "role")
    )
    assert {(r.provider, r.role) for r in rows} >= {("gpt", "coder"), ("gemini", "planner")}
    # Retries and hand-overs count as requests: more attempts than tasks.
    assert sum(r.requests for r in rows) == len(history.attempts) > 400


@pytest.mark.parametrize(
    "keys", [("provider",), ("role",), ("model",), ("provider", "role", "model"), ()]
)
def test_every_grouping_agrees_with_raw_events(store: MetricsStore, keys: tuple[str, ...]) -> None:
    history = make_history(tasks=150, seed=3)
    record_in_batches(store, history.events)
    rows = store.metrics(group_by=keys)
    # An ungrouped query is one row with provider/role/model all None.
    expected = expected_rows(history.attempts, keys)
    if not keys:
        rows_keys: tuple[str, ...] = ()
        assert len(rows) == 1 and rows[0].provider is None and rows[0].role is None
    else:
        rows_keys = keys
    assert_matches(rows, expected, rows_keys)
    if "model" in keys:
        assert "model" in rows[0].to_dict()
    else:
        assert "model" not in rows[0].to_dict()


def test_filters_agree_with_raw_events(store: MetricsStore) -> None:
    history = make_history(tasks=200, seed=5)
    record_in_batches(store, history.events)
    only_gpt = [e for e in history.attempts if e.provider == "gpt"]
    assert_matches(
        store.metrics(provider="gpt"),
        expected_rows(only_gpt, ("provider", "role")),
        ("provider", "role"),
    )
    coder_claude = [e for e in only_gpt if e.role == "coder"]
    assert_matches(
        store.metrics(provider="gpt", role="coder"),
        expected_rows(coder_claude, ("provider", "role")),
        ("provider", "role"),
    )
    assert store.metrics(provider="nobody") == []


@pytest.mark.parametrize(
    ("since_h", "until_h"),
    [
        (5.3, 61.7),  # partial first day, whole middle day, partial last day
        (None, 30.2),  # open start
        (26.9, None),  # open end
        (49.1, 50.8),  # within one day
        (24.0, 48.0),  # exactly one day
    ],
)
def test_time_ranges_count_whole_hours(
    store: MetricsStore, since_h: float | None, until_h: float | None
) -> None:
    history = make_history(tasks=300, seed=11)
    record_in_batches(store, history.events)
    since = None if since_h is None else DAY0 + since_h * 3600
    until = None if until_h is None else DAY0 + until_h * 3600
    lo = -math.inf if since is None else math.floor(since / 3600) * 3600
    hi = math.inf if until is None else math.ceil(until / 3600) * 3600
    inside = [e for e in history.attempts if lo <= e.ts < hi]
    assert 0 < len(inside) < len(history.attempts)
    rows = store.metrics(since=since, until=until)
    assert_matches(rows, expected_rows(inside, ("provider", "role")), ("provider", "role"))


def test_metrics_json_shape(store: MetricsStore) -> None:
    record_in_batches(store, make_history(tasks=30).events)
    data = store.metrics()[0].to_dict()
    assert set(data) == {
        "provider",
        "role",
        "requests",
        "successes",
        "failures",
        "success_rate",
        "latency_ms",
        "tokens",
        "cost_usd",
        "priced_requests",
        "errors",
    }
    assert isinstance(data["priced_requests"], int)
    assert set(data["latency_ms"]) == {"avg", "p50", "p95", "p99"}
    assert set(data["tokens"]) == {"input", "output", "cached_input"}
    assert all(kind in {k.value for k in ErrorKind} for kind in data["errors"])


def test_a_call_its_client_cancelled_is_counted_as_cancelled(store: MetricsStore) -> None:
    # Ctrl-C during `ask`, or a gateway client gone: the attempt has no error kind.
    store.record(
        [
            attempt_event(task_id="t1", provider="gpt", outcome="cancelled", error_kind=None),
            attempt_event(task_id="t2", provider="gpt", outcome="ok"),
        ]
    )
    [row] = store.metrics()
    data = row.to_dict()
    assert (data["requests"], data["successes"], data["failures"]) == (2, 1, 1)
    assert data["errors"] == {"cancelled": 1}


def test_empty_store_has_no_rows(store: MetricsStore) -> None:
    assert store.metrics() == []
    assert store.trend("day") == []
    assert store.runs() == []
    assert store.run("nope") is None


def test_bad_group_is_rejected(store: MetricsStore) -> None:
    with pytest.raises(ValueError, match="cannot group by"):
        store.metrics(group_by=("tenant",))


def test_one_batch_going_back_and_forth_across_hours_counts_each_call_in_its_hour(
    store: MetricsStore,
) -> None:
    # Calls finishing out of time order inside one batch, one exactly on an hour's start.
    offsets = [1800.0, 3600.0, 10.0, 7300.0, 5000.0, 3599.9, 0.0]
    events = [
        attempt_event(task_id=f"t{n}", latency_ms=10.0 * (n + 1), ts=DAY0 + offset)
        for n, offset in enumerate(offsets)
    ]
    store.record(events)
    rows = store.trend("hour", group_by=())
    assert {row.bucket_start: row.metrics.requests for row in rows} == {
        DAY0: 4,
        DAY0 + 3600: 2,
        DAY0 + 7200: 1,
    }
    hour_one = next(row.metrics for row in rows if row.bucket_start == DAY0 + 3600)
    assert hour_one.latency_avg_ms == pytest.approx((20.0 + 50.0) / 2)
