"""Read-side planning: which rollup rows answer a query, and folding them into rows.

A time range is answered from whole days in ``rollup_daily`` plus the hours at its
edges from ``rollup_hourly``, so even a month of ten million calls is a few hundred
rows. Time resolution is one UTC hour: the hour containing ``since`` counts whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rolecall.recording.store.histogram import decode_counts
from rolecall.recording.store.rollups import DAY, HOUR, ROLLUP_COLUMNS, Rollup
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
    # row[1:4] are provider, role, model
    return (
        row[1] if "provider" in fields else None,
        row[2] if "role" in fields else None,
        row[3] if "model" in fields else None,
    )


def _sort_key(key: tuple[str | None, ...]) -> tuple[str, ...]:
    return tuple(part or "" for part in key)


def _decoded(
    rows: list[Sequence[Any]],
) -> tuple[list[dict[str, int]], list[tuple[int, list[int]]]]:
    """The errors and histogram columns of every row (errors in one JSON parse)."""
    errors = json.loads("[" + ",".join(row[7] or "{}" for row in rows) + "]")
    return errors, [decode_counts(row[13]) for row in rows]


def fold_metrics(rows: Iterable[Sequence[Any]], group_by: Sequence[str]) -> list[MetricsRow]:
    fields = check_group_by(group_by)
    selected = list(rows)
    errors, hists = _decoded(selected)
    groups: dict[tuple[str | None, ...], Rollup] = {}
    for row, row_errors, hist in zip(selected, errors, hists, strict=True):
        key = _group_key(row, fields)
        rollup = groups.get(key)
        if rollup is None:
            rollup = groups[key] = Rollup()
        rollup.add_selected(row, row_errors, hist)
    return [
        groups[key].to_metrics(key[0], key[1], key[2], fields)
        for key in sorted(groups, key=_sort_key)
    ]


def fold_trend(
    rows: Iterable[Sequence[Any]], group_by: Sequence[str], bucket_seconds: int
) -> list[TrendRow]:
    fields = check_group_by(group_by)
    selected = list(rows)
    errors, hists = _decoded(selected)
    groups: dict[tuple[int, tuple[str | None, ...]], Rollup] = {}
    for row, row_errors, hist in zip(selected, errors, hists, strict=True):
        bucket = _floor(int(row[0]), bucket_seconds)
        key = (bucket, _group_key(row, fields))
        rollup = groups.get(key)
        if rollup is None:
            rollup = groups[key] = Rollup()
        rollup.add_selected(row, row_errors, hist)
    ordered = sorted(groups, key=lambda k: (k[0], _sort_key(k[1])))
    return [
        TrendRow(float(bucket), groups[(bucket, key)].to_metrics(key[0], key[1], key[2], fields))
        for bucket, key in ordered
    ]
