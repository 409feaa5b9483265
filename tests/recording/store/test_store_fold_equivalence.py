"""The metrics and trend queries answer exactly what a plain fold of the rollup rows gives.

The store folds rollup rows in as few Python steps as it can (histograms kept as the
arrays they decode to, one group of one row taken as it is). The reference here is the
slow, obvious definition: each selected row added through the write path's
``Rollup.add_row``, percentiles read by walking the counts one bucket at a time. Every
figure must be equal, floats included (same additions in the same order), over a store
with the awkward cases: windows that start and end inside an hour, hours and days with no
calls, stamps far in the future, several models in one provider and role, zero and huge
latencies, counts past one byte, unknown costs, cancelled calls, filters.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import pytest

from factories import attempt_event
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent
from rolecall.recording.store import MetricsStore
from rolecall.recording.store.histogram import bucket_value
from rolecall.recording.store.queries import RollupRange, plan, select_sql
from rolecall.recording.store.rollups import DAY, HOUR, Rollup
from rolecall.recording.store.rows import MetricsRow, TrendRow

DAY0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
FUTURE = 32_503_680_000.0  # 3000-01-01: a clock that ran far ahead
GROUPINGS = [
    fields for size in range(4) for fields in combinations(("provider", "role", "model"), size)
]


def _history() -> list[AttemptEvent]:
    rng = random.Random(7)
    kinds = [ErrorKind.SERVER, ErrorKind.RATE_LIMIT, ErrorKind.TIMEOUT, None]
    events: list[AttemptEvent] = []
    pairs = [
        ("gpt", "coder", "gpt-a"),
        ("gpt", "coder", "gpt-b"),  # a second model in the same provider and role
        ("claude", "coder", "claude-m"),
        ("claude", "reviewer", "claude-m"),
        ("local", "planner", ""),
    ]
    # Three days with a gap (day 2 empty), calls scattered inside hours.
    for day in (0, 1, 3):
        for hour in rng.sample(range(24), 6):
            for provider, role, model in pairs:
                for _ in range(rng.randrange(0, 6)):
                    ok = rng.random() < 0.8
                    events.append(
                        attempt_event(
                            provider=provider,
                            role=role,
                            model=model,
                            outcome="ok" if ok else "retry",
                            error_kind=None if ok else rng.choice(kinds),
                            latency_ms=rng.choice([0.0, 0.3, 1e12, rng.lognormvariate(6, 1)]),
                            input_tokens=rng.randrange(0, 900),
                            output_tokens=rng.randrange(0, 400),
                            cached_input_tokens=rng.randrange(0, 50),
                            cost_usd=None if provider == "local" else rng.random() / 1000,
                            ts=DAY0 + day * DAY + hour * HOUR + rng.uniform(0, HOUR - 1),
                        )
                    )
    # One hour with 300 calls of one latency: a count past one byte.
    events += [
        attempt_event(provider="gpt", model="gpt-a", latency_ms=420.0, ts=DAY0 + 5 * HOUR + i)
        for i in range(300)
    ]
    # Cost known for some calls only in one hour; a skipped provider (attempt 0).
    events += [
        attempt_event(provider="claude", model="claude-m", cost_usd=0.5, ts=DAY0 + 9 * HOUR),
        attempt_event(provider="claude", model="claude-m", cost_usd=None, ts=DAY0 + 9 * HOUR + 5),
        attempt_event(provider="gpt", attempt=0, outcome="skipped", ts=DAY0 + 9 * HOUR),
    ]
    events += [
        attempt_event(provider="gpt", model="gpt-a", latency_ms=50.0 + i, ts=FUTURE + i * 1000.0)
        for i in range(10)
    ]
    return events


def _percentile(rollup: Rollup, q: float) -> float | None:
    counts, offset = rollup.hist.counts, rollup.hist.offset
    total = sum(counts)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for position, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return bucket_value(offset + position)
    raise AssertionError("rank past the total")


def _row(rollup: Rollup, key: tuple[str | None, ...], fields: tuple[str, ...]) -> MetricsRow:
    return MetricsRow(
        provider=key[0],
        role=key[1],
        model=key[2],
        requests=rollup.requests,
        successes=rollup.successes,
        failures=rollup.failures,
        errors=dict(rollup.errors),
        input_tokens=rollup.input_tokens,
        output_tokens=rollup.output_tokens,
        cost_usd=rollup.cost_usd if rollup.cost_count else None,
        latency_avg_ms=rollup.latency_sum / rollup.requests if rollup.requests else None,
        latency_p50_ms=_percentile(rollup, 0.50),
        latency_p95_ms=_percentile(rollup, 0.95),
        latency_p99_ms=_percentile(rollup, 0.99),
        group_by=fields,
        cached_input_tokens=rollup.cached_input_tokens,
        priced_requests=rollup.cost_count,
    )


def _groups(
    store: MetricsStore,
    ranges: Sequence[RollupRange],
    provider: str | None,
    role: str | None,
    fields: tuple[str, ...],
    step: int | None,
) -> dict[tuple[Any, ...], Rollup]:
    groups: dict[tuple[Any, ...], Rollup] = {}
    for part in ranges:
        sql, params = select_sql(part, provider, role)
        for row in store._read(sql, params):
            key = (
                row[1] if "provider" in fields else None,
                row[2] if "role" in fields else None,
                row[3] if "model" in fields else None,
            )
            if step is not None:
                key = (math.floor(int(row[0]) / step) * step, *key)
            groups.setdefault(key, Rollup()).add_row(row[4:])
    return groups


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("" if part is None else part for part in key)


def reference_metrics(
    store: MetricsStore,
    since: float | None,
    until: float | None,
    provider: str | None,
    role: str | None,
    fields: tuple[str, ...],
) -> list[MetricsRow]:
    groups = _groups(store, plan(since, until), provider, role, fields, None)
    return [_row(groups[key], key, fields) for key in sorted(groups, key=_sort_key)]


def reference_trend(
    store: MetricsStore,
    step: int,
    since: float | None,
    until: float | None,
    provider: str | None,
    role: str | None,
    fields: tuple[str, ...],
) -> list[TrendRow]:
    part = RollupRange(
        "rollup_hourly" if step == HOUR else "rollup_daily",
        "hour" if step == HOUR else "day",
        None if since is None else int(since // step) * step,
        None if until is None else int(-(-until // step)) * step,
    )
    groups = _groups(store, [part], provider, role, fields, step)
    return [
        TrendRow(float(key[0]), _row(groups[key], key[1:], fields))
        for key in sorted(groups, key=_sort_key)
    ]


WINDOWS = [
    (None, None),
    (DAY0 + 5 * HOUR + 1234.5, None),  # starts inside an hour
    (None, DAY0 + DAY + 7 * HOUR + 0.25),  # ends inside an hour
    (DAY0 + 3 * HOUR + 59.0, DAY0 + 3 * DAY + 20 * HOUR + 1.0),
    (DAY0 + 2 * DAY, DAY0 + 3 * DAY),  # the empty day
    (DAY0 + 5 * HOUR + 10.0, DAY0 + 5 * HOUR + 20.0),  # inside one hour
    (DAY0 + DAY, FUTURE + 3 * HOUR),  # over the gap up to the far future
    (FUTURE, None),
]
FILTERS = [(None, None), ("gpt", None), (None, "coder"), ("claude", "reviewer"), ("nobody", None)]


@pytest.fixture
def filled(store: MetricsStore) -> MetricsStore:
    events = _history()
    for start in range(0, len(events), 97):  # several batches: rollup rows merged again
        store.record(events[start : start + 97])
    return store


def test_metrics_equal_the_plain_fold(filled: MetricsStore) -> None:
    compared = 0
    for since, until in WINDOWS:
        for provider, role in FILTERS:
            for fields in GROUPINGS:
                got = filled.metrics(since, until, provider, role, group_by=fields)
                assert got == reference_metrics(filled, since, until, provider, role, fields), (
                    since,
                    until,
                    provider,
                    role,
                    fields,
                )
                compared += len(got)
    assert compared > 300  # the cases hold data, not only empty answers


@pytest.mark.parametrize("step", [HOUR, DAY])
def test_trend_equals_the_plain_fold(filled: MetricsStore, step: int) -> None:
    bucket = "hour" if step == HOUR else "day"
    compared = 0
    for since, until in WINDOWS:
        for provider, role in FILTERS:
            for fields in GROUPINGS:
                got = filled.trend(bucket, since, until, provider, role, group_by=fields)
                want = reference_trend(filled, step, since, until, provider, role, fields)
                assert got == want, (bucket, since, until, provider, role, fields)
                compared += len(got)
    assert compared > 1000
