"""Charts for ``metrics trend``: unicode sparklines in the terminal, PNG via matplotlib."""

from __future__ import annotations

import math
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime

from rolecall._text import visible
from rolecall.cli._store import fmt_cost, short_time
from rolecall.recording.store.rows import MetricsRow, TrendRow

_BARS = "▁▂▃▄▅▆▇█"
_MAX_COLUMNS = 120
# Fewer hours or days than this beside each name, and the name goes on a line of its own.
_MIN_BESIDE = 12
_TITLES = {
    "requests": "requests",
    "success_rate": "success rate",
    "p50": "p50 latency (ms)",
    "p95": "p95 latency (ms)",
    "cost": "cost (USD)",
}


def metric_value(row: MetricsRow, metric: str) -> float | None:
    """The figure a chart draws for ``row``; None (a gap) for none or a non-finite one."""
    if metric == "requests":
        value: float | None = float(row.requests)
    elif metric == "success_rate":
        value = row.success_rate
    elif metric == "p50":
        value = row.latency_p50_ms
    elif metric == "p95":
        value = row.latency_p95_ms
    else:
        value = row.cost_usd
    return value if value is not None and math.isfinite(value) else None


def _label(row: MetricsRow) -> str:
    parts = [part for part in (row.provider, row.role, row.model) if part is not None]
    return "/".join(parts) or "all"


def _series(
    rows: Sequence[TrendRow], metric: str, step: int, columns: int = _MAX_COLUMNS
) -> tuple[list[int], dict[str, list[float | None]]]:
    first = min(int(r.bucket_start) for r in rows)
    last = max(int(r.bucket_start) for r in rows)
    # The last ``columns`` buckets of the span, built alone: a span of centuries by the
    # hour (a broken clock's times) would be millions of them.
    count = (last - first) // step + 1
    buckets = [first + k * step for k in range(max(0, count - columns), count)]
    index = {start: pos for pos, start in enumerate(buckets)}
    series: dict[str, list[float | None]] = {}
    for row in rows:
        values = series.setdefault(_label(row.metrics), [None] * len(buckets))
        pos = index.get(int(row.bucket_start))
        if pos is not None:
            values[pos] = metric_value(row.metrics, metric)
    return buckets, series


def _shown(value: float, metric: str) -> str:
    if metric == "success_rate":
        return f"{value * 100:.0f}%"
    if metric == "cost":
        return fmt_cost(value)
    return f"{value:.0f}" if abs(value) < 1e9 else f"{value:.2e}"


def terminal_width() -> int | None:
    """The terminal's columns (``COLUMNS`` first, as rich reads it); None when the output
    goes to no terminal and no width was asked for."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _summary(values: Sequence[float | None], metric: str) -> str:
    present = [v for v in values if v is not None]
    return f"{_shown(min(present), metric)} .. {_shown(max(present), metric)}" if present else ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def terminal_chart(
    rows: Sequence[TrendRow], metric: str, bucket: str, width: int | None = None
) -> str:
    """One sparkline per group over the buckets (blank: no calls), with its range.

    Given the terminal's ``width``, no line is wider: fewer (the latest) buckets are shown,
    and a name too long to leave room beside it goes on a line of its own.
    """
    step = 3600 if bucket == "hour" else 86400
    buckets, series = _series(rows, metric, step)
    names = {name: visible(name) for name in series}
    name_width = max(len(shown) for shown in names.values())
    summary_width = max(len(_summary(values, metric)) for values in series.values())
    stacked = False
    if width is not None:
        beside = width - name_width - summary_width - 4
        stacked = beside < _MIN_BESIDE
        columns = max(width - summary_width - 4 if stacked else beside, 1)
        if columns < len(buckets):
            buckets, series = _series(rows, metric, step, columns)
    known = [v for values in series.values() for v in values if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    span = high - low
    fmt = "%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"
    start, end = short_time(buckets[0], fmt), short_time(buckets[-1], fmt)
    title = f"{_TITLES[metric]} per {bucket}, {start} .. {end} UTC"
    lines = textwrap.wrap(title, width) if width is not None else [title]
    for name in sorted(series):
        values = series[name]
        cells = []
        for value in values:
            if value is None:
                cells.append(" ")
            else:
                top = len(_BARS) - 1
                level = top if span == 0 else int((value - low) / span * top)
                cells.append(_BARS[level])
        chart = f"{''.join(cells)}  {_summary(values, metric)}"
        if stacked:
            lines += [_cut(names[name], width or len(names[name])), f"  {chart}"]
        else:
            lines.append(f"{names[name].ljust(name_width)}  {chart}")
    return "\n".join(lines)


def _moment(start: int) -> datetime | None:
    """A bucket's start as a date to plot; None past the calendar (years 1 to 9999)."""
    try:
        return datetime.fromtimestamp(start, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def save_png(rows: Sequence[TrendRow], metric: str, bucket: str, path: str) -> None:
    """Write a line chart; raises ImportError when matplotlib is missing."""
    import importlib

    # Imported by name: matplotlib is optional and may be absent when type-checking.
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    figure, axes = plt.subplots(figsize=(10, 5))
    try:
        # A bucket past the calendar (a broken clock's time) has no place on a date axis:
        # left out, it neither raises nor pushes the others out of the shown span.
        rows = [row for row in rows if _moment(int(row.bucket_start)) is not None]
        if rows:
            step = 3600 if bucket == "hour" else 86400
            buckets, series = _series(rows, metric, step)
            times = [datetime.fromtimestamp(start, UTC) for start in buckets]
            for name in sorted(series):
                points = [(t, v) for t, v in zip(times, series[name], strict=True) if v is not None]
                axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
            axes.legend(loc="best", fontsize="small")
        axes.set_title(f"{_TITLES[metric]} per {bucket} (UTC)")
        axes.set_ylabel(_TITLES[metric])
        figure.autofmt_xdate()
        figure.savefig(path, dpi=100, format="png")
    finally:
        plt.close(figure)
