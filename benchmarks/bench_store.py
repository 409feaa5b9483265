"""Metrics store benchmark: query time at millions of recorded calls, recording cost per call.

Bulk-loads N synthetic attempt events (providers x roles x 30 days, with faults, retries
and hand-overs) through ``MetricsStore.record`` -- raw rows plus rollups, in the same
transactions as in production -- then times every ``metrics`` grouping and filter,
trends, advice and the runs list (median of --repeat runs; target 100 ms, limit 2 s).
Finally it times recording through the :class:`~rolecall.recording.recorder.Recorder`: the
caller's cost of ``emit`` and the amortized cost of emit + background flush to SQLite
and the JSONL run log.

    python benchmarks/bench_store.py --calls 1000000
    python benchmarks/bench_store.py --calls 10000000 --postgres postgresql://u:p@127.0.0.1/db

Query figures at 10,000,000 calls, 2026-12-08, SQLite and PostgreSQL 15 on the 2-core
machine under a load of 5-6 from other jobs (machine reference 0.07-0.16 s): before and
after the rollup fold below, 3 runs each, alternating, of

    python benchmarks/bench_store.py --db /tmp/b10m.db --reuse --calls 10000000 \
        --recorder-calls 0 --repeat 5 --postgres URL

ms, median of the runs' medians [min-max]; every other query was within the spread:

    query                          SQLite before     after          PostgreSQL before  after
    trend --bucket hour (720 h)    861 [621-869]   453 [427-634]   892 [870-1003]  668 [477-734]
    trend hour (720 h) by model    924 [748-1213]  504 [437-601]   699 [493-911]   617 [310-706]
    trend hour (720 h) by role     616 [396-673]   399 [365-461]   422 [241-471]   393 [250-465]
    trend hour (720 h) --provider  191 [118-217]   103 [45-160]    160 [91-237]    151 [100-205]
    trend --bucket day (30 days)    32 [10-53]      14 [14-21]      48 [31-66]      16 [10-60]

In CPU time (``time.process_time``, which the load moves less), ``trend("hour")`` over the
720 hours (11,520 rows) went from 345 to 200-210 ms. The fold no longer builds a
``Rollup`` and a ``DenseHistogram`` per group: histograms stay the arrays they decode to
(``tolist`` was a third of decoding), a group of one row (each row of an hourly trend by
provider and role) reads its percentiles from its own array, and the keys sort as they are.
What is left, per row: the percentiles' running sums (~4 us), building the frozen
``MetricsRow`` (~2.5 us), reading the row (~2.3 us), decoding (~1 us), errors JSON (~1 us).
``rolecall metrics trend --bucket hour --since 30d`` at 10M: the table printed in one write
(echo flushed each of its 11,520 lines) took 1.25-1.6 s instead of 2.0-2.4 s under the same
load. With ``--json`` about 0.6 s of the command's CPU is writing the JSON (``to_dict``,
the pass that makes non-finite numbers null, and json's indented encoder, which has no C
path), three times the query's.

``--gateway-tasks N`` also records one gateway run of N tasks and times reading it: its
newest 1000 tasks (what the dashboard's run page asks for) and the whole run (``runs
show``). 2026-12-07, loaded machine (reference 0.33 s), N = 100,000 (a gateway run's
most before it rolls over): newest 1000 in 0.30 s, the whole run in 12.3 s (the process
peaked at 335 MB). At N = 1,000,000: newest 1000 in 1.0-1.3 s (``/api/runs/RUN``, 70 MB
peak); ``rolecall runs show RUN --json`` took 324 s and 7 GB, the table 139 s and 3 GB.

Not a test: it prints figures. Each recorder round also checks that every event emitted
before ``close`` is a store row and a run-log line ("nothing lost"), and stops if not.

Recorder figures, 2026-12-07 (third sitting): a task its first attempt answered now
shares that attempt's run-log line and its store row (below), run deltas are summed by
comprehensions. Main before and after alternating round by round, 5 rounds each of
``--rounds 1 --load 2`` (machine reference 0.11-0.19 s), us per gateway call, median
[min-max]:

    workload                          before              after
    gateway calls, quiet        20.5 [14.0-26.2]      12.7 [10.0-18.1]
    gateway calls, --load 2     22.8 [19.9-30.5]      25.4 [18.6-28.8]
    gateway calls, CPU, load    13.8 [11.7-18.4]      14.5 [13.2-17.7]

Under load the two cannot be told apart in 5 rounds (each figure moves by a third from
round to round); two measures that do not move with the load agree on the gain:
callgrind (command below) 112.4k instructions per gateway call before, 92.3k after
(-18%); the write path alone (every call queued, then ``close`` in the calling thread,
30,000 calls, 2 busy processes) 15.3-16.3 us of CPU before, 11.6-13.6 after. Through
the writer process of ``serve --workers`` (``bench_relay.py --calls 100000 --rounds 2
--load 2``, twice each, alternating): the writer's CPU 29.5-31.7 us per call before,
20.5-21.1 after, and the wall until everything is written 64-67 us before, 47-50 after.
The target (20 us under load) is still not met by the median here.

What changed:

- One line and one row for a task answered at its first call
  (``events.answered_at_once``: every plain gateway call). The task's line ends with
  ``attempt_latency_ms`` and ``attempt_ts``, the only fields of its attempt it does not
  repeat, and the task's row holds the same two columns (schema 5); the attempt gets no
  row of its own. ``read_run``, the store's ``run()`` and the ``all_attempts`` view give
  the attempt back; rows and lines written before stay as they are.
- The writer process rebuilds events with code compiled from the dataclass's fields (a
  tuple unpacked into the slots) instead of a descriptor call per field: 9.5 -> 3.6 us
  per call.
- Run deltas: one comprehension per sum over the batch (mostly one run), 0.85 -> 0.39
  us per call.

Recorder figures, 2026-12-07 (second sitting), on the 2-core development machine shared
with other jobs (the machine reference read 0.10-0.21 s during the rounds; 0.10-0.12 s on
a quiet day), 100,000 calls, 64 tasks on one event loop, SQLite + JSONL run log, orjson
installed. us per call (wall: emit + flush + close, minus the loop alone; CPU: all
threads), median [min-max] of 6 rounds, main and this branch alternating round by round,
each round

    python benchmarks/bench_store.py --calls 0 --recorder-calls 100000 --rounds 1 --load 2

    workload                          main                branch
    attempts, quiet             12.2 [10.3-17.4]      14.0 [10.1-14.7]
    attempts, --load 2          19.1 [12.4-21.0]      14.6 [10.9-19.4]
    gateway calls, quiet        21.6 [20.2-27.2]      17.3 [14.3-24.1]
    gateway calls, --load 2     38.0 [25.7-47.2]      32.9 [24.3-42.8]
    gateway calls, CPU, quiet   21.1 [19.6-26.5]      16.7 [13.7-23.1]
    gateway calls, CPU, load    26.9 [16.7-30.3]      19.3 [14.6-25.3]

The same command later that day on merged main with a quieter machine (machine reference
0.13-0.20 s; ``--rounds 5 --load 2``): attempts 8.1 quiet, 12.2 [9.4-13.3] under load;
gateway calls 17.1 quiet, 22.4 [19.9-27.2] under load, CPU 14.8 [13.0-15.0] under load.
(Morning, before these changes, same command: gateway calls 23.6 quiet, 42.9 [41.2-48.4]
under load, CPU 27.1.)

"attempts" (one attempt event per call) is the measure of issue 21's 10.4 us quiet and
22-45 us under load, and meets <= 20 us under load. "gateway calls" (an attempt and a
task event per call, what a gateway request records) does not: about 28% less CPU than
main, but 20 us under load would take about 12 us of CPU (three busy processes on two
cores give each about 60% of a core). What this branch changed, and why:

- A flush writes what is queued in parts of 4096 items (each its run-log lines and one
  store transaction), and each multi-row INSERT builds its own rows' values: half a
  second of a busy gateway made lists of 30,000 items and, for the store, of 500,000
  values, which every young-generation collection (set off all the time by the event
  loop's own allocations) traversed while they lived. Most of the CPU saved is here; it
  does not show in instruction counts below, whose batches are small.
- Run-log lines: orjson writes one dict per event type, refilled for each line (the
  keys stay, only the values change), instead of a new dict built and freed per line.
- The recorder dispatches events by exact type (``isinstance`` with ``A | B`` built a
  union object per item) and hands the store its attempts and tasks already split.
- SQLite binds the mostly NULL text columns (error kind, error, stage, dialect) as 0
  through ``NULLIF(?, 0)``: the sqlite3 module binds None only after an adapter lookup
  (about 1,300 instructions, an int about 170); no text equals an int, so every string
  is stored as it is.

Callgrind (``_recorder_workload.py --calls 10000 --batch 500``, recording minus
``--generate-only``, PYTHONHASHSEED=0): main 123k instructions per gateway call, this
branch 112k; without the one-time imports and store opening (10,200 minus 200 calls)
112k and 101k. Where the branch's 101k go: SQLite's execute 39k (binding 16k, of which
the 13 strings 10.5k: SQLite copies each one, under its mutex; stepping 19k, of which
the four index entries of the two rows 9k), the two run-log lines 31k (orjson 9k,
refilling the dicts 8k), hourly and daily rollups 7k, run deltas 4k, row values 3k, the
recorder's loop the rest. What is left is spread thin over per-field Python work
(each of an event's ~16 fields is read for its line, its row, the rollups and the run
deltas) and SQLite's per-value binding; halving it needs a change of what is stored.
Tried and not kept: SQLite reading the rows from the run log's JSON (``json_each``
with ``->>``: 2.5-5x slower than binding, SQLite 3.40 parses each object once per
field), rows rebuilt from orjson's array of an event's values (splitting and formatting
cost more than the dict), orjson on the slotted dataclass itself (1.5x the dict).
Earlier attempts: ``attrgetter``/``map`` passes instead of Python loops (3.11
specializes slot reads; ``attrgetter`` takes the generic attribute lookup), histogram
buckets by ``map(ceil, map(mul, map(log, ...)))`` instead of a comprehension, rows cut
into 256-row INSERTs instead of 32, orjson's ``OPT_APPEND_NEWLINE`` (its keyword
argument costs more than the separate newline), an f-string line with only the floats
written by orjson. Measured, not taken: dropping the ``ts`` indexes of attempts and
tasks saves 3.5k per call, but ``prune`` (retention) needs them to avoid scanning the
tables. Not tried: one combined router event for a one-attempt task (it would also save
building the attempt event on the request path, 1.4 us).

Query times at 1,000,000 calls (``--calls 1000000 --recorder-calls 0 --repeat 5``) are
unchanged (same schema and queries; every figure within the run-to-run spread), and the
bulk load went from 132,000 to 155,000 calls/s.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _recorder_workload import (
    RUN_ID,
    attempt_calls,
    busy_processes,
    gateway_events,
    record_from_loop,
    recorded,
)

from rolecall.recording.store import MetricsStore, open_store
from rolecall.recording.store.synthetic import synthetic_attempts

END = 1_767_225_600.0  # the synthetic history ends 2026-01-01T00:00:00Z
TARGET_S = 0.100
LIMIT_S = 2.0


def load(store: MetricsStore, calls: int, batch: int) -> float:
    """Record ``calls`` synthetic attempts; returns seconds spent inside ``record``."""
    events = synthetic_attempts(calls, end=END, days=30)
    spent = 0.0
    done = 0
    shown = time.monotonic()
    while True:
        chunk = list(itertools.islice(events, batch))
        if not chunk:
            break
        started = time.perf_counter()
        store.record(chunk)
        spent += time.perf_counter() - started
        done += len(chunk)
        if time.monotonic() - shown > 10:
            shown = time.monotonic()
            print(f"  loaded {done:,} / {calls:,} ({done / spent:,.0f} calls/s)", flush=True)
    return spent


def queries(store: MetricsStore) -> list[tuple[str, Callable[[], Any]]]:
    week, day = END - 7 * 86400, END - 86400
    return [
        ("metrics by provider,role", lambda: store.metrics()),
        ("metrics by provider", lambda: store.metrics(group_by=("provider",))),
        ("metrics by role", lambda: store.metrics(group_by=("role",))),
        ("metrics by model", lambda: store.metrics(group_by=("model",))),
        ("metrics by provider,role,model", lambda: store.metrics(group_by=_ALL)),
        ("metrics, no grouping", lambda: store.metrics(group_by=())),
        ("metrics --since 7d", lambda: store.metrics(since=week - 1800)),
        ("metrics --since 24h", lambda: store.metrics(since=day - 1800)),
        ("metrics --since 7d --until 1d", lambda: store.metrics(since=week - 1800, until=day)),
        ("metrics --provider gpt", lambda: store.metrics(provider="gpt")),
        ("metrics --role coder", lambda: store.metrics(role="coder")),
        (
            "metrics --provider --role --since 7d",
            lambda: store.metrics(since=week - 1800, provider="gpt", role="coder"),
        ),
        ("trend --bucket day (30 days)", lambda: store.trend("day", since=END - 30 * 86400)),
        ("trend --bucket hour (48 h)", lambda: store.trend("hour", since=END - 48 * 3600)),
        ("trend --bucket hour (all 720 h)", lambda: store.trend("hour")),
        (
            "trend --bucket hour (720 h) --provider",
            lambda: store.trend("hour", provider="gpt"),
        ),
        (
            "trend --bucket hour (720 h) by model",
            lambda: store.trend("hour", group_by=_ALL),
        ),
        ("trend --bucket hour (720 h) by role", lambda: store.trend("hour", group_by=("role",))),
        ("advise", lambda: store.advise()),
        ("runs list", lambda: store.runs(20)),
    ]


_ALL = ("provider", "role", "model")


def time_queries(store: MetricsStore, repeat: int) -> list[tuple[str, float, float, int]]:
    results = []
    for name, query in queries(store):
        times = []
        rows = 0
        for _ in range(repeat):
            started = time.perf_counter()
            rows = len(query())
            times.append(time.perf_counter() - started)
        results.append((name, statistics.median(times), max(times), rows))
    return results


Figures = tuple[float, float, float]  # seconds per call: loop alone, recording wall, CPU


def time_recorder(calls: int, workdir: Path, rounds: int) -> dict[str, list[Figures]]:
    """Per workload, the figures of each round, every round into a fresh store and log.

    Recording's cost is the time (and CPU) of the event loop emitting into a recorder,
    through ``close``, minus that of the same loop emitting into a disabled one.
    """
    workloads = {
        "attempts": (attempt_calls(calls), 1, None),
        "gateway": (gateway_events(calls), 2, RUN_ID),
    }
    results: dict[str, list[Figures]] = {name: [] for name in workloads}
    for _ in range(rounds):
        for name, (events, per_call, run_id) in workloads.items():
            alone_wall, alone_cpu = record_from_loop(events, per_call, None, run_id=run_id)
            with tempfile.TemporaryDirectory(dir=workdir) as round_dir:
                wall, cpu = record_from_loop(events, per_call, Path(round_dir), run_id=run_id)
                rows, lines = recorded(Path(round_dir))
            if rows != len(events) or lines != len(events):
                raise SystemExit(
                    f"{name}: {len(events):,} events emitted before close, but {rows:,} rows "
                    f"in the store and {lines:,} lines in the run log"
                )
            results[name].append((alone_wall, wall - alone_wall, cpu - alone_cpu))
    return results


def _spread(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 1e6:6.2f} [{min(values) * 1e6:5.2f}-"
        f"{max(values) * 1e6:5.2f}]"
    )


def report_recorder(calls: int, rounds: int, runs: dict[str, dict[str, list[Figures]]]) -> None:
    print()
    print(
        f"Recorder, {calls:,} calls emitted from an event loop (64 tasks) into SQLite + the "
        f"JSONL run log;\nus per call, median [min-max] of {rounds} rounds "
        f"(target: recording <= 20 us under load):"
    )
    print(f"{'':44}" + "".join(f"{label:>26}" for label in runs))
    rows = [
        ("attempts", 0, "event loop alone (events dropped)"),
        ("attempts", 1, "recording: emit + flush + close"),
        ("attempts", 2, "recording: CPU (all threads)"),
        ("gateway", 1, "gateway calls: emit + flush + close"),
        ("gateway", 2, "gateway calls: CPU (all threads)"),
    ]
    for workload, column, label in rows:
        cells = "".join(
            f"{_spread([r[column] for r in by_workload[workload]]):>26}"
            for by_workload in runs.values()
        )
        print(f"  {label:42}{cells}")
    print("  (attempts: one attempt event per call; gateway calls: an attempt and a task event)")
    print("  nothing lost: every event emitted before close was a row and a run-log line")


def report(
    label: str, calls: int, load_s: float | None, rows: list[tuple[str, float, float, int]]
) -> None:
    print()
    if load_s is not None:
        print(f"{label}: loaded {calls:,} calls in {load_s:.1f} s ({calls / load_s:,.0f} calls/s)")
    else:
        print(f"{label}: {calls:,} calls (reused)")
    print(f"{'query':40} {'median':>10} {'max':>10} {'rows':>6}  verdict")
    for name, median, worst, count in rows:
        verdict = "ok" if median <= TARGET_S else ("slow" if median <= LIMIT_S else "OVER LIMIT")
        print(f"{name:40} {median * 1000:8.1f}ms {worst * 1000:8.1f}ms {count:6d}  {verdict}")


def machine_reference() -> float:
    """Seconds for a fixed pure-Python loop: compare figures across machines and load."""
    started = time.perf_counter()
    total = 0
    for value in range(3_000_000):
        total += value
    return time.perf_counter() - started


def time_gateway_run(store: MetricsStore, tasks: int, batch: int) -> None:
    """Record one gateway run of ``tasks`` calls (an attempt and a task event each), then
    time reading its newest 1000 tasks (the dashboard's run page) and all of it."""
    started = time.perf_counter()
    for start in range(0, tasks, batch):
        events = gateway_events(min(batch, tasks - start), end=END - (tasks - start) * 0.05)
        store.record(
            [replace(e, task_id=f"{start}-{e.task_id}") for e in events]  # unique ids
        )
    print(f"\ngateway run: {tasks:,} tasks recorded in {time.perf_counter() - started:.1f} s")
    for label, last in (("newest 1000 tasks (/api/runs/RUN)", 1000), ("every task", None)):
        started = time.perf_counter()
        run = store.run(RUN_ID, last_tasks=last)
        took = time.perf_counter() - started
        print(f"  run {label:36} {took * 1000:9.1f}ms  {len(run.tasks) if run else 0:,} tasks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=10_000_000, help="calls to load (0: recorder only)"
    )
    parser.add_argument("--batch", type=int, default=50_000, help="calls per record() batch")
    parser.add_argument("--repeat", type=int, default=7, help="runs per query (median)")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="query an already loaded --db")
    parser.add_argument("--postgres", metavar="URL", help="also benchmark this PostgreSQL URL")
    parser.add_argument(
        "--recorder-calls", type=int, default=200_000, help="calls emitted through the Recorder"
    )
    parser.add_argument("--rounds", type=int, default=5, help="recorder rounds (median)")
    parser.add_argument(
        "--gateway-tasks",
        type=int,
        default=0,
        metavar="N",
        help="also record one gateway run of N tasks and time reading it (0: not)",
    )
    parser.add_argument(
        "--load",
        type=int,
        default=2,
        metavar="N",
        help="also time the recorder while N busy gateway-like processes run (0: quiet only)",
    )
    args = parser.parse_args(argv)

    print(f"machine reference: 3M-iteration Python loop in {machine_reference():.3f} s")
    with tempfile.TemporaryDirectory(prefix="rolecall-bench-") as tmp:
        workdir = Path(tmp)
        db = args.db or workdir / "bench.db"
        if args.db and not args.reuse and db.exists():
            print(f"{db} exists: pass --reuse to query it, or remove it", file=sys.stderr)
            return 2
        if args.calls > 0 or args.reuse:
            print(f"SQLite {db}", flush=True)
            store = open_store(f"sqlite:///{db.resolve()}")
            load_s = None if args.reuse else load(store, args.calls, args.batch)
            report("SQLite", args.calls, load_s, time_queries(store, args.repeat))
            if args.gateway_tasks > 0:
                time_gateway_run(store, args.gateway_tasks, args.batch)
            store.close()

        if args.postgres and (args.calls > 0 or args.reuse):
            print("\nPostgreSQL (schema rolecall_bench)", flush=True)
            pg_url = _bench_schema(args.postgres, keep=args.reuse)
            store = open_store(pg_url)
            load_s = None if args.reuse else load(store, args.calls, args.batch)
            report("PostgreSQL", args.calls, load_s, time_queries(store, args.repeat))
            store.close()

        if args.recorder_calls > 0:
            runs = {"no load": time_recorder(args.recorder_calls, workdir, args.rounds)}
            if args.load > 0:
                with busy_processes(args.load):
                    runs[f"load {args.load}"] = time_recorder(
                        args.recorder_calls, workdir, args.rounds
                    )
            report_recorder(args.recorder_calls, args.rounds, runs)
    print(f"machine reference: 3M-iteration Python loop in {machine_reference():.3f} s")
    return 0


def _bench_schema(url: str, keep: bool) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if not keep:
            conn.execute("DROP SCHEMA IF EXISTS rolecall_bench CASCADE")
        conn.execute("CREATE SCHEMA IF NOT EXISTS rolecall_bench")
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3Drolecall_bench"


if __name__ == "__main__":
    sys.exit(main())
