"""What ``rolecall runs`` and ``rolecall metrics`` share: finding the store, times, tables."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from rolecall._text import visible
from rolecall.cli._common import EXIT_USAGE, fail
from rolecall.config.schema import MetricsConfig
from rolecall.errors import ConfigError, MissingExtra
from rolecall.recording.store import (
    EARLIEST_TIME,
    MetricsStore,
    StoreNotFound,
    duration_seconds,
    open_store,
)

F = TypeVar("F", bound=Callable[..., Any])

# Past this many seconds or dollars a figure is shown as 1.23e+09: a row stays one line.
_HUGE = 1e9


def store_option(func: F) -> F:
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        default=None,
        help="Metrics store URL (default: metrics.url from the config, "
        "else sqlite:///.rolecall/rolecall.db).",
    )(func)


def metrics_config(config_path: str | None) -> MetricsConfig:
    """The config's ``metrics`` section; the defaults when there is no config file at all.

    A config whose only problems lie outside ``metrics`` (say, an API key variable unset in
    this shell) still yields its ``metrics`` section: reading metrics needs no provider.
    """
    try:
        from rolecall.config.load import DEFAULT_FILENAMES, load_config
    except ImportError:  # pragma: no cover - the loader ships with the package
        return MetricsConfig()
    named = config_path or os.environ.get("ROLECALL_CONFIG")
    if not named and not any(Path(name).is_file() for name in DEFAULT_FILENAMES):
        return MetricsConfig()
    try:
        return load_config(config_path).metrics
    except ConfigError as exc:
        section = _metrics_section(exc)
        if section is None:
            raise
        return section


def _metrics_section(exc: ConfigError) -> MetricsConfig | None:
    if not exc.source or any(issue.location.startswith("metrics") for issue in exc.issues):
        return None
    try:
        import yaml

        from rolecall.config._read import read_regular_file

        # Bounded, regular files only: a device or FIFO named by -c must not hang here.
        data = yaml.safe_load(read_regular_file(Path(exc.source)).decode("utf-8-sig"))
        section = data.get("metrics", {}) if isinstance(data, dict) else None
        if not isinstance(section, dict) or "${" in repr(section):
            return None
        return MetricsConfig.model_validate(section)
    except Exception:
        return None


def configured_providers(config_path: str | None) -> frozenset[str] | None:
    """The provider ids of the config file; None when there is no config file.

    Read even when the config has problems elsewhere (a provider's key variable unset in
    this shell): which providers exist needs no key.
    """
    from rolecall.config.load import find_config_path, load_config, read_section

    try:
        path = find_config_path(config_path)
    except ConfigError:
        return None
    try:
        return frozenset(load_config(path).providers)
    except ConfigError:
        section = read_section(path, "providers")
        return frozenset(section) if isinstance(section, dict) else None


def open_read_store(metrics: MetricsConfig, store_url: str | None) -> MetricsStore | None:
    """The store for reading, or None when no SQLite database exists yet."""
    try:
        return open_store(store_url or metrics.url, create=False)
    except StoreNotFound:
        return None
    except MissingExtra as exc:
        fail(exc.message, EXIT_USAGE)
    except ConfigError as exc:  # a URL no store takes: one line, named as the user gave it
        origin = "--store" if store_url else "metrics.url"
        problems = (f"{i.problem}; {i.fix}" if i.fix else i.problem for i in exc.issues)
        fail(f"{origin}: {'; '.join(problems)}", EXIT_USAGE)


def parse_time(value: str | None, option: str, now: float | None = None) -> float | None:
    """A duration back from now (``7d``, ``24h``, ``30m``, ``90s``, ``2w``) or an ISO time
    (UTC unless it carries an offset), as epoch seconds; a bad value exits 2."""
    if value is None or value == "":
        return None
    now = time.time() if now is None else now
    text = value.strip()
    span = duration_seconds(text)
    if span is not None:
        ago = now - span
        if ago < EARLIEST_TIME:  # also true of a duration too long for a float (-inf)
            fail(
                f"invalid {option} value {value!r}: that reaches back before the year 1; "
                "use a shorter duration such as 7d, 24h or 30m, or an ISO time"
            )
        return ago
    if text.lower() == "now":
        return now
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        fail(
            f"invalid {option} value {value!r}: use a duration such as 7d, 24h or 30m, "
            "or an ISO time such as 2025-01-31T12:00"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def time_range(since: str | None, until: str | None) -> tuple[float | None, float]:
    """[start, end) as epoch seconds. Without ``--until`` the window ends now: calls stamped
    later (by a clock that ran ahead) belong to no window that ends now."""
    now = time.time()
    start = parse_time(since, "--since", now)
    end = parse_time(until, "--until", now)
    if end is None:
        if start is not None and start >= now:
            fail(
                f"--since ({since}) is later than now: give --until a later time too, "
                "e.g. --until 9999-12-31, to read calls stamped later than now"
            )
        return start, now
    if start is not None and start >= end:
        fail(f"--since ({since}) must be earlier than --until ({until})")
    return start, end


def short_time(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """``ts`` (epoch seconds) as UTC text; ``-`` for none, or one past the calendar's years."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return "-"


def fmt_ms(value: float | None) -> str:
    """``850ms``, ``12.34s``; a number no clock gives (``1e300``, infinite) stays short."""
    if value is None or not math.isfinite(value):
        return "-"
    if value >= _HUGE * 1000:
        return f"{value / 1000:.2e}s"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def fmt_cost(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= _HUGE:
        return f"${value:.2e}"
    return f"${value:.4f}" if abs(value) >= 0.0001 or value == 0 else f"${value:.2e}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _rich_fits(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether rich can draw the table with nothing cut: on a terminal taking UTF-8 (its
    box lines, and a name may hold any letter), as wide as every column in full. On a
    narrower one rich would cut figures to ``66.…``, or show empty cells."""
    if not sys.stdout.isatty():
        return False
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if not encoding.startswith("utf"):
        return False
    from rich.cells import cell_len
    from rich.console import Console

    widths = [cell_len(header) for header in headers]
    for row in rows:
        widths = [max(width, cell_len(cell)) for width, cell in zip(widths, row, strict=True)]
    # Each column: its text, a space either side, and one rule; one more rule at the end.
    return sum(widths) + 3 * len(widths) + 1 <= Console().width


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[bool] | None = None,
    title: str | None = None,
) -> None:
    """A rich table on a terminal it fits; aligned plain text (easy to grep) otherwise.

    Cells are shown as given (a ``[red]`` in a model name is no markup), control
    characters escaped: names and messages come from providers and the store.
    """
    right = list(numeric) if numeric is not None else [False] * len(headers)
    rows = [[visible(cell) for cell in row] for row in rows]
    if _rich_fits(headers, rows):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, show_lines=False)
        for header, is_number in zip(headers, right, strict=True):
            table.add_column(header, justify="right" if is_number else "left")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        Console().print(table)
        return
    if title:
        click.echo(title)
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    # One write: echo flushes each time, which cost more than the lines of a long trend.
    click.echo("\n".join([line(headers), *(line(row) for row in rows)]))
