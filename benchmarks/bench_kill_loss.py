"""What a SIGKILL under load costs the records: calls acknowledged but never stored.

Starts ``--procs`` processes that each record ``--rate`` calls a second through the real
:class:`rolecall.recording.recorder.Recorder` into one SQLite store, each printing its count after
every call (the call is "acknowledged" once its count is printed). After ``--seconds`` it
SIGKILLs them all at once, then compares each process's last acknowledged count with
the rows the store holds for its run, and checks the store with ``PRAGMA
integrity_check``. The loss should stay within one ``metrics.flush_interval``.

    python benchmarks/bench_kill_loss.py [--procs 4] [--rate 200] [--seconds 4]
                                         [--flush-interval 0.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_CHILD = """
import sys, time
from rolecall.config.schema import MetricsConfig
from rolecall.events import AttemptEvent
from rolecall.recording.recorder import Recorder
url, runs_dir, interval, rate, run_id = sys.argv[1:6]
recorder = Recorder(MetricsConfig(url=url, runs_dir=runs_dir, flush_interval=float(interval)))
recorder.start_run(run_id, "workflow")
period, n = 1.0 / float(rate), 0
next_at = time.monotonic()
while True:
    n += 1
    recorder.emit(AttemptEvent(run_id, f"t{n}", "coder", "gpt", "g", 1, "ok", None, 5.0, 1, 1))
    sys.stdout.write(f"{n}\\n")
    sys.stdout.flush()
    next_at += period
    time.sleep(max(0.0, next_at - time.monotonic()))
"""


def _follow(child: subprocess.Popen[str], acked_at: list[float]) -> None:
    """``acked_at[n - 1]``: when the parent read call n's acknowledgement."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip().isdigit():
            acked_at.append(time.monotonic())


def one_round(
    args: argparse.Namespace, directory: Path
) -> tuple[list[list[float]], list[int], float, str]:
    db = directory / "metrics.db"
    url = f"sqlite:///{db}"
    children, counts, readers = [], [], []
    for index in range(args.procs):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                url,
                str(directory / "runs"),
                str(args.flush_interval),
                str(args.rate),
                f"proc-{index}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        last: list[float] = []
        reader = threading.Thread(target=_follow, args=(child, last), daemon=True)
        reader.start()
        children.append(child)
        counts.append(last)
        readers.append(reader)
    time.sleep(args.seconds)
    killed_at = time.monotonic()
    for child in children:
        child.send_signal(signal.SIGKILL)
    for child, reader in zip(children, readers, strict=True):
        child.wait(timeout=30)
        reader.join(timeout=30)  # the pipe holds every line printed before the kill
    conn = sqlite3.connect(db, timeout=30)
    try:
        integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        stored = [
            int(
                conn.execute(
                    "SELECT COUNT(*) FROM all_attempts WHERE run_id = ?", (f"proc-{i}",)
                ).fetchone()[0]
            )
            for i in range(args.procs)
        ]
    finally:
        conn.close()
    return counts, stored, killed_at, integrity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200.0, help="calls a second per process")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--flush-interval", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    worst_seconds = 0.0
    for round_no in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            acked_at, stored, killed_at, integrity = one_round(args, Path(tmp))
        acked = [len(times) for times in acked_at]
        lost = [max(0, a - s) for a, s in zip(acked, stored, strict=True)]
        # Loss in time: from the acknowledgement of the first call missing from the store
        # to the kill.
        lost_s = [
            killed_at - times[s] if s < len(times) else 0.0
            for times, s in zip(acked_at, stored, strict=True)
        ]
        rate = sum((len(t) - 1) / (t[-1] - t[0]) for t in acked_at if len(t) > 1)
        worst_seconds = max(worst_seconds, *lost_s)
        print(
            f"round {round_no}: acknowledged {sum(acked)} calls ({rate:.0f}/s in all), "
            f"stored {sum(stored)}, lost {sum(lost)} (per process {lost}, "
            f"at most {max(lost_s):.3f} s of calls), integrity {integrity}"
        )
    verdict = "within" if worst_seconds <= args.flush_interval else "OVER"
    print(
        f"worst loss {worst_seconds:.3f} s of calls per process: {verdict} "
        f"flush_interval {args.flush_interval} s"
    )


if __name__ == "__main__":
    main()
