"""The reading half of every metrics store: metrics, trends and advice from the rollups,
and the runs (their summaries, and one run's tasks and attempts from the raw rows).

Backends supply ``_read``; :class:`~rolecall.recording.store.base.MetricsStore` adds the
writing half.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from rolecall.recording.store import StoreError
from rolecall.recording.store.advise import advise as _advise
from rolecall.recording.store.queries import RollupRange, fold_metrics, fold_trend, plan, select_sql
from rolecall.recording.store.rollups import DAY, HOUR
from rolecall.recording.store.rows import (
    Advice,
    MetricsRow,
    RunDetail,
    RunSummary,
    TrendRow,
    build_tasks,
)
from rolecall.recording.store.run_page import run_meta_of, run_records
from rolecall.recording.store.starts import start_records
from rolecall.recording.store.statements import RUN_COLUMNS

__all__ = ["StoreReading", "TimeArg"]

TimeArg = float | datetime | None


def _epoch(value: TimeArg) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return value.timestamp()


class StoreReading:
    """Queries over the rollups and the raw rows; all methods are thread-safe."""

    label: str  # the store as errors name it

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one query (``?`` placeholders)."""

    def _rollup_rows(
        self, ranges: Sequence[RollupRange], provider: str | None, role: str | None
    ) -> Iterator[tuple[Any, ...]]:
        for part in ranges:
            sql, params = select_sql(part, provider, role)
            yield from self._read(sql, params)

    def metrics(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        provider: str | None = None,
        role: str | None = None,
        group_by: Sequence[str] = ("provider", "role"),
    ) -> list[MetricsRow]:
        """Totals per group over [since, until) (hour resolution), from the rollups only."""
        ranges = plan(_epoch(since), _epoch(until))
        return fold_metrics(self._rollup_rows(ranges, provider, role), group_by)

    def trend(
        self,
        bucket: Literal["hour", "day"] = "day",
        since: TimeArg = None,
        until: TimeArg = None,
        provider: str | None = None,
        role: str | None = None,
        group_by: Sequence[str] = ("provider", "role"),
    ) -> list[TrendRow]:
        """Metrics per UTC hour or day bucket, oldest first."""
        if bucket not in ("hour", "day"):
            raise ValueError("bucket must be 'hour' or 'day'")
        step = HOUR if bucket == "hour" else DAY
        lo, hi = _epoch(since), _epoch(until)
        part = RollupRange(
            "rollup_hourly" if bucket == "hour" else "rollup_daily",
            bucket,
            None if lo is None else int(lo // step) * step,
            None if hi is None else int(-(-hi // step)) * step,
        )
        return fold_trend(self._rollup_rows([part], provider, role), group_by, step)

    def advise(
        self, min_requests: int = 20, since: TimeArg = None, until: TimeArg = None
    ) -> list[Advice]:
        return _advise(self.metrics(since, until), min_requests)

    def runs(self, limit: int = 20) -> list[RunSummary]:
        """The most recent runs first, from the runs summary table."""
        rows = self._read(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs "
            "ORDER BY started_at DESC, run_id DESC LIMIT ?",
            (int(limit),),
        )
        return [RunSummary.from_row(row) for row in rows]

    def find_runs(self, prefix: str, limit: int = 2) -> list[str]:
        """Run ids equal to ``prefix``, else starting with it (at most ``limit``)."""
        exact = self._read("SELECT run_id FROM runs WHERE run_id = ?", (prefix,))
        if exact:
            return [str(exact[0][0])]
        rows = self._read(
            "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT ?",
            (len(prefix), prefix, int(limit)),
        )
        return [str(row[0]) for row in rows]

    def run_meta(self, run_id: str) -> dict[str, Any]:
        """The meta a run was started with (the process writing it among it); {} if none."""
        rows = self._read("SELECT meta FROM runs WHERE run_id = ?", (run_id,))
        return run_meta_of(rows[0][0]) if rows else {}

    def run(self, run_id: str, last_tasks: int | None = None) -> RunDetail | None:
        """One run with every task and attempt (raw rows), or None.

        ``last_tasks``: of a run with more tasks, only its newest ``last_tasks`` (and
        those in flight), read without the rest; ``tasks_total`` then says how many it has.
        """
        head = self._read(
            "SELECT kind, status, started_at, finished_at, meta, tasks FROM runs WHERE run_id = ?",
            (run_id,),
        )
        if not head:
            return None
        kind, status, started_at, finished_at, meta, total = head[0]
        records, whole = run_records(self._read, run_id, last_tasks)
        records += start_records(self._read, run_id)
        try:
            tasks = build_tasks(records, run_open=status == "running")
            tasks_total = None if whole else int(total)
        except (ValueError, TypeError) as exc:  # a row rolecall did not write
            raise StoreError(
                f"cannot read run {run_id!r} from the metrics store {self.label}: a row holds"
                f" what rolecall never writes ({exc}); another program wrote it or the store"
                " is damaged: check it with `sqlite3 FILE 'PRAGMA integrity_check'`"
            ) from exc
        return RunDetail(
            run_id=run_id,
            kind=str(kind),
            status=str(status),
            started_at=started_at,
            finished_at=finished_at,
            tasks=tasks,
            meta=run_meta_of(meta),
            tasks_total=tasks_total,
        )
