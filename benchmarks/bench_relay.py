"""Recording through the one writer process of ``rolecall serve --workers N``: what it costs.

A worker records through a :class:`~rolecall.recording.relay.RecordRelay` (emit = a deque
append; a thread pickles what was queued and sends it over a Unix socket every flush
interval) and the writer process (:func:`~rolecall.recording.relay.writer_main`) writes
it all to SQLite and the JSONL run log through one Recorder. This prints, per gateway call
(an attempt and a task event), median [min-max] of the rounds:

- the worker's cost: the event loop emitting into the relay through ``close``, CPU of
  every thread of the worker process, minus the same loop emitting into nothing;
- the writer's CPU, from the moment it listens to its exit (imports excluded);
- the wall time from the first emit until the writer has written everything and exited;

and checks each round that every event is a store row and a run-log line. Compare the
worker's cost with ``bench_store.py``'s "gateway calls" rows (the recorder inside the
process that serves).

    python benchmarks/bench_relay.py --calls 100000 --rounds 5 --load 2

Figures, 2026-12-06, the 2-core development machine (shared with other jobs), that command,
us per gateway call, median [min-max] of 5 rounds:

                                        no load                 --load 2
    worker: CPU, emit + send         6.22 [6.17-6.97]        6.62 [5.51-7.11]
    writer process: CPU             44.56 [40.43-47.10]     42.49 [40.53-49.43]
    wall: first emit to all written 81.23 [70.15-99.17]    162.84 [133.15-241.69]

2026-12-07, the same command with ``--rounds 2``, twice, alternating with the code before
events were rebuilt by compiled code and answered tasks shared their attempt's row
(us per gateway call, --load 2): worker 5.5-6.9 (before 6.7-8.0); writer process CPU
20.5-21.1 (before 29.5-31.7); wall until all written 47-50 (before 64-67).

Beside bench_store.py's in-process recorder (27-43 us per gateway call in the serving
process), a worker's own cost is a fifth; the writer's is higher than the in-process
recorder's because it unpickles and rebuilds every event from its field values (about
5 us per gateway call since then: 1.8 unpickling, 3.6 rebuilding) before writing it as
that recorder does. The wall figure is the writer's pace: one process writes for every
worker, so with many busy workers it is the writer that bounds how fast records reach
the store (at about 24,000 calls a second here then, 30,000 since), not the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _recorder_workload import (
    RUN_ID,
    _produce,
    busy_processes,
    gateway_events,
    record_from_loop,
    recorded,
    recorder_config,
)

from rolecall.events import Event
from rolecall.recording.relay import RecordRelay

_WRITER = """
import resource, signal, socket, sys
from rolecall.config.schema import MetricsConfig
from rolecall.recording.relay import writer_main

listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(8)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start = cpu()
print("listening", flush=True)
writer_main(listener, MetricsConfig.model_validate_json(sys.argv[2]))
print(cpu() - start, flush=True)
"""

Figures = tuple[float, float, float]  # seconds per call: worker cost, writer CPU, wall


def relay_round(events: list[Event], workdir: Path) -> Figures:
    """One round through a fresh writer process into a fresh store and run log."""
    calls = len(events) // 2
    config = recorder_config(workdir)
    address = str(workdir / "records.sock")
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, address, config.model_dump_json()],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert writer.stdout is not None and writer.stdout.readline() == "listening\n"
    relay = RecordRelay(config, address)
    cpu, started = time.process_time(), time.perf_counter()
    relay.start_run(RUN_ID, "gateway")
    asyncio.run(_produce(relay, events, 2, tasks=64))  # type: ignore[arg-type]
    relay.finish_run(RUN_ID, "ok")
    relay.close()
    worker_cpu = time.process_time() - cpu
    writer.send_signal(signal.SIGTERM)
    writer_cpu = float(writer.stdout.readline())
    if writer.wait(60) != 0:
        raise SystemExit("the writer process failed")
    wall = time.perf_counter() - started
    return worker_cpu / calls, writer_cpu / calls, wall / calls


def run(calls: int, rounds: int, workdir: Path) -> list[Figures]:
    events = gateway_events(calls)
    results: list[Figures] = []
    for _ in range(rounds):
        _, alone_cpu = record_from_loop(events, 2, None, run_id=RUN_ID)
        with tempfile.TemporaryDirectory(dir=workdir) as round_dir:
            worker, writer, wall = relay_round(events, Path(round_dir))
            rows, lines = recorded(Path(round_dir))
        if rows != len(events) or lines != len(events):
            raise SystemExit(
                f"{len(events):,} events emitted before close, but {rows:,} rows in the store "
                f"and {lines:,} lines in the run log"
            )
        results.append((worker - alone_cpu, writer, wall))
    return results


def _spread(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 1e6:6.2f} [{min(values) * 1e6:5.2f}-"
        f"{max(values) * 1e6:5.2f}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="gateway calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--load", type=int, default=0, help="also under N busy processes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"no load": run(args.calls, args.rounds, Path(tmp))}
        if args.load:
            with busy_processes(args.load):
                runs[f"load {args.load}"] = run(args.calls, args.rounds, Path(tmp))
    print(
        f"Recording {args.calls:,} gateway calls (attempt + task event) through the writer "
        f"process;\nus per call, median [min-max] of {args.rounds} rounds:"
    )
    print(f"{'':44}" + "".join(f"{label:>26}" for label in runs))
    labels = [
        "worker: CPU, emit + send (all threads)",
        "writer process: CPU",
        "wall: first emit to all written",
    ]
    for column, label in enumerate(labels):
        cells = "".join(f"{_spread([r[column] for r in rows]):>26}" for rows in runs.values())
        print(f"  {label:42}{cells}")
    print("  nothing lost: every event emitted before close was a row and a run-log line")
    return 0


if __name__ == "__main__":
    sys.exit(main())
