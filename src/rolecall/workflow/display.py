"""What a user sees during and after a run.

On a terminal: a live view (per stage, tasks done of total; the tasks running,
each with the provider answering it, hand-overs included). Otherwise: one plain
line per finished task on stderr. At the end: a summary table and where the
result is, or the same as JSON.

Names come from the plan a model wrote and errors from providers' messages: each is
shown through :func:`visible` (a control character as its escape) and, where rich
reads markup, escaped (``[bold]`` in a name prints as written).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from rolecall._text import visible
from rolecall.events import AttemptEvent, Event
from rolecall.workflow.engine import EngineObserver, TaskRecord

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["ProgressDisplay", "render_summary", "task_row"]

STAGES = ("clarify", "plan", "generate", "verify", "review")


def task_row(record: TaskRecord) -> dict[str, Any]:
    """One task as the summary and ``--json`` show it."""
    return {
        "task": record.name,
        "stage": record.stage,
        "role": record.role,
        "provider": record.provider,
        "model": record.model,
        "attempts": record.attempts,
        "handovers": record.handovers,
        "latency_ms": round(record.latency_ms, 1),
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost_usd": record.cost_usd,
        "status": record.status,
        "note": record.note,
        "error": record.error,
        "resumed": record.restored,
    }


def _status_text(record: TaskRecord) -> str:
    text = record.note if record.status == "ok" and record.note else record.status
    if record.status in ("failed", "blocked") and record.note:
        text = f"{record.status} ({record.note})"
    return f"{text} (earlier)" if record.restored else text


class ProgressDisplay(EngineObserver):
    """Engine observer and event sink that shows progress on stderr."""

    def __init__(self, *, live: bool | None = None, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._records: dict[str, TaskRecord] = {}
        self._current_provider: dict[str, str] = {}
        self._live: Any = None
        self._started = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._started = time.monotonic()
        if not self.live:
            return
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream)
        self._live = Live(
            get_renderable=self._render, console=console, refresh_per_second=8, transient=True
        )
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the live view while the user answers a question."""
        live = self._live
        if live is not None:
            live.stop()
        try:
            yield
        finally:
            if live is not None:
                live.start()

    def message(self, text: str) -> None:
        """A line for the user (above the live view on a terminal)."""
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    # -- engine observer and event sink --------------------------------------------------

    def tasks_added(self, records: Sequence[TaskRecord]) -> None:
        with self._lock:
            for record in records:
                self._records[record.name] = record

    def task_started(self, record: TaskRecord) -> None:
        with self._lock:
            self._records[record.name] = record

    @property
    def finished_tasks(self) -> int:
        """Tasks finished successfully so far (this run or an earlier one of it)."""
        with self._lock:
            return sum(1 for r in self._records.values() if r.status == "ok")

    def task_finished(self, record: TaskRecord) -> None:
        with self._lock:
            self._records[record.name] = record
            self._current_provider.pop(record.name, None)
            done, total = self._count(record.stage)
        if record.restored and record.status == "ok":
            return
        if self.live and record.status != "failed":  # the live view shows the rest
            return
        line = f"{_task_line(record)}  ({done}/{total})"
        if record.error and record.status != "ok":
            for error_line in visible(record.error, newlines=True).splitlines():
                line += f"\n    {error_line}"
        self.message(line)

    def emit(self, event: Event) -> None:
        if isinstance(event, AttemptEvent):
            kind = event.error_kind.value if event.error_kind else ""
            if event.outcome == "ok":
                text = f"{event.provider} answered"
            elif event.outcome == "retry":
                text = f"{event.provider}: {kind}, retrying"
            else:
                text = f"{event.provider}: {kind}, handed over"
            with self._lock:
                self._current_provider[event.task_id] = text

    # -- rendering -----------------------------------------------------------------------

    def _count(self, stage: str | None) -> tuple[int, int]:
        same = [r for r in self._records.values() if r.stage == stage]
        return sum(1 for r in same if r.finished), len(same)

    def _render(self) -> Any:
        from rich.table import Table

        with self._lock:
            records = list(self._records.values())
            providers = dict(self._current_provider)
        elapsed = time.monotonic() - self._started
        table = Table.grid(padding=(0, 2))
        table.add_row(f"[bold]rolecall run[/]  {elapsed:5.1f}s")
        for stage in STAGES:
            same = [r for r in records if r.stage == stage]
            if same:
                done = sum(1 for r in same if r.finished)
                failed = sum(1 for r in same if r.status in ("failed", "blocked"))
                extra = f"  [red]{failed} failed[/]" if failed else ""
                table.add_row(f"{stage:<9} {done}/{len(same)} done{extra}")
        rows = Table.grid(padding=(0, 2))
        running = [r for r in records if r.status == "running"]
        for record in running[:8]:
            now = providers.get(record.name, "calling...")
            rows.add_row(f"[cyan]{_markup(record.name)}[/]", _markup(record.role), _markup(now))
        if len(running) > 8:
            rows.add_row(f"... {len(running) - 8} more running", "", "")
        recent = sorted(
            (r for r in records if r.finished and not r.restored and r.finished_at),
            key=lambda r: r.finished_at or 0.0,
        )[-5:]
        for record in recent:
            style = "red" if record.status in ("failed", "blocked") else "green"
            rows.add_row(
                _markup(record.name),
                _markup(record.role),
                f"{_markup(record.provider or '-')}  [{style}]{_markup(_status_text(record))}[/]",
            )
        table.add_row(rows)
        return table


def _task_line(record: TaskRecord) -> str:
    """One task on one line, for logs and narrow terminals."""
    parts = [f"[{record.stage or '-'}] {record.name}: {_status_text(record)}"]
    if record.provider:
        parts.append(f"{record.role} via {record.provider}")
    if record.attempts:
        handed = f", {record.handovers} handover(s)" if record.handovers else ""
        parts.append(f"{record.attempts} attempt(s){handed}")
    if record.calls:
        parts.append(f"{record.latency_ms / 1000:.2f}s")
        parts.append(f"{record.input_tokens}+{record.output_tokens} tok")
    return visible("  ".join(parts))


def _markup(text: str | None) -> str:
    """``text`` for a place rich reads markup in: shown as written."""
    from rich.markup import escape

    return escape(visible(text or ""))


def _summary_row(record: TaskRecord) -> tuple[Text, ...]:
    status = _status_text(record)
    if record.handovers:
        status += f", {record.handovers} handover(s)"
    from rich.text import Text

    cells = (
        record.name,
        record.stage or "",
        record.role or "",
        record.provider or "-",
        str(record.attempts) if record.attempts else "-",
        f"{record.latency_ms / 1000:.2f}s" if record.calls else "-",
        f"{record.input_tokens}+{record.output_tokens}" if record.calls else "-",
        status,
    )
    return tuple(Text(visible(cell)) for cell in cells)


def render_summary(records: Sequence[TaskRecord], stream: IO[str] | None = None) -> None:
    """The summary table: task, stage, role, provider, attempts, latency, tokens, status."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out = stream or sys.stdout
    console = Console(file=out, width=None if out.isatty() else 160)
    rows = [_summary_row(record) for record in records]
    if console.width < 100:  # too narrow for eight columns: one line per task
        for record in records:
            console.print(_task_line(record), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("task", overflow="fold", min_width=12)
    for column in ("stage", "role", "provider"):
        table.add_column(column, no_wrap=True)
    for column in ("attempts", "latency", "tokens"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", overflow="fold", min_width=10)
    for record, row in zip(records, rows, strict=True):
        table.add_row(*row, style="red" if record.status in ("failed", "blocked") else None)
    console.print(table)
