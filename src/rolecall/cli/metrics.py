"""``rolecall metrics`` (per provider x role), ``metrics trend`` and ``metrics advise``.

Every query reads the hourly/daily rollup tables only, never the raw attempts.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from rolecall._text import visible
from rolecall.cli._common import (
    EXIT_USAGE,
    config_option,
    fail,
    json_option,
    print_json,
)
from rolecall.cli._store import (
    configured_providers,
    fmt_cost,
    fmt_ms,
    fmt_rate,
    metrics_config,
    open_read_store,
    print_table,
    short_time,
    store_option,
    time_range,
)
from rolecall.recording.store import MetricsStore
from rolecall.recording.store.rollups import DAY, HOUR
from rolecall.recording.store.rows import MetricsRow, TrendRow

_GROUP_FIELDS = ("provider", "role", "model")
_PLOT_METRICS = ("requests", "success_rate", "p50", "p95", "cost")
# What `metrics trend` shows without --since: 48 hours by the hour, 30 days by the day.
_DEFAULT_WINDOW = {"hour": 48 * 3600.0, "day": 30 * 86400.0}
# A cell starting with one of these is a formula to a spreadsheet (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class _Query:
    config_path: str | None
    store_url: str | None
    since: str | None
    until: str | None
    provider: str | None
    role: str | None


def _filter_options(func: Any) -> Any:
    for option in reversed(
        [
            config_option,
            store_option,
            click.option(
                "--since", metavar="WHEN", help="Start: 7d, 24h or 30m ago, or an ISO time (UTC)."
            ),
            click.option("--until", metavar="WHEN", help="End: a duration ago or an ISO time."),
            click.option("--provider", metavar="ID", help="Only this provider."),
            click.option("--role", metavar="ROLE", help="Only this role."),
        ]
    ):
        func = option(func)
    return func


def _inherit(ctx: click.Context, **given: Any) -> _Query:
    """Options given to the subcommand win over those given before its name."""
    parent: _Query | None = ctx.obj if isinstance(ctx.obj, _Query) else None

    def pick(name: str) -> Any:
        value = given.get(name)
        return value if value is not None or parent is None else getattr(parent, name)

    return _Query(*(pick(name) for name in _Query.__slots__))


def _group_by(text: str) -> tuple[str, ...]:
    fields = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [name for name in fields if name not in _GROUP_FIELDS]
    if bad:
        fail(f"--by {text!r}: cannot group by {', '.join(bad)}; use provider, role and/or model")
    return fields


@click.group(invoke_without_command=True)
@_filter_options
@click.option(
    "--by",
    "group_by",
    metavar="FIELDS",
    default="provider,role",
    show_default=True,
    help="Group by any of provider, role, model (comma-separated).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@json_option
@click.pass_context
def metrics(
    ctx: click.Context,
    config_path: str | None,
    store_url: str | None,
    since: str | None,
    until: str | None,
    provider: str | None,
    role: str | None,
    group_by: str,
    output_format: str,
    as_json: bool,
) -> None:
    """Per provider x role: requests, success rate, failures by kind, latency, tokens, cost.

    `requests` counts every call made (retries included); latency percentiles are
    nearest-rank, within about 1%. Times are UTC, at one-hour resolution.
    """
    ctx.obj = _Query(config_path, store_url, since, until, provider, role)
    if ctx.invoked_subcommand is not None:
        return
    fields = _group_by(group_by)
    start, end = time_range(since, until)
    store = open_read_store(metrics_config(config_path), store_url)
    rows: list[MetricsRow] = []
    if store is not None:
        with store:
            rows = store.metrics(start, end, provider=provider, role=role, group_by=fields)
            if until is None:
                _note_later_calls(store, end, HOUR, provider, role)
    if as_json or output_format == "json":
        print_json([row.to_dict() for row in rows])
    elif output_format == "csv":
        _print_csv(rows, fields)
    elif not rows:
        click.echo("no metrics recorded yet" if store is None else "no calls in this range")
    else:
        _print_metrics_table(rows, fields)


def _failures_text(row: MetricsRow) -> str:
    """``12 (rate_limit 9, auth 3)``: the count, then kinds, most frequent first."""
    if not row.failures:
        return "0"
    kinds = sorted(row.errors.items(), key=lambda item: (-item[1], item[0]))
    return f"{row.failures} (" + ", ".join(f"{kind} {count}" for kind, count in kinds) + ")"


def _print_metrics_table(rows: Sequence[MetricsRow], fields: Sequence[str]) -> None:
    shown = [name for name in _GROUP_FIELDS if name in fields]
    headers = [*shown, "requests", "success", "failures", "avg", "p50", "p95", "p99"]
    headers += ["tokens in/out", "cost"]
    body = [
        [
            *(str(getattr(row, name) or "-") for name in shown),
            str(row.requests),
            fmt_rate(row.success_rate),
            _failures_text(row),
            fmt_ms(row.latency_avg_ms),
            fmt_ms(row.latency_p50_ms),
            fmt_ms(row.latency_p95_ms),
            fmt_ms(row.latency_p99_ms),
            f"{row.input_tokens}/{row.output_tokens}",
            _cost_text(row),
        ]
        for row in rows
    ]
    numeric = [False] * len(shown) + [True, True, False, True, True, True, True, True, True]
    print_table(headers, body, numeric=numeric)
    _cost_note(rows)


def _cost_text(row: MetricsRow) -> str:
    """The cost; ``$0.0100+`` when some answered calls have no known cost (no pricing)."""
    partial = row.cost_usd is not None and not row.cost_complete
    return fmt_cost(row.cost_usd) + ("+" if partial else "")


def _cost_note(rows: Sequence[MetricsRow]) -> None:
    if any(row.cost_usd is not None and not row.cost_complete for row in rows):
        click.echo(
            "cost+: some answered calls have no known cost (their provider had no pricing "
            "then): at least this much"
        )


def _print_csv(rows: Sequence[MetricsRow], fields: Sequence[str]) -> None:
    shown = [name for name in _GROUP_FIELDS if name in fields]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(
        [
            *shown,
            *("requests", "successes", "failures", "success_rate", "latency_avg_ms"),
            *("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "input_tokens"),
            *("output_tokens", "cost_usd", "errors", "priced_requests"),
        ]
    )
    for row in rows:
        data = row.to_dict()
        latency = data["latency_ms"]
        writer.writerow(
            [
                *(_text_cell(getattr(row, name)) for name in shown),
                row.requests,
                row.successes,
                row.failures,
                "" if data["success_rate"] is None else data["success_rate"],
                *("" if latency[key] is None else latency[key] for key in ("avg", "p50")),
                *("" if latency[key] is None else latency[key] for key in ("p95", "p99")),
                row.input_tokens,
                row.output_tokens,
                "" if data["cost_usd"] is None else data["cost_usd"],
                ";".join(f"{kind}={count}" for kind, count in sorted(row.errors.items())),
                "" if row.priced_requests is None else row.priced_requests,
            ]
        )


def _text_cell(value: str | None) -> str:
    """A name as a CSV cell a spreadsheet shows as text: one that would start a formula
    (``=HYPERLINK(...)``, ``@SUM(...)``) gets a leading ``'``, as OWASP advises."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


