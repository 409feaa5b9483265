"""The JSONL run log: append, rebuild, tolerate a killed writer."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from factories import attempt_event, task_event
from rolecall._secrets import redact
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent, TaskEvent, event_to_dict
from rolecall.recording.runlog import (
    RunLog,
    event_line,
    event_record,
    find_run_files,
    list_runs,
    read_run,
    run_end_record,
    run_log_path,
    run_start_record,
)
from rolecall.recording.runwriter import WriterLock

T0 = 1_767_225_600.0


def _events(run_id: str) -> list[AttemptEvent | TaskEvent]:
    return [
        attempt_event(
            run_id=run_id,
            task_id="t1",
            role="coder",
            provider="gpt",
            model="g",
            outcome="handover",
            error_kind=ErrorKind.AUTH,
            latency_ms=12.0,
            error="401",
            ts=T0 + 1,
        ),
        attempt_event(
            run_id=run_id,
            task_id="t1",
            role="coder",
            provider="claude",
            model="c",
            latency_ms=700.0,
            input_tokens=30,
            output_tokens=40,
            cost_usd=0.01,
            ts=T0 + 2,
        ),
        task_event(
            run_id=run_id,
            task_id="t1",
            role="coder",
            provider="claude",
            model="c",
            attempts=2,
            handovers=1,
            latency_ms=712.0,
            input_tokens=30,
            output_tokens=40,
            cost_usd=0.01,
            stage="generate",
            ts=T0 + 2.1,
        ),
    ]


def _write_run(log: RunLog, run_id: str, status: str | None = "ok") -> None:
    records = [run_start_record(run_id, "workflow", {"spec": "s.md"}, T0)]
    records += [event_record(e) for e in _events(run_id)]
    if status is not None:
        records.append(run_end_record(run_id, status, T0 + 3))
    log.append(records)


def test_event_record_equals_event_to_dict() -> None:
    for event in _events("r"):
        assert event_record(event) == event_to_dict(event)
        assert list(event_record(event)) == list(event_to_dict(event))


def test_a_run_is_rebuilt_from_its_file(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "runs")
    _write_run(log, "run-1")
    path = run_log_path(tmp_path / "runs", "run-1")
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == [
        "run_start",
        "attempt",
        "attempt",
        "task",
        "run_end",
    ]
    run = read_run(path)
    assert (run.run_id, run.kind, run.status, run.meta) == (
        "run-1",
        "workflow",
        "ok",
        {"spec": "s.md"},
    )
    assert (run.started_at, run.finished_at, run.skipped_lines) == (T0, T0 + 3, 0)
    [task] = run.tasks
    assert (task.task_id, task.stage, task.provider, task.status, task.handovers) == (
        "t1",
        "generate",
        "claude",
        "ok",
        1,
    )
    assert [a.to_dict()["error_kind"] for a in task.attempts] == ["auth", None]
    assert run.to_dict()["tasks"][0]["input_tokens"] == 30


def test_appends_accumulate_across_batches(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.append([run_start_record("r", "ask", None, T0)])
    log.append([event_record(e) for e in _events("r")])
    log.append([run_end_record("r", "ok", T0 + 9)])
    run = read_run(run_log_path(tmp_path, "r"))
    assert run.status == "ok" and len(run.tasks[0].attempts) == 2


def test_truncated_last_line_is_skipped_and_closed_before_appending(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    _write_run(log, "r", status=None)
    path = run_log_path(tmp_path, "r")
    with open(path, "a") as handle:
        handle.write('{"type": "attempt", "run_id": "r", "task_id": "t2", "ro')  # killed here
    run = read_run(path)
    assert run.skipped_lines == 1 and run.status == "running"
    assert [t.task_id for t in run.tasks] == ["t1"]
    # A later writer (say `run --resume`) must not glue its first line onto the fragment.
    RunLog(tmp_path).append([run_end_record("r", "interrupted", T0 + 5)])
    again = read_run(path)
    assert again.status == "interrupted" and again.skipped_lines == 1


@pytest.mark.parametrize(
    "line",
    [
        [1, 2, 3],
        {"type": "attempt", "run_id": "r", "task_id": "t2", "role": "coder"},
        {"type": "attempt", "run_id": "r", "task_id": "t2", "provider": "gpt", "ts": "noon"},
        {"type": "task", "run_id": "r", "task_id": "t2", "status": "ok", "input_tokens": 1e999},
        {"type": "task", "run_id": "r", "task_id": ["t2"], "status": "ok"},
        {"type": "run_start", "run_id": "r", "meta": "not a mapping", "ts": T0},
    ],
)
def test_a_line_of_another_shape_is_skipped_like_a_broken_one(tmp_path: Path, line: object) -> None:
    log = RunLog(tmp_path)
    _write_run(log, "r", status="ok")
    path = run_log_path(tmp_path, "r")
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(1, json.dumps(line) + "\n")  # valid JSON a reader cannot use
    path.write_text("".join(lines))
    run = read_run(path)
    assert run.skipped_lines == 1 and run.status == "ok"
    assert [t.task_id for t in run.tasks] == ["t1"] and len(run.tasks[0].attempts) == 2


def test_a_run_without_start_record_uses_its_events(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.append([event_record(e) for e in _events("bare")])
    run = read_run(run_log_path(tmp_path, "bare"))
    assert run.run_id == "bare" and run.kind == "ask" and run.status == "running"
    assert run.started_at is not None and run.started_at < T0 + 1


def test_unsafe_run_ids_stay_inside_the_directory(tmp_path: Path) -> None:
    path = run_log_path(tmp_path, "../../etc/passwd")
    assert path.parent == tmp_path and "/" not in path.name
    assert run_log_path(tmp_path, ".hidden").name == "_hidden.jsonl"


def test_list_and_find_runs(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    for run_id in ("20260101-a", "20260101-b", "20260202-c"):
        _write_run(log, run_id)
    assert len(list_runs(tmp_path)) == 3
    assert len(list_runs(tmp_path, limit=2)) == 2
    assert [p.stem for p in find_run_files(tmp_path, "20260101")] == ["20260101-a", "20260101-b"]
    assert [p.stem for p in find_run_files(tmp_path, "20260202-c")] == ["20260202-c"]
    assert find_run_files(tmp_path / "missing", "x") == []
    assert list_runs(tmp_path / "missing") == []


def test_event_line_is_the_json_of_event_to_dict() -> None:
    from rolecall._secrets import Secret

    key = "sk-line-" + "7" * 24
    Secret(key)
    events = [
        *_events("r"),
        attempt_event(
            run_id='quo"te',
            task_id="t\n1",
            role="rôle",
            provider="p",
            model="m",
            attempt=2,
            outcome="retry",
            error_kind=ErrorKind.TIMEOUT,
            latency_ms=float("nan"),
            error=f"key {key} leaked",
            ts=T0,
        ),
        task_event(
            run_id="r",
            task_id="t",
            role="coder",
            status="failed",
            provider=None,
            model=None,
            attempts=3,
            handovers=2,
            latency_ms=0.0,
            ts=T0,
        ),
    ]
    for event in events:
        line = event_line(event)
        assert "\n" not in line and key not in line
        expected = event_to_dict(event)
        if expected.get("error"):
            expected["error"] = expected["error"].replace(key, "***")
        decoded = json.loads(line)
        assert list(decoded) == list(expected)
        assert json.dumps(decoded, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_prune_deletes_old_logs_but_keeps_the_runs_named(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.append([{"run_id": run, "type": "run_start"} for run in ("old", "open", "new")])
    ten_days_ago = time.time() - 10 * 86400
    for run in ("old", "open"):
        os.utime(tmp_path / f"{run}.jsonl", (ten_days_ago, ten_days_ago))
    assert log.prune(time.time() - 86400, keep={"open"}) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.jsonl", "open.jsonl"]


def _open_run_log(runs_dir: Path, writer: dict[str, object] | None) -> Path:
    log = RunLog(runs_dir)
    log.append([run_start_record("open", "workflow", None, 1.0, writer)])
    return run_log_path(runs_dir, "open")


def test_an_open_run_is_running_while_its_writer_holds_its_lock(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path)
    writer = lock.acquire()
    assert writer is not None and writer["pid"] == os.getpid()
    path = _open_run_log(tmp_path, writer)
    assert read_run(path).status == "running"
    lock.release()  # as a process's end releases it, however it ends
    assert read_run(path).status == "abandoned"


def test_a_free_lock_file_left_behind_means_abandoned(tmp_path: Path) -> None:
    left = tmp_path / ".writers" / "dead.lock"
    left.parent.mkdir()
    left.touch()  # a killed writer's file: nobody holds its lock
    writer = {"host": socket.gethostname(), "pid": os.getpid(), "lock": str(left)}
    assert read_run(_open_run_log(tmp_path, writer)).status == "abandoned"


def test_an_open_run_of_another_host_or_unknown_writer_stays_running(tmp_path: Path) -> None:
    elsewhere = {"host": "another-host.invalid", "pid": 1, "lock": str(tmp_path / "x.lock")}
    assert read_run(_open_run_log(tmp_path / "a", elsewhere)).status == "running"
    assert read_run(_open_run_log(tmp_path / "b", None)).status == "running"


def test_a_task_record_keeps_the_finish_reason(tmp_path: Path) -> None:
    from factories import task_event

    log = RunLog(tmp_path)
    log.append([task_event(run_id="cut", finish_reason="length")])
    [line] = (tmp_path / "cut.jsonl").read_text().splitlines()
    assert json.loads(line)["finish_reason"] == "length"


def _awkward_events() -> list[AttemptEvent | TaskEvent]:
    """Events whose lines take every path: plain, non-ASCII, a secret in the error, a NaN,
    an infinite cost, a count past 64 bits, a lone surrogate, 1e-05 and 1e16."""
    from rolecall._secrets import Secret

    key = "sk-orj-" + "8" * 24
    Secret(key)
    return [
        *_events("w"),
        attempt_event(run_id="w", task_id="tâche-ü", role="rôle", cost_usd=1e-05, ts=1e16),
        attempt_event(run_id="w", task_id="t", error=f"key {key} leaked", outcome="retry"),
        attempt_event(run_id="w", task_id="t", latency_ms=float("nan")),
        task_event(run_id="w", task_id="t", cost_usd=float("inf"), dialect="messages"),
        task_event(run_id="w", task_id="t", input_tokens=2**70),
        task_event(run_id="w", task_id="t\ud800", provider=None, model=None, status="failed"),
    ]


def test_event_lines_read_the_same_with_or_without_orjson(tmp_path: Path, line_writer: str) -> None:
    events = _awkward_events()
    RunLog(tmp_path).append(events)
    path = run_log_path(tmp_path, "w")
    text = path.read_bytes().decode("utf-8")
    assert "sk-orj-" not in text
    lines = text.splitlines()
    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        expected = event_to_dict(event)
        if expected.get("error"):
            expected["error"] = redact(expected["error"])
        decoded = json.loads(line)
        assert list(decoded) == list(expected)
        assert json.dumps(decoded, sort_keys=True) == json.dumps(expected, sort_keys=True)
    # orjson writes non-ASCII as it is; the standard library's path escapes it.
    assert ("tâche-ü" in text) == (line_writer == "orjson")
    run = read_run(path)
    assert run.skipped_lines == 0 and len(run.events or []) == len(events)


def test_the_fast_line_writer_fills_every_event_field_in_order() -> None:
    from rolecall.recording import _runlog_lines as lines

    unfilled = object()
    for event in _events("r"):
        if isinstance(event, AttemptEvent):
            template = dict.fromkeys(lines._ATTEMPT_FIELDS, unfilled)
            written = lines._fill_attempt(template, event)
        else:
            template = dict.fromkeys(lines._TASK_FIELDS, unfilled)
            written = lines._fill_task(template, event)
        assert list(written) == list(event_to_dict(event))
        assert written == {name: getattr(event, name) for name in written}
    attempt, task = _answered("a")
    template = dict.fromkeys(lines._ANSWERED_FIELDS, unfilled)
    written = lines._fill_answered(template, task, attempt)
    assert list(written) == [*event_to_dict(task), "attempt_latency_ms", "attempt_ts"]
    assert (written["attempt_latency_ms"], written["attempt_ts"]) == (40.5, T0 + 1)


def _answered(task_id: str, **task_fields: object) -> list[AttemptEvent | TaskEvent]:
    """A task its first attempt answered, as the router records it: the attempt, then the
    task (a little later, a little longer)."""
    shared = {"run_id": "g", "task_id": task_id, "input_tokens": 7, "output_tokens": 9}
    attempt = attempt_event(**shared, latency_ms=40.5, ts=T0 + 1, cost_usd=0.002)
    task = task_event(
        **shared, latency_ms=41.25, ts=T0 + 1.001, cost_usd=0.002, dialect="chat", **task_fields
    )
    return [attempt, task]


def test_a_task_its_first_attempt_answered_is_one_line_read_back_as_two(
    tmp_path: Path, line_writer: str
) -> None:
    events = [*_answered("a"), *_answered("b", finish_reason="length")]
    RunLog(tmp_path).append(events)
    path = run_log_path(tmp_path, "g")
    lines = path.read_text().splitlines()
    # orjson folds each pair into one line; the standard library's path writes both.
    assert len(lines) == (2 if line_writer == "orjson" else 4)
    run = read_run(path)
    assert run.events == [event_to_dict(e) for e in events]
    assert [list(e) for e in run.events or []] == [list(event_to_dict(e)) for e in events]
    assert [(t.task_id, len(t.attempts), t.latency_ms) for t in run.tasks] == [
        ("a", 1, 41.25),
        ("b", 1, 41.25),
    ]
    assert [t.attempts[0].latency_ms for t in run.tasks] == [40.5, 40.5]


def test_only_a_task_with_nothing_else_to_tell_shares_its_attempts_line(
    tmp_path: Path, line_writer: str
) -> None:
    retried = [attempt_event(run_id="g", task_id="r", outcome="retry", error_kind="server")]
    retried += [attempt_event(run_id="g", task_id="r", attempt=2), _answered("r", attempts=2)[1]]
    other_tokens = _answered("k")
    other_tokens[0].output_tokens = 3  # a streamed attempt cut short, say
    apart = _answered("x")
    events = [
        *retried,
        *other_tokens,
        apart[0],
        *_answered("y"),  # another task between the attempt and its task
        apart[1],
        *_answered("n"),
    ]
    events[-2].latency_ms = float("nan")  # written by the careful writer, on two lines
    RunLog(tmp_path).append(events)
    path = run_log_path(tmp_path, "g")
    lines = path.read_text().splitlines()
    assert len(lines) == (len(events) - 1 if line_writer == "orjson" else len(events))
    decoded = read_run(path).events or []
    assert json.dumps(decoded, sort_keys=True) == json.dumps(
        [event_to_dict(e) for e in events], sort_keys=True
    )
