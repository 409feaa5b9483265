"""How much slower the same Python code runs after the process has slept (benchmarks only).

    .venv/bin/python benchmarks/_bench_wake.py [--calls 100]

Runs one short, varied piece of Python (a JSON round trip, decimal, fraction,
date and URL work: ~10 us when warm) right after waiting for a given time,
two ways:

- sleep: ``time.sleep``, so the CPU goes idle as a gateway's does while a
  provider thinks;
- spin: a busy loop for the same time, so the CPU never idles.

and, with --keep-awake, the sleep rows again with a SCHED_IDLE busy loop pinned
to this process's CPU (it runs only when nothing else wants that CPU, so the
CPU never halts but this process is scheduled at once when it wakes).

It prints the median time of the work per wait. Three runs on this 2-core
virtual machine (2026-12, idle; --calls 100, 200, 200 --keep-awake), lowest..highest:

    wait     sleep          spin         sleep, CPU kept awake
    0 ms     6..10 us       6..10 us     6..9 us
    3 ms    17..92 us       6..68 us     6..11 us
    50 ms  140..208 us      8..46 us    36..41 us

After 3 ms of idleness the code after the wake often runs 3x slower, and 15-30x
after 50 ms: the virtual CPU halts, and the host evidently runs other work on the
core meanwhile (no hardware counters are exposed to tell caches from anything
else). Keeping the CPU busy removes most of it; waking it every 0.5-2 ms
(50 ms slept in slices) does not (165-170 us); the guest's halt-polling
(``guest_halt_poll_ns``) does not, at 200 us. Holding /dev/cpu_dma_latency at 0
(the idle vCPU polls instead of halting) takes the 50 ms row to 37 us, still 6x
its warm time: most of the cold wake is the halt, the rest what ran meanwhile.
This is what issue 21 saw as "most of the cost appears only when the gateway
idles while the provider thinks"; see
benchmarks/bench_gateway.py ("Where the time goes").
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import fractions
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse

WAITS = (0.0, 0.002, 0.003, 0.05)


def _work() -> None:
    json.loads(json.dumps({"a": [1, 2, {"b": "c"}], "d": "e"}))
    decimal.Decimal("1.5") * decimal.Decimal(3)
    fractions.Fraction(3, 4) + fractions.Fraction(1, 3)
    urllib.parse.urlsplit("http://example.test/v1/chat?x=1")
    datetime.datetime.now().isoformat()
    sorted([3, 1, 2], key=lambda x: -x)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _median_us(wait: float, how: str, calls: int) -> float:
    times = []
    for _ in range(calls):
        if wait:
            (time.sleep if how == "sleep" else _spin)(wait)
        started = time.perf_counter()
        _work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def _keep_awake() -> subprocess.Popen[bytes]:
    """A SCHED_IDLE busy loop pinned to this process's CPU (this process pinned to it too)."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    code = (
        "import os\n"
        f"os.sched_setaffinity(0, {{{cpu}}})\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "while True: pass\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--keep-awake", action="store_true")
    args = parser.parse_args()
    print("wait ms | sleep us | spin us")
    for wait in WAITS:
        sleep = _median_us(wait, "sleep", args.calls)
        spin = _median_us(wait, "spin", args.calls)
        print(f"{wait * 1000:7.0f} | {sleep:8.1f} | {spin:7.1f}")
    if args.keep_awake:
        awake = _keep_awake()
        try:
            time.sleep(0.2)
            print("CPU kept awake by a SCHED_IDLE busy loop:")
            for wait in WAITS:
                print(f"{wait * 1000:7.0f} | {_median_us(wait, 'sleep', args.calls):8.1f} |")
        finally:
            awake.kill()
            awake.wait()


if __name__ == "__main__":
    main()
