"""Gateway-shaped recording workload: one attempt and one task event per call (benchmarks only).

    PYTHONHASHSEED=0 PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=rec.out \\
        .venv/bin/python benchmarks/_recorder_workload.py --calls 10000 --batch 500

records CALLS calls (2 x CALLS events) into one ``gateway`` run through the
:class:`~rolecall.recording.recorder.Recorder` (SQLite store + JSONL run log in a
temporary directory) and closes it, which writes everything. Under callgrind the
instruction count of the process minus that of the same command with
``--generate-only`` (imports and event building alone) is the cost of recording: the
figure to compare before and after a change, since it does not move with the
machine's load, unlike wall time. A fixed PYTHONHASHSEED keeps it repeatable to the
instruction (string hashes, hence dict layouts, otherwise change from run to run).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rolecall.config.schema import MetricsConfig
from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent, Event, TaskEvent
from rolecall.recording.recorder import Recorder
from rolecall.recording.store.synthetic import synthetic_attempts

RUN_ID = "gateway-bench"


def gateway_events(calls: int, *, end: float | None = None, span: float = 86400.0) -> list[Event]:
    """Per call, the attempt and the task event a gateway request emits, in one run,
    spread over ``span`` seconds before ``end`` (now)."""
    events: list[Event] = []
    end = time.time() if end is None else end
    attempts = synthetic_attempts(calls, end=end, days=span / 86400.0)
    for number, attempt in enumerate(attempts):
        ok = attempt.outcome == "ok"
        attempt_event = AttemptEvent(
            run_id=RUN_ID,
            task_id=f"task-{number}",
            role=attempt.role,
            provider=attempt.provider,
            model=attempt.model,
            attempt=1,
            outcome=attempt.outcome,
            error_kind=attempt.error_kind,
            latency_ms=attempt.latency_ms,
            input_tokens=attempt.input_tokens,
            output_tokens=attempt.output_tokens,
            cost_usd=attempt.cost_usd,
            error=None if ok else f"HTTP 503 from {attempt.provider}: overloaded",
            ts=attempt.ts,
        )
        events.append(attempt_event)
        events.append(
            TaskEvent(
                run_id=RUN_ID,
                task_id=attempt_event.task_id,
                role=attempt.role,
                status="ok" if ok else "failed",
                provider=attempt.provider if ok else None,
                model=attempt.model if ok else None,
                attempts=1,
                handovers=0 if ok or attempt.error_kind != ErrorKind.AUTH else 1,
                latency_ms=attempt.latency_ms + 0.2,
                input_tokens=attempt.input_tokens,
                output_tokens=attempt.output_tokens,
                cost_usd=attempt.cost_usd,
                error=None if ok else "every provider failed",
                finish_reason="stop" if ok else None,
                ts=attempt.ts + 0.0002,
                dialect="chat",
            )
        )
    return events


def attempt_calls(calls: int, *, end: float | None = None) -> list[Event]:
    """One attempt event per call, in implicit runs of 1000 calls (the store benchmark's
    historical measure)."""
    return list(synthetic_attempts(calls, end=time.time() if end is None else end, days=1.0))


# A gateway-like process that never idles: an event loop parsing and building
# chat-completion bodies, as a gateway worker does under full load.
_BUSY = """
import asyncio, json
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 400}] * 4})
async def serve():
    while True:
        for _ in range(200):
            request = json.loads(BODY)
            json.dumps({"id": "c", "choices": [{"message": request["messages"][-1]}]})
        await asyncio.sleep(0)
