"""``rolecall runs list`` / ``rolecall runs show RUN``: the execution log.

Both read the metrics store (the runs summary table, and one run's tasks); when the
store holds nothing yet, they fall back to the JSONL run logs under ``metrics.runs_dir``.
A run recorded ``running`` whose process is gone (killed, crashed) shows ``abandoned``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rolecall._text import visible
from rolecall.cli._common import config_option, fail, json_option, print_json
from rolecall.cli._store import (
    fmt_cost,
    fmt_ms,
    metrics_config,
    open_read_store,
    print_table,
    short_time,
    store_option,
)
from rolecall.config.schema import MetricsConfig
from rolecall.recording.runwriter import settle_run, settle_summary
from rolecall.recording.store.rows import RunDetail, RunSummary

if TYPE_CHECKING:
    from rolecall.recording.runlog import RunRecord

MAX_LIMIT = 1_000_000  # far more runs than a screen shows; the store takes no more than 2**63-1


@click.group()
def runs() -> None:
    """List and inspect recorded runs (tasks, providers, attempts, hand-overs)."""


def _runs_dir(metrics: MetricsConfig) -> Path:
    return Path(metrics.runs_dir).expanduser()


def _summary_of(run: RunDetail) -> RunSummary:
    costs = [t.cost_usd for t in run.tasks if t.cost_usd is not None]
    return RunSummary(
        run_id=run.run_id,
        kind=run.kind,
        status=run.status,
        started_at=run.started_at or 0.0,
        finished_at=run.finished_at,
        tasks=sum(1 for t in run.tasks if t.status not in ("running", "incomplete")),
        # As the store counts them: a task blocked by a failed one failed too.
        tasks_failed=sum(1 for t in run.tasks if t.status in ("failed", "blocked")),
        attempts=sum(len(t.attempts) for t in run.tasks),
        handovers=sum(t.handovers for t in run.tasks),
        input_tokens=sum(a.input_tokens for t in run.tasks for a in t.attempts),
        output_tokens=sum(a.output_tokens for t in run.tasks for a in t.attempts),
        cost_usd=sum(costs) if costs else None,
    )


@runs.command("list")
@config_option
@store_option
@json_option
@click.option(
    "--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1, max=MAX_LIMIT)
)
def list_runs(config_path: str | None, store_url: str | None, as_json: bool, limit: int) -> None:
    """The most recent runs first."""
    metrics = metrics_config(config_path)
    store = open_read_store(metrics, store_url)
    if store is not None:
        with store:
            summaries = [
                settle_summary(s, store.run_meta(s.run_id)) if s.status == "running" else s
                for s in store.runs(limit)
            ]
    else:
        from rolecall.recording.runlog import newest_run_files, read_run

        # One run's records at a time: only its summary is kept.
        summaries = [
            _summary_of(_note_skipped(read_run(path)))
            for path in newest_run_files(_runs_dir(metrics), limit)
        ]
    if as_json:
        print_json([summary.to_dict() for summary in summaries])
        return
    if not summaries:
        click.echo("no runs recorded yet")
        return
    rows = [
        [
            s.run_id,
            s.kind,
            s.status,
            short_time(s.started_at),
            fmt_ms((s.finished_at - s.started_at) * 1000) if s.finished_at else "-",
            str(s.tasks),
            str(s.tasks_failed),
            str(s.attempts),
            str(s.handovers),
            f"{s.input_tokens}/{s.output_tokens}",
            fmt_cost(s.cost_usd),
        ]
        for s in summaries
    ]
    headers = ["run", "kind", "status", "started (UTC)", "duration", "tasks", "failed"]
    headers += ["attempts", "hand-overs", "tokens in/out", "cost"]
    numeric = [False, False, False, False, True, True, True, True, True, True, True]
    print_table(headers, rows, numeric=numeric)


def _note_skipped(record: RunRecord) -> RunRecord:
    """Say on stderr that lines of the run's log could not be read (and were left out)."""
    if record.skipped_lines:
        lines = "line" if record.skipped_lines == 1 else "lines"
        click.echo(
            visible(
                f"note: run {record.run_id}: skipped {record.skipped_lines} unreadable {lines} "
                f"of {record.path}; the rest is shown"
            ),
            err=True,
        )
    return record


def _find_run(metrics: MetricsConfig, store_url: str | None, wanted: str) -> RunDetail:
    if not wanted.strip():  # a prefix of every run
        fail("the run id is empty: give a run id or its start (see `rolecall runs list`)")
    store = open_read_store(metrics, store_url)
    if store is not None:
        with store:
            matches = store.find_runs(wanted, limit=5)
            if len(matches) == 1:
                found = store.run(matches[0])
                if found is not None:
                    return settle_run(found)
    else:
        matches = []
    if not matches:
        from rolecall.recording.runlog import find_run_files, read_run

        files = find_run_files(_runs_dir(metrics), wanted)
        if len(files) == 1:
            return _note_skipped(read_run(files[0]))
        matches = [path.stem for path in files]
    if not matches:
        fail(f"no run matches {wanted!r}: see `rolecall runs list` for recorded runs")
    shown = ", ".join(matches[:4]) + (", ..." if len(matches) > 4 else "")
    fail(f"{wanted!r} matches several runs ({shown}): give more of the run id")


@runs.command("show")
@click.argument("run_id", metavar="RUN")
@config_option
@store_option
@json_option
def show_run(run_id: str, config_path: str | None, store_url: str | None, as_json: bool) -> None:
    """Every task of RUN (an id or a unique prefix) with its provider and attempts."""
    metrics = metrics_config(config_path)
    run = _find_run(metrics, store_url, run_id)
    if as_json:
        print_json(run.to_dict())
        return
    duration = (
        fmt_ms((run.finished_at - run.started_at) * 1000)
        if run.finished_at is not None and run.started_at is not None
        else "-"
    )
    click.echo(visible(f"run {run.run_id} ({run.kind}): {run.status}"))
    click.echo(
        f"started {short_time(run.started_at)} UTC, finished {short_time(run.finished_at)}"
        f", duration {duration}, cost {fmt_cost(run.cost_usd)}"
    )
    if not run.tasks:
        click.echo("no tasks recorded")
        return
    # Gateway tasks have no stage: they show the API they came in on (chat, messages, ...).
    rows = [
        [
            task.task_id,
            task.stage or (f"via {task.dialect}" if task.dialect else "-"),
            task.role or "-",
            task.provider or "-",
            str(len(task.attempts)),
            str(task.handovers),
            fmt_ms(task.latency_ms),
            f"{task.input_tokens}/{task.output_tokens}",
            fmt_cost(task.cost_usd),
            task.status,
        ]
        for task in run.tasks
    ]
    headers = ["task", "stage", "role", "provider", "attempts", "hand-overs", "latency"]
    headers += ["tokens in/out", "cost", "status"]
    numeric = [False, False, False, False, True, True, True, True, True, False]
    print_table(headers, rows, numeric=numeric)
