"""The recorder: nothing lost on close, exit or signal; kills cost at most one interval;
a failing sink is reported once and never reaches the caller."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import T0, attempt_event, task_event
from rolecall.config.schema import MetricsConfig
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent
from rolecall.recording import recorder as recorder_module
from rolecall.recording import runlog
from rolecall.recording.recorder import Recorder
from rolecall.recording.runlog import read_run, run_log_path
from rolecall.recording.store import open_store


def _config(tmp_path: Path, **overrides: object) -> MetricsConfig:
    values: dict[str, object] = {
        "url": f"sqlite:///{tmp_path / 'm.db'}",
        "runs_dir": str(tmp_path / "runs"),
        "flush_interval": 0.05,
    }
    values.update(overrides)
    return MetricsConfig.model_validate(values)


def _attempt(run_id: str, task_id: str, n: int = 1, outcome: str = "ok") -> AttemptEvent:
    return attempt_event(
        run_id=run_id,
        task_id=task_id,
        role="coder",
        provider="gpt",
        model="g",
        attempt=n,
        outcome=outcome,
        error_kind=None if outcome == "ok" else ErrorKind.SERVER,
        latency_ms=10.0 + n,
        input_tokens=3,
        output_tokens=4,
    )


def _log_types(path: Path) -> list[str]:
    """The types of a run log's records as its reader gives them back (a task its first
    attempt answered shares that attempt's line)."""
    return [record["type"] for record in runlog._records(path)[0]]


async def test_no_event_lost_from_256_concurrent_tasks(tmp_path: Path) -> None:
    recorder = Recorder(_config(tmp_path), install_signal_handlers=False)
    total, workers = 20_000, 256
    runs = [f"run-{k:02d}" for k in range(16)]
    for run_id in runs:
        recorder.start_run(run_id, "workflow")

    async def worker(index: int) -> tuple[int, int]:
        count = total // workers + (1 if index < total % workers else 0)
        run_id = runs[index % len(runs)]
        for n in range(count - 1):
            recorder.emit(_attempt(run_id, f"task-{index}", n + 1, "retry" if n % 3 else "ok"))
            if n % 7 == 0:
                await asyncio.sleep(0)
        recorder.emit(
            task_event(
                run_id=run_id,
                task_id=f"task-{index}",
                role="coder",
                provider="gpt",
                model="g",
                attempts=count - 1,
                latency_ms=1.0,
            )
        )
        return count - 1, 1

    counts = await asyncio.gather(*(worker(i) for i in range(workers)))
    for run_id in runs:
        recorder.finish_run(run_id, "ok")
    recorder.close()
    attempts = sum(a for a, _ in counts)
    assert attempts + sum(t for _, t in counts) == total

    with open_store(_config(tmp_path).url) as store:
        assert sum(row.requests for row in store.metrics()) == attempts
        summaries = store.runs(limit=100)
        assert sum(s.attempts for s in summaries) == attempts
        assert sum(s.tasks for s in summaries) == workers
        assert {s.status for s in summaries} == {"ok"}
        assert store._read("SELECT COUNT(*) FROM all_attempts")[0][0] == attempts
    logged = [t for run_id in runs for t in _log_types(run_log_path(tmp_path / "runs", run_id))]
    assert logged.count("attempt") == attempts and logged.count("task") == workers
    assert logged.count("run_start") == logged.count("run_end") == len(runs)


_KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    from rolecall.config.schema import MetricsConfig
    from factories import attempt_event
    from rolecall.recording.recorder import Recorder
    recorder = Recorder(MetricsConfig(url=sys.argv[1], runs_dir=sys.argv[2],
                                      flush_interval=float(sys.argv[3])))
    recorder.start_run("killed", "workflow")
    n = 0
    while True:
        for _ in range(20):
            n += 1
            recorder.emit(attempt_event(run_id="killed", task_id=f"t{n}", model="g",
                                  latency_ms=5.0, input_tokens=1, output_tokens=1, ts=time.time()))
        print(n, flush=True)
        time.sleep(0.002)
    """
)


def _stored_attempts(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=30)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM all_attempts").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet
        return 0


# Child processes build events with tests/factories.py.
_CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")) if p
    ),
}


def test_sigkill_mid_recording_keeps_every_flushed_batch(tmp_path: Path) -> None:
    # What a kill costs in time (at most one flush interval) is measured by
    # benchmarks/bench_kill_loss.py; here: every batch flushed before the kill survives it,
    # the store stays intact, and the run log skips at most the one line cut short.
    config = _config(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, config.url, config.runs_dir, "0.05"],
        env=_CHILD_ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    db = tmp_path / "m.db"
    try:
        for line in child.stdout:  # wait until several batches are in the store
            if int(line) > 2000 and _stored_attempts(db) > 1000:
                break
        flushed = _stored_attempts(db)  # committed before the kill
        child.send_signal(signal.SIGKILL)
        emitted = max((int(line) for line in child.stdout), default=0)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = conn.execute("SELECT COUNT(*) FROM all_attempts").fetchone()[0]
        rollup = conn.execute("SELECT SUM(requests) FROM rollup_hourly").fetchone()[0]
        status = conn.execute("SELECT status FROM runs WHERE run_id='killed'").fetchone()[0]
    finally:
        conn.close()
    assert 1000 < flushed <= stored
    assert emitted == 0 or stored <= emitted + 20
    assert rollup == stored  # raw rows and rollups were committed together
    assert status == "running"  # as stored; readers show it abandoned
    logged = read_run(run_log_path(tmp_path / "runs", "killed"))
    assert logged.status == "abandoned"  # its writer's lock went with the process
    assert logged.skipped_lines <= 1
    assert sum(len(t.attempts) for t in logged.tasks) >= flushed


def _run_child(
    code: str, tmp_path: Path, *, wait_for: str | None = None, send: int | None = None
) -> subprocess.CompletedProcess[str]:
    config = _config(tmp_path, flush_interval=30)  # only exit paths may flush
    child = subprocess.Popen(
        [sys.executable, "-c", code, config.url, config.runs_dir],
        env=_CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job starts with SIGINT ignored; the child must see it as a
        # terminal's Ctrl-C would.
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdout is not None
    if wait_for is not None:
        assert child.stdout.readline().strip() == wait_for
        assert send is not None
        child.send_signal(send)
    out, err = child.communicate(timeout=30)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


_EMIT_1000 = textwrap.dedent(
    """
    import os, sys, time
    from rolecall.config.schema import MetricsConfig
    from factories import attempt_event, task_event
    from rolecall.recording.recorder import Recorder
    recorder = Recorder(MetricsConfig(url=sys.argv[1], runs_dir=sys.argv[2], flush_interval=30))
    recorder.start_run("r", "workflow")
    for n in range(1000):
        recorder.emit(attempt_event(model="g", attempt=n, outcome="retry", error_kind="server",
                              latency_ms=1.0, ts=time.time()))
    recorder.emit(task_event(status="failed", provider=None, model=None, attempts=1000,
                       latency_ms=1.0, ts=time.time()))
    """
)


def _stored(tmp_path: Path) -> tuple[int, str]:
    conn = sqlite3.connect(tmp_path / "m.db")
    try:
        count = conn.execute("SELECT COUNT(*) FROM all_attempts").fetchone()[0]
        status = conn.execute("SELECT status FROM runs WHERE run_id='r'").fetchone()[0]
    finally:
        conn.close()
    return int(count), str(status)


def test_normal_exit_flushes_without_close(tmp_path: Path) -> None:
    result = _run_child(_EMIT_1000 + "\nrecorder.finish_run('r', 'failed')\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert _stored(tmp_path) == (1000, "failed")
    assert _log_types(run_log_path(tmp_path / "runs", "r")).count("attempt") == 1000


def test_sigterm_flushes_then_terminates_as_before(tmp_path: Path) -> None:
    code = _EMIT_1000 + "\nprint('ready', flush=True)\ntime.sleep(60)\n"
    result = _run_child(code, tmp_path, wait_for="ready", send=signal.SIGTERM)
    assert result.returncode == -signal.SIGTERM
    assert _stored(tmp_path) == (1000, "interrupted")


def test_sigint_flushes_and_chains_to_keyboard_interrupt(tmp_path: Path) -> None:
    code = _EMIT_1000 + textwrap.dedent(
        """
        try:
            print('ready', flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print('caught', flush=True)
            os._exit(0)  # skip atexit: the handler itself must have flushed
        """
    )
    result = _run_child(code, tmp_path, wait_for="ready", send=signal.SIGINT)
    assert result.returncode == 0 and result.stdout.strip() == "caught", result.stderr
    assert _stored(tmp_path)[0] == 1000


def test_signal_handlers_are_restored_on_close(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    recorder = Recorder(_config(tmp_path))
    assert signal.getsignal(signal.SIGTERM) == recorder._on_signal
    recorder.close()
    assert signal.getsignal(signal.SIGTERM) == before


def test_no_handlers_outside_the_main_thread(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    made: list[Recorder] = []
    thread = threading.Thread(target=lambda: made.append(Recorder(_config(tmp_path))))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) == before
    made[0].close()


def test_a_one_off_call_is_a_run_of_one_task(tmp_path: Path) -> None:
    recorder = Recorder(_config(tmp_path), install_signal_handlers=False)
    recorder.emit(_attempt("call-1", "only", 1, "retry"))
    recorder.emit(_attempt("call-1", "only", 2, "ok"))
    recorder.emit(
        task_event(
            run_id="call-1",
            task_id="only",
            role="coder",
            provider="gpt",
            model="g",
            attempts=2,
            latency_ms=25.0,
            input_tokens=3,
            output_tokens=4,
        )
    )
    recorder.close()
    with open_store(_config(tmp_path).url) as store:
        [summary] = store.runs()
        assert (summary.run_id, summary.kind, summary.status, summary.tasks) == (
            "call-1",
            "ask",
            "ok",
            1,
        )
        assert summary.finished_at is not None
    logged = read_run(run_log_path(tmp_path / "runs", "call-1"))
    assert (logged.kind, logged.status, len(logged.tasks)) == ("ask", "ok", 1)


def test_a_one_off_call_its_caller_cancelled_is_an_interrupted_run(tmp_path: Path) -> None:
    # Not failed: no provider failed it, and a run's failed tasks leave it out.
    recorder = Recorder(_config(tmp_path), install_signal_handlers=False)
    recorder.emit(attempt_event(run_id="call-1", outcome="cancelled", error_kind=None))
    recorder.emit(task_event(run_id="call-1", status="cancelled", latency_ms=100.0))
    recorder.emit(task_event(run_id="call-2", task_id="other", status="cancelled"))
    recorder.emit(task_event(run_id="call-2", task_id="next", status="failed"))
    recorder.close()
    with open_store(_config(tmp_path).url) as store:
        summaries = {s.run_id: (s.status, s.tasks, s.tasks_failed) for s in store.runs()}
        detail = store.run("call-1")
    assert summaries == {"call-1": ("interrupted", 1, 0), "call-2": ("failed", 2, 1)}
    assert detail is not None and [t.status for t in detail.tasks] == ["cancelled"]
    logged = read_run(run_log_path(tmp_path / "runs", "call-1"))
    assert (logged.status, [t.status for t in logged.tasks]) == ("interrupted", ["cancelled"])


def test_close_marks_runs_left_open_as_interrupted(tmp_path: Path) -> None:
    recorder = Recorder(_config(tmp_path), install_signal_handlers=False)
    recorder.start_run("open", "workflow", {"spec": "x.md"})
    recorder.start_run("done", "workflow")
    recorder.finish_run("done", "ok")
    recorder.close()
    with open_store(_config(tmp_path).url) as store:
        statuses = {s.run_id: s.status for s in store.runs()}
        detail = store.run("open")
    assert statuses == {"open": "interrupted", "done": "ok"}
    assert detail is not None and detail.meta["spec"] == "x.md"
    assert detail.meta["writer"]["pid"] == os.getpid()  # the process that recorded it


def test_disabled_recorder_records_nothing(tmp_path: Path) -> None:
    threads = threading.active_count()
    recorder = Recorder(_config(tmp_path, enabled=False))
    recorder.start_run("r", "ask")
    recorder.emit(_attempt("r", "t"))
    recorder.finish_run("r", "ok")
    recorder.flush()
    recorder.close()
    assert threading.active_count() == threads
    assert list(tmp_path.iterdir()) == []


def test_failing_store_warns_once_and_the_log_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-dir").write_text("")
    config = _config(tmp_path, url=f"sqlite:///{tmp_path / 'not-a-dir' / 'm.db'}")
    recorder = Recorder(config, install_signal_handlers=False)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        for n in range(3):
            recorder.emit(_attempt("r", f"t{n}"))
            recorder.flush()
        recorder.close()
    failed, lacks = [r.getMessage() for r in caplog.records if r.name == "rolecall.recorder"]
    assert "metrics store" in failed
    assert lacks.startswith("the metrics store lacks 3 calls recorded since it failed")
    assert _log_types(run_log_path(tmp_path / "runs", "r")).count("attempt") == 3


def test_a_database_of_another_application_is_left_as_it_is_and_the_log_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    recorder = Recorder(_config(tmp_path, url=f"sqlite:///{path}"), install_signal_handlers=False)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        recorder.emit(_attempt("r", "t1"))
        recorder.close()
    warning, lacks = [r.getMessage() for r in caplog.records if r.name == "rolecall.recorder"]
    assert warning.startswith(f"{path} is not a rolecall metrics store")
    assert lacks.startswith("the metrics store lacks 1 call recorded since it failed")
    assert path.read_bytes() == before
    assert _log_types(run_log_path(tmp_path / "runs", "r")).count("attempt") == 1


def test_failing_log_warns_once_and_the_store_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    recorder = Recorder(
        _config(tmp_path, runs_dir=str(tmp_path / "file" / "runs")), install_signal_handlers=False
    )
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        for n in range(3):
            recorder.emit(_attempt("r", f"t{n}"))
            recorder.flush()
        recorder.close()
    warnings = [r for r in caplog.records if r.name == "rolecall.recorder"]
    assert len(warnings) == 1 and "run log" in warnings[0].getMessage()
    with open_store(_config(tmp_path).url) as store:
        assert store.metrics()[0].requests == 3


def _wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``condition``; the timeout only stops a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_emit_does_not_wait_for_a_locked_store(tmp_path: Path) -> None:
    config = _config(tmp_path, flush_interval=0.01)
    recorder = Recorder(config, install_signal_handlers=False)
    recorder.emit(_attempt("r", "warm-up"))
    recorder.flush()  # the store exists now
    blocker = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # every writer now waits for this one
    emitted = threading.Event()
    try:
        recorder.emit(_attempt("r", "probe"))
        # The flush thread took the probe and is stuck behind the lock, holding its own.
        assert _wait_until(lambda: not recorder._buffer and recorder._write_lock.locked())

        def emit_many() -> None:
            for n in range(2_000):
                recorder.emit(_attempt("r", f"t{n}"))
            emitted.set()

        threading.Thread(target=emit_many, daemon=True).start()
        # Every emit returns while the store is still locked (the lock lasts until ROLLBACK,
        # and the store waits 30 s for it): emit never waits on the store.
        assert emitted.wait(timeout=20.0)
        assert recorder._write_lock.locked() and len(recorder._buffer) == 2_000
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    recorder.close()
    with open_store(config.url) as store:
        assert store.metrics()[0].requests == 2_002


def test_emit_after_close_is_ignored(tmp_path: Path) -> None:
    recorder = Recorder(_config(tmp_path), install_signal_handlers=False)
    recorder.close()
    recorder.emit(_attempt("late", "t"))
    recorder.close()
    assert not (tmp_path / "runs").exists()


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    config = MetricsConfig(url="sqlite:///data/m.db", runs_dir="logs", flush_interval=0.05)
    recorder = Recorder(config, base_dir=tmp_path, install_signal_handlers=False)
    recorder.emit(_attempt("r", "t"))
    recorder.close()
    assert (tmp_path / "data" / "m.db").is_file()
    assert (tmp_path / "logs" / "r.jsonl").is_file()
    assert os.getcwd() != str(tmp_path)


def test_retention_prunes_old_raw_rows_but_keeps_metrics(tmp_path: Path) -> None:
    old = time.time() - 5 * 86400
    recorder = Recorder(_config(tmp_path, retention_days=2), install_signal_handlers=False)
    recorder.emit(
        attempt_event(
            run_id="old",
            task_id="t",
            role="coder",
            provider="gpt",
            model="g",
            latency_ms=9.0,
            ts=old,
        )
    )
    recorder.emit(_attempt("new", "t"))
    recorder.close()
    with open_store(_config(tmp_path).url) as store:
        assert sum(row.requests for row in store.metrics()) == 2
        assert store._read("SELECT run_id FROM all_attempts") == [("new",)]


def test_retention_prunes_a_large_backlog_over_several_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store holding millions of old rows (retention just turned on) is pruned a part
    per flush, the records of each flush written in between, not in one long hold."""
    monkeypatch.setattr(recorder_module, "_PRUNE_PER_FLUSH", 2)
    config = _config(tmp_path).model_copy(update={"flush_interval": 3600.0})
    old = time.time() - 5 * 86400
    with open_store(config.url) as store:
        store.record([attempt_event(run_id="old", task_id=f"t{n}", ts=old) for n in range(5)])
    recorder = Recorder(
        config.model_copy(update={"retention_days": 2}), install_signal_handlers=False
    )
    left = []
    for number in range(4):
        recorder.emit(_attempt("new", f"n{number}"))
        recorder.flush()
        with open_store(config.url) as store:
            left.append(len(store._read("SELECT id FROM attempts WHERE run_id = 'old'")))
    recorder.close()
    assert left == [3, 1, 0, 0]


def test_retention_deletes_run_logs_not_written_for_that_long(tmp_path: Path) -> None:
    config = _config(tmp_path, retention_days=2)
    runs = Path(config.runs_dir)
    runs.mkdir(parents=True)
    stale = runs / "stale.jsonl"
    stale.write_text('{"type": "run_start", "run_id": "stale"}\n')
    five_days_ago = time.time() - 5 * 86400
    os.utime(stale, (five_days_ago, five_days_ago))
    recorder = Recorder(config, install_signal_handlers=False)
    recorder.emit(_attempt("fresh", "t"))
    recorder.close()
    assert sorted(p.name for p in runs.glob("*.jsonl")) == ["fresh.jsonl"]


def test_a_stray_object_does_not_cost_the_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(_config(tmp_path), install_signal_handlers=False)
    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        recorder.emit(_attempt("r", "a"))
        recorder.emit("not an event")  # type: ignore[arg-type]
        recorder.emit(_attempt("r", "b"))
        recorder.close()
    assert len([r for r in caplog.records if r.name == "rolecall.recorder"]) == 1
    with open_store(_config(tmp_path).url) as store:
        assert store.metrics()[0].requests == 2


@pytest.mark.parametrize(
    ("calls", "part"), [(1, None), (31, None), (32, None), (33, None), (100, None), (100, 7)]
)
def test_every_call_emitted_before_close_is_a_row_and_a_line(
    tmp_path: Path,
    calls: int,
    part: int | None,
    line_writer: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One flush at close (the flush thread never wakes): sizes around the 32 rows a
    multi-row INSERT takes, each call an attempt and a task, every value as emitted.
    ``part``: the flush writes that many items at a time (some parts split a call)."""
    if part is not None:
        monkeypatch.setattr(recorder_module, "_MOST_PER_WRITE", part)
    recorder = Recorder(_config(tmp_path, flush_interval=60), install_signal_handlers=False)
    recorder.start_run("gw", "gateway")
    emitted = []
    for n in range(calls):
        failed = n % 5 == 4
        attempt = attempt_event(
            run_id="gw",
            task_id=f"task-{n}",
            outcome="handover" if failed else "ok",
            error_kind=ErrorKind.SERVER if failed else None,
            error="HTTP 503" if failed else None,
            latency_ms=100.0 + n / 7,
            input_tokens=n,
            cost_usd=None if n % 3 else n / 1000,
            ts=T0 + n,
        )
        task = task_event(
            run_id="gw",
            task_id=f"task-{n}",
            status="failed" if failed else "ok",
            provider=None if failed else "gpt",
            input_tokens=0 if failed else n,  # an answered task repeats its attempt's
            cost_usd=None if failed else attempt.cost_usd,
            error="no provider answered" if failed else None,
            latency_ms=101.0 + n / 7,
            ts=T0 + n + 0.5,
            dialect="chat" if n % 2 else None,
        )
        recorder.emit(attempt)
        recorder.emit(task)
        emitted.append((attempt, task))
    recorder.finish_run("gw", "ok")
    recorder.close()

    with open_store(_config(tmp_path).url) as store:
        attempts = store._read(
            "SELECT task_id, outcome, error_kind, error, latency_ms, input_tokens, cost_usd, ts "
            "FROM all_attempts ORDER BY ts"
        )
        tasks = store._read(
            "SELECT task_id, status, provider, error, latency_ms, ts, dialect "
            "FROM tasks ORDER BY id"
        )
        [summary] = store.runs()
    assert attempts == [
        (
            a.task_id,
            a.outcome,
            a.error_kind,
            a.error,
            a.latency_ms,
            a.input_tokens,
            a.cost_usd,
            a.ts,
        )
        for a, _ in emitted
    ]
    assert tasks == [
        (t.task_id, t.status, t.provider, t.error, t.latency_ms, t.ts, t.dialect)
        for _, t in emitted
    ]
    assert (summary.attempts, summary.tasks, summary.status) == (calls, calls, "ok")
    logged = _log_types(run_log_path(tmp_path / "runs", "gw"))
    assert logged == ["run_start", *["attempt", "task"] * calls, "run_end"]
    if part is not None:
        return
    # An answered task and its attempt, written in the same part of a flush, share a
    # row, and a line when orjson writes them.
    lines = run_log_path(tmp_path / "runs", "gw").read_text().splitlines()
    failed = sum(1 for _, t in emitted if t.status == "failed")
    assert len(lines) == 2 + (calls + failed if line_writer == "orjson" else 2 * calls)
    with open_store(_config(tmp_path).url) as store:
        assert store._read("SELECT COUNT(*) FROM attempts")[0][0] == failed
    run = read_run(run_log_path(tmp_path / "runs", "gw"))
    assert [task.latency_ms for task in run.tasks] == [t.latency_ms for _, t in emitted]
