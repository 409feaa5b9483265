"""Dashboard benchmark: the time the /ui page's /api/ calls take at millions of recorded calls.

Loads N synthetic calls (as ``bench_store.py`` does: raw attempts plus rollups through
``MetricsStore.record``), serves them with ``rolecall dashboard``'s server on 127.0.0.1,
then times the calls the page makes on load -- metrics, hand-overs, trend, advice, runs,
health and the newest run's tasks -- for each range of the picker, both one after the
other and all at once as the browser sends them. Target: the page's data in under 300 ms.

    python benchmarks/bench_dashboard.py --calls 10000000
    python benchmarks/bench_dashboard.py --db /tmp/bench.db --reuse

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import END, load, machine_reference

from rolecall.dashboard.server import DashboardServer
from rolecall.recording.store import open_store

TARGET_S = 0.300
RANGES = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None}


def page_calls(base: str, span: int | None, run_id: str | None) -> list[str]:
    """The URLs the page fetches on load for a range ending at the synthetic history's end."""
    since = "" if span is None else f"since={int(END - span)}"
    bucket = "hour" if span is not None and span <= 2 * 86400 else "day"
    calls = [
        f"{base}/api/metrics?{since}",
        f"{base}/api/handovers?{since}",
        f"{base}/api/trend?{since}&bucket={bucket}&by=provider,role",
        f"{base}/api/advise?{since}",
        f"{base}/api/runs?limit=20",
        f"{base}/api/health",
    ]
    if run_id:
        calls.append(f"{base}/api/runs/{run_id}")
    return calls


def fetch(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def time_page(urls: list[str], repeat: int) -> tuple[dict[str, float], float, float]:
    """(median seconds per call, median sequential total, median parallel wall time)."""
    each: dict[str, list[float]] = {url: [] for url in urls}
    totals, walls = [], []
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        for _ in range(repeat):
            total = 0.0
            for url in urls:
                seconds, _ = fetch(url)
                each[url].append(seconds)
                total += seconds
            totals.append(total)
            started = time.perf_counter()
            list(pool.map(fetch, urls))
            walls.append(time.perf_counter() - started)
    medians = {url: statistics.median(times) for url, times in each.items()}
    return medians, statistics.median(totals), statistics.median(walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000_000, help="calls to load")
    parser.add_argument("--batch", type=int, default=50_000, help="calls per record() batch")
    parser.add_argument("--repeat", type=int, default=5, help="page loads per range (median)")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="query an already loaded --db")
    args = parser.parse_args(argv)

    print(f"machine reference: 3M-iteration Python loop in {machine_reference():.3f} s")
    with tempfile.TemporaryDirectory(prefix="rolecall-bench-") as tmp:
        db = (args.db or Path(tmp) / "bench.db").resolve()
        url = f"sqlite:///{db}"
        if not args.reuse:
            if db.exists():
                print(f"{db} exists: pass --reuse to query it, or remove it", file=sys.stderr)
                return 2
            with open_store(url) as store:
                spent = load(store, args.calls, args.batch)
            print(f"loaded {args.calls:,} calls in {spent:.1f} s", flush=True)
        with open_store(url, create=False) as store:
            runs = store.runs(1)
        server = DashboardServer(url).start()
        try:
            report(server.url, runs[0].run_id if runs else None, args.repeat, args.calls)
        finally:
            server.stop()
    return 0


def report(base: str, run_id: str | None, repeat: int, calls: int) -> None:
    print(f"\n/ui data at {calls:,} calls (median of {repeat} page loads; target 300 ms)")
    print(f"{'range':6} {'sequential':>11} {'parallel':>9}  verdict   slowest call")
    for name, span in RANGES.items():
        urls = page_calls(base, span, run_id)
        medians, total, wall = time_page(urls, repeat)
        slowest = max(medians, key=lambda url: medians[url])
        path = slowest[len(base) :].split("?")[0]
        verdict = "ok" if max(total, wall) <= TARGET_S else "SLOW"
        print(
            f"{name:6} {total * 1000:9.1f}ms {wall * 1000:7.1f}ms  {verdict:8}  "
            f"{path} {medians[slowest] * 1000:.1f}ms"
        )
        for url in urls:
            print(f"         {url[len(base) :].split('?')[0]:28} {medians[url] * 1000:8.1f}ms")


if __name__ == "__main__":
    sys.exit(main())