# -- trend -------------------------------------------------------------------------------


@metrics.command()
@_filter_options
@click.option("--bucket", type=click.Choice(["hour", "day"]), default="day", show_default=True)
@click.option(
    "--by",
    "group_by",
    metavar="FIELDS",
    default="provider,role",
    show_default=True,
    help="Group by any of provider, role, model (comma-separated).",
)
@click.option("--plot", is_flag=True, help="Draw a chart in the terminal.")
@click.option("--png", "png_path", metavar="FILE", help="Save a chart as PNG (needs matplotlib).")
@click.option(
    "--metric",
    type=click.Choice(_PLOT_METRICS),
    default="requests",
    show_default=True,
    help="What --plot and --png draw.",
)
@json_option
@click.pass_context
def trend(
    ctx: click.Context,
    config_path: str | None,
    store_url: str | None,
    since: str | None,
    until: str | None,
    provider: str | None,
    role: str | None,
    bucket: str,
    group_by: str,
    plot: bool,
    png_path: str | None,
    metric: str,
    as_json: bool,
) -> None:
    """The same metrics per UTC hour or day (default window: 48h for hours, 30d for days)."""
    query = _inherit(
        ctx,
        config_path=config_path,
        store_url=store_url,
        since=since,
        until=until,
        provider=provider,
        role=role,
    )
    fields = _group_by(group_by)
    if png_path:
        _check_png_path(png_path)
    start, end = _trend_range(query.since, query.until, bucket)
    store = open_read_store(metrics_config(query.config_path), query.store_url)
    rows: list[TrendRow] = []
    if store is not None:
        with store:
            rows = store.trend(
                "hour" if bucket == "hour" else "day",
                start,
                end,
                provider=query.provider,
                role=query.role,
                group_by=fields,
            )
            if query.until is None:
                _note_later_calls(
                    store, end, HOUR if bucket == "hour" else DAY, query.provider, query.role
                )
    if png_path:
        from rolecall.cli._charts import save_png

        try:
            save_png(rows, metric, bucket, png_path)
        except ImportError:
            fail("--png needs matplotlib: pip install 'rolecall[plot]'", EXIT_USAGE)
        except OSError as exc:
            fail(f"--png: cannot write {png_path}: {exc.strerror or exc}; pick another path")
        if not as_json:
            click.echo(f"wrote {png_path}")
    if as_json:
        print_json([row.to_dict() for row in rows])
        return
    if not rows:
        click.echo("no metrics recorded yet" if store is None else "no calls in this range")
        return
    if plot:
        from rolecall.cli._charts import terminal_chart, terminal_width

        click.echo(terminal_chart(rows, metric, bucket, terminal_width()))
        return
    if png_path:
        return
    _print_trend_table(rows, fields, bucket)


