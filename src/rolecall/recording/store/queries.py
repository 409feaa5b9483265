"""Read-side planning: which rollup rows answer a query, and folding them into rows.

A time range is answered from whole days in ``rollup_daily`` plus the hours at its
edges from ``rollup_hourly``, so even a month of ten million calls is a few hundred
rows. Time resolution is one UTC hour: the hour containing ``since`` counts whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rolecall.recording.store.histogram import DenseHistogram, decode_array, dense_percentiles
from rolecall.recording.store.rollups import DAY, HOUR, ROLLUP_COLUMNS
from rolecall.recording.store.rows import MetricsRow, TrendRow

__all__ = [
    "GROUP_FIELDS",
    "RollupRange",
    "check_group_by",
    "fold_metrics",
    "fold_trend",
    "plan",
    "select_sql",
]

GROUP_FIELDS = ("provider", "role", "model")
_PERCENTILES = (0.50, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class RollupRange:
    """Rows of ``table`` whose ``period`` start lies in [lo, hi) (None: unbounded)."""

    table: str
    period: str
    lo: int | None
    hi: int | None


_HOURLY = ("rollup_hourly", "hour")
_DAILY = ("rollup_daily", "day")


def _floor(ts: float, step: int) -> int:
    return math.floor(ts / step) * step


def _ceil(ts: float, step: int) -> int:
    return math.ceil(ts / step) * step


def plan(since: float | None, until: float | None) -> list[RollupRange]:
    """The rollup ranges that cover [since, until) at hour resolution."""
    lo = None if since is None else _floor(since, HOUR)
    hi = None if until is None else _ceil(until, HOUR)
    if lo is not None and hi is not None and lo >= hi:
        return []
    day_lo = None if lo is None else _ceil(lo, DAY)
    day_hi = None if hi is None else _floor(hi, DAY)
    if day_lo is not None and day_hi is not None and day_lo >= day_hi:
        return [RollupRange(*_HOURLY, lo, hi)]
    ranges = [RollupRange(*_DAILY, day_lo, day_hi)]
    if lo is not None and day_lo is not None and lo < day_lo:
        ranges.append(RollupRange(*_HOURLY, lo, day_lo))
    if hi is not None and day_hi is not None and day_hi < hi:
        ranges.append(RollupRange(*_HOURLY, day_hi, hi))
    return ranges


def select_sql(part: RollupRange, provider: str | None, role: str | None) -> tuple[str, list[Any]]:
    """SQL (``?`` placeholders) returning period, provider, role, model, ROLLUP_COLUMNS."""
    where: list[str] = []
    params: list[Any] = []
    if part.lo is not None:
        where.append(f"{part.period} >= ?")
        params.append(part.lo)
    if part.hi is not None:
        where.append(f"{part.period} < ?")
        params.append(part.hi)
    if provider is not None:
        where.append("provider = ?")
        params.append(provider)
    if role is not None:
        where.append("role = ?")
        params.append(role)
    columns = ", ".join((part.period, "provider", "role", "model", *ROLLUP_COLUMNS))
    sql = f"SELECT {columns} FROM {part.table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params


def check_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    fields = tuple(group_by)
    for name in fields:
        if name not in GROUP_FIELDS:
            raise ValueError(f"cannot group by {name!r}: use any of provider, role, model")
    return tuple(name for name in GROUP_FIELDS if name in fields)


def _group_key(row: Sequence[Any], fields: tuple[str, ...]) -> tuple[str | None, ...]:
    # row[1:4] are provider, role, model, never NULL: keys sort as they are, a field
    # not grouped by being None in every key
    return (
        row[1] if "provider" in fields else None,
        row[2] if "role" in fields else None,
        row[3] if "model" in fields else None,
    )


_Key = TypeVar("_Key", bound=Hashable)


def _fold(
    rows: list[Sequence[Any]], keys: Iterable[_Key], fields: tuple[str, ...]
) -> dict[_Key, MetricsRow]:
    """One metrics row per key over ``rows`` (``keys``: each row's, in order).

    Sums run over each group's rows in their order, as a running total from zero would,
    so every figure, floats included, is what adding the rows one by one gives. The
    histograms stay the arrays they decode to; a group of one row (every row of an
    hourly trend) reads its percentiles from its own array, merging nothing.
    """
    members: dict[_Key, list[int]] = {}
    for index, key in enumerate(keys):
        group = members.get(key)
        if group is None:
            members[key] = [index]
        else:
            group.append(index)
    errors = json.loads("[" + ",".join(row[7] or "{}" for row in rows) + "]")
    out: dict[_Key, MetricsRow] = {}
    for key, group in members.items():
        requests = successes = failures = input_tokens = output_tokens = 0
        cost_count = cached = 0
        cost_usd = latency_sum = 0.0
        kinds: dict[str, int] = {}
        for index in group:
            row = rows[index]
            requests += row[4]
            successes += row[5]
            failures += row[6]
            for kind, count in errors[index].items():
                kinds[kind] = kinds.get(kind, 0) + count
            input_tokens += row[8]
            output_tokens += row[9]
            cost_usd += row[10] or 0.0
            cost_count += row[11]
            latency_sum += row[12]
            cached += row[14] or 0
        if len(group) == 1:
            offset, counts = decode_array(rows[group[0]][13])
        else:
            merged = DenseHistogram()
            for index in group:
                merged.add_dense(*decode_array(rows[index][13]))
            offset, counts = merged.offset, merged.counts
        p50, p95, p99 = dense_percentiles(offset, counts, _PERCENTILES)
        out[key] = MetricsRow(
            provider=row[1] if "provider" in fields else None,
            role=row[2] if "role" in fields else None,
            model=row[3] if "model" in fields else None,
            requests=requests,
            successes=successes,
            failures=failures,
            errors=kinds,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd if cost_count else None,
            latency_avg_ms=latency_sum / requests if requests else None,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
            group_by=fields,
            cached_input_tokens=cached,
            priced_requests=cost_count,
        )
    return out


def fold_metrics(rows: Iterable[Sequence[Any]], group_by: Sequence[str]) -> list[MetricsRow]:
    fields = check_group_by(group_by)
    selected = list(rows)
    folded = _fold(selected, [_group_key(row, fields) for row in selected], fields)
    return [folded[key] for key in sorted(folded)]


def fold_trend(
    rows: Iterable[Sequence[Any]], group_by: Sequence[str], bucket_seconds: int
) -> list[TrendRow]:
    fields = check_group_by(group_by)
    selected = list(rows)
    keys = [(_floor(int(row[0]), bucket_seconds), _group_key(row, fields)) for row in selected]
    folded = _fold(selected, keys, fields)
    return [TrendRow(float(key[0]), folded[key]) for key in sorted(folded)]