asyncio.run(serve())
"""


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes each keeping one core busy, stopped on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(count)]
    try:
        if procs:
            time.sleep(0.5)  # let them reach full speed
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


async def _produce(recorder: Recorder, events: list[Event], per_call: int, tasks: int) -> None:
    """Emit from ``tasks`` coroutines on one event loop, each yielding after every call.

    Task ``k`` makes calls ``k``, ``k + tasks``...: the loop runs them round-robin, so the
    events go out in the order of their times, as a gateway's do.
    """
    calls = [events[start : start + per_call] for start in range(0, len(events), per_call)]
    emit = recorder.emit

    async def serve(mine: list[list[Event]]) -> None:
        for call in mine:
            for event in call:
                emit(event)
            await asyncio.sleep(0)

    await asyncio.gather(*(serve(calls[k::tasks]) for k in range(tasks)))


def record_from_loop(
    events: list[Event], per_call: int, workdir: Path | None, *, run_id: str | None = None
) -> tuple[float, float]:
    """Emit ``events`` from an event loop, then close the recorder: (wall, CPU) seconds per
    call from the first emit to the end of ``close``, the process's CPU (all threads).

    ``workdir`` None: a disabled recorder, which drops every event: the loop's own cost.
    """
    config = recorder_config(workdir) if workdir is not None else MetricsConfig(enabled=False)
    recorder = Recorder(config, install_signal_handlers=False)
    calls = len(events) // per_call
    cpu, started = time.process_time(), time.perf_counter()
    if run_id is not None:
        recorder.start_run(run_id, "gateway")
    asyncio.run(_produce(recorder, events, per_call, tasks=64))
    if run_id is not None:
        recorder.finish_run(run_id, "ok")
    recorder.close()
    wall = time.perf_counter() - started
    return wall / calls, (time.process_time() - cpu) / calls


def recorder_config(workdir: Path) -> MetricsConfig:
    return MetricsConfig(url=f"sqlite:///{workdir / 'recorder.db'}", runs_dir=str(workdir / "runs"))


def recorded(workdir: Path) -> tuple[int, int]:
    """What a closed recorder left in ``workdir``: (attempt and task rows in the store,
    attempt and task records in the run logs; a task its first attempt answered holds
    that attempt on its line)."""
    from rolecall.recording.store import open_store

    with open_store(recorder_config(workdir).url) as store:
        # all_attempts also counts the attempts kept on their task's row (schema 5 on).
        attempts = "all_attempts" if store.schema_version() >= 5 else "attempts"
        rows = sum(
            int(store._read(f"SELECT COUNT(*) FROM {table}")[0][0]) for table in (attempts, "tasks")
        )
    lines = 0
    for path in (workdir / "runs").glob("*.jsonl"):
        with open(path, "rb") as handle:
            lines += sum(
                1 + (b'"attempt_ts":' in line) for line in handle if b'"type":"run_' not in line
            )
    return rows, lines


def record(events: list[Event], workdir: Path, batch: int = 0) -> tuple[float, float]:
    """Emit ``events`` in one gateway run, then close: (emit seconds, total seconds).

    ``batch``: flush after every ``batch`` calls, as the flush thread does in a steady
    gateway (0: everything goes in one batch at close).
    """
    config = recorder_config(workdir).model_copy(update={"flush_interval": 3600.0})
    recorder = Recorder(config, install_signal_handlers=False)
    started = time.perf_counter()
    recorder.start_run(RUN_ID, "gateway")
    emit = recorder.emit
    step = 2 * batch if batch > 0 else len(events)
    for start in range(0, len(events), step):
        for event in events[start : start + step]:
            emit(event)
        if batch > 0:
            recorder.flush()
    recorder.finish_run(RUN_ID, "ok")
    emitted = time.perf_counter()
    recorder.close()
    return emitted - started, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls (2 events each)")
    parser.add_argument(
        "--batch", type=int, default=0, help="flush every BATCH calls (0: one batch at close)"
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="build the events, record nothing"
    )
    args = parser.parse_args(argv)
    # A steady gateway's calls: 1000 a second (a batch of 500 spans the default half second).
    events = gateway_events(args.calls, end=time.time(), span=args.calls / 1000.0)
    if args.generate_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="rolecall-rec-") as tmp:
        emit_s, total_s = record(events, Path(tmp), args.batch)
    print(
        f"{args.calls:,} calls: emit {emit_s / args.calls * 1e6:.2f} us, "
        f"emit + flush + close {total_s / args.calls * 1e6:.2f} us per call"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