def _trend_range(since: str | None, until: str | None, bucket: str) -> tuple[float, float]:
    """The window asked for; without --since, the default window that ends at --until."""
    start, end = time_range(since, until)
    return end - _DEFAULT_WINDOW[bucket] if start is None else start, end


def _check_png_path(path: str) -> None:
    """Refuse, before any work, a --png name that would not get a PNG written under it."""
    if Path(path).is_dir():
        fail(f"--png {path!r} is a directory: give a file name such as {Path(path) / 'trend.png'}")
    if not path.lower().endswith(".png"):
        fail(f"--png {path!r}: the file name must end in .png, e.g. --png trend.png")


def _print_trend_table(rows: Sequence[TrendRow], fields: Sequence[str], bucket: str) -> None:
    shown = [name for name in _GROUP_FIELDS if name in fields]
    fmt = "%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"
    body = [
        [
            short_time(row.bucket_start, fmt),
            *(str(getattr(row.metrics, name) or "-") for name in shown),
            str(row.metrics.requests),
            fmt_rate(row.metrics.success_rate),
            fmt_ms(row.metrics.latency_p50_ms),
            fmt_ms(row.metrics.latency_p95_ms),
            f"{row.metrics.input_tokens}/{row.metrics.output_tokens}",
            _cost_text(row.metrics),
        ]
        for row in rows
    ]
    headers = [f"{bucket} (UTC)", *shown, "requests", "success", "p50", "p95", "tokens in/out"]
    headers.append("cost")
    numeric = [False] * (1 + len(shown)) + [True] * 6
    print_table(headers, body, numeric=numeric)
    _cost_note([row.metrics for row in rows])


# -- advise ------------------------------------------------------------------------------


@metrics.command()
@_filter_options
@click.option(
    "--min-requests",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Calls each provider needs in a role before it is judged.",
)
@json_option
@click.pass_context
def advise(
    ctx: click.Context,
    config_path: str | None,
    store_url: str | None,
    since: str | None,
    until: str | None,
    provider: str | None,
    role: str | None,
    min_requests: int,
    as_json: bool,
) -> None:
    """Flag providers that do clearly worse than another in the same role, with evidence.

    Only providers the config has are judged and proposed (all recorded ones without a
    config file). --role judges that role only; --provider shows the findings about that
    provider (judged against the others in its roles).
    """
    query = _inherit(
        ctx,
        config_path=config_path,
        store_url=store_url,
        since=since,
        until=until,
        provider=provider,
        role=role,
    )
    start, end = time_range(query.since, query.until)
    store = open_read_store(metrics_config(query.config_path), query.store_url)
    from rolecall.recording.store.advise import about_provider
    from rolecall.recording.store.advise import advise as judge

    rows: list[MetricsRow] = []
    if store is not None:
        with store:
            rows = store.metrics(start, end, role=query.role)
            if query.until is None:
                _note_later_calls(store, end, HOUR, query.provider, query.role)
    findings = judge(rows, min_requests, configured_providers(query.config_path))
    if query.provider is not None:
        findings = about_provider(findings, rows, query.provider)
    if as_json:
        print_json([finding.to_dict() for finding in findings])
        return
    if not rows:
        click.echo(
            "no calls recorded yet: too little data to judge"
            if store is None
            else "no calls in this range: nothing to judge"
        )
        return
    reassign = [f for f in findings if f.kind == "reassign"]
    for finding in findings:
        click.echo(visible(finding.message))
        if finding.suggestion:
            click.echo(f"  suggest: {visible(finding.suggestion)}")
    if query.provider is not None and not any(r.provider == query.provider for r in rows):
        click.echo(visible(f"no calls from provider {query.provider} in this range"))
    elif query.provider is not None and not reassign:
        click.echo(visible(f"{query.provider} does not do clearly worse than another provider"))
    elif not reassign:
        click.echo("no provider does clearly worse than another in the same role")


def _note_later_calls(
    store: MetricsStore, now: float, step: int, provider: str | None, role: str | None
) -> None:
    """Say on stderr how many calls a window ending ``now`` left out for being stamped
    later (a clock that ran ahead): the window counts whole ``step`` buckets, so those from
    the next bucket on."""
    start = math.ceil(now / step) * step
    later = store.metrics(start, None, provider=provider, role=role, group_by=())
    count = sum(row.requests for row in later)
    if count:
        calls, verb = ("1 call", "is") if count == 1 else (f"{count} calls", "are")
        click.echo(
            f"note: {calls} stamped later than now (by a clock that ran ahead) {verb} left "
            "out; a later --until counts them, e.g. --until 9999-12-31",
            err=True,
        )
