"""Workflow makespan: concurrency within --max-parallel, and one provider vs three.

    .venv/bin/python benchmarks/bench_workflow.py [--files 30] [--latency 0.2]
        [--parallel 1,4,8] [--rounds 3]

Fake vendor servers (rolecall.sim.SimServer, each in its own process so none
shares an interpreter lock) answer every call after ``--latency`` seconds; the
plan names ``--files`` independent files, so the generate and review stages each
hold that many tasks. The run goes through the real router, adapters, credential
check and recorder. Makespan: first task start to last task finish (loading the
config and checking credentials before it are shown apart as "startup").

1. For each --parallel P, all four roles on one provider (max_concurrency P):
   the generate stage's span (first start to last finish) against
   ceil(files / P) x latency, and against the serial files x latency; the same
   for generate + review together (2 x files tasks; the reviews start once every
   file is written and checked, so the stages no longer overlap; the checks
   themselves are turned off here, ``workflow.verify: []``, to time the routing).
2. The same run spread over three providers (clarifier + planner, coder,
   reviewer on three servers of three vendors) vs one provider, every provider
   with max_concurrency P: the makespan ratio three / one (target <= 1.05).

Figures are medians over --rounds runs (in part 2, one and three alternate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import re
import statistics
import tempfile
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

from rolecall.sim import Protocol, SimServer
from rolecall.workflow import Spec, Workflow, WorkflowResult

_ROLE = re.compile(r"You are the (clarifier|planner|coder|reviewer)")
_PATH = re.compile(r"File to (?:write|review): `([^`]+)`")
SPEC = Spec.from_text("# bench\n\nMany small independent Python modules.\n")


def responder(files: int) -> Any:
    plan = json.dumps(
        {
            "files": [
                {"path": f"m{i:02d}.py", "purpose": "x", "depends_on": []} for i in range(files)
            ]
        }
    )

    def answer(body: dict[str, Any]) -> str:
        text = json.dumps(body)
        role = m.group(1) if (m := _ROLE.search(text)) else ""
        if role == "clarifier":
            return '{"questions": []}'
        if role == "planner":
            return plan
        if role == "reviewer":
            return '{"findings": []}'
        path = m.group(1) if (m := _PATH.search(text)) else "x"
        return f"# {path}\nVALUE = 1\n"

    return answer


def serve_sim(conn: Connection, protocol: Protocol, latency: float, files: int) -> None:
    """Child process: one fake vendor; sends its base_url, serves until told to stop."""
    server = SimServer(protocol, latency=latency, max_recorded=0)
    server.responder = responder(files)
    server.start()
    conn.send(server.base_url)
    conn.recv()
    server.stop()


def start_sims(latency: float, files: int) -> tuple[dict[str, tuple[str, str]], list[Any]]:
    """One process per fake vendor, as real vendors do not share an interpreter either."""
    context = multiprocessing.get_context("spawn")
    vendors: dict[str, Protocol] = {"gem": "google", "claude": "anthropic", "gpt": "openai"}
    servers: dict[str, tuple[str, str]] = {}
    handles: list[Any] = []
    for pid, protocol in vendors.items():
        parent, child = context.Pipe()
        process = context.Process(
            target=serve_sim, args=(child, protocol, latency, files), daemon=True
        )
        process.start()
        servers[pid] = (protocol, parent.recv())
        handles.append((process, parent))
    return servers, handles


def write_config(
    directory: Path,
    servers: Mapping[str, tuple[str, str]],
    roles: Mapping[str, str],
    limit: int,
) -> Path:
    config = {
        "schema_version": 1,
        "providers": {
            pid: {
                "type": protocol,
                "model": "sim-model",
                "api_key": "test-key",
                "base_url": base_url,
                "max_concurrency": limit,
            }
            for pid, (protocol, base_url) in servers.items()
        },
        "roles": {role: {"provider": pid} for role, pid in roles.items()},
        "workflow": {"verify": []},
        "metrics": {
            "url": f"sqlite:///{directory / 'metrics.db'}",
            "runs_dir": str(directory / "runs"),
        },
    }
    path = directory / f"rolecall-{len(servers)}-{limit}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def one_run(config: Path, out: Path, parallel: int) -> tuple[float, WorkflowResult]:
    """One run; returns when it was called (epoch seconds) and its result."""
    workflow = Workflow(config_path=config, output_dir=out, max_parallel=parallel, force=True)
    called = time.time()
    result = await workflow.run(SPEC)
    if result.status != "ok":
        raise SystemExit(f"run {result.run_id} ended {result.status}")
    return called, result


def span(result: WorkflowResult, *stages: str) -> float:
    records = [r for r in result.records if not stages or r.stage in stages]
    start = min(r.started_at or 0.0 for r in records)
    end = max(r.finished_at or 0.0 for r in records)
    return end - start


def median_runs(config: Path, out: Path, parallel: int, rounds: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        called, result = asyncio.run(one_run(config, out, parallel))
        first = min(r.started_at or 0.0 for r in result.records)
        for name, value in (
            ("startup", first - called),
            ("makespan", span(result)),
            ("generate", span(result, "generate")),
            ("generate+review", span(result, "generate", "review")),
        ):
            figures.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--parallel", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files, latency = args.files, args.latency
    levels = [int(p) for p in args.parallel.split(",")]
    servers, handles = start_sims(latency, files)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            print(
                f"{files} files, provider latency {latency * 1000:.0f} ms, median of {args.rounds}"
            )
            print()
            print("1. one provider for every role (max_concurrency = P)")
            print(
                f"{'P':>3}  {'generate':>9}  {'ideal':>7}  {'serial':>7}  "
                f"{'gen+review':>10}  {'ideal':>7}  {'makespan':>8}  {'startup':>7}"
            )
            one_role = dict.fromkeys(("clarifier", "planner", "coder", "reviewer"), "gpt")
            for parallel in levels:
                config = write_config(base, {"gpt": servers["gpt"]}, one_role, parallel)
                figures = median_runs(config, base / "out", parallel, args.rounds)
                ideal = math.ceil(files / parallel) * latency
                ideal_both = math.ceil(2 * files / parallel) * latency
                print(
                    f"{parallel:>3}  {figures['generate']:>8.2f}s  {ideal:>6.2f}s  "
                    f"{files * latency:>6.2f}s  {figures['generate+review']:>9.2f}s  "
                    f"{ideal_both:>6.2f}s  {figures['makespan']:>7.2f}s  "
                    f"{figures['startup']:>6.2f}s"
                )
            print()
            print("2. three providers (clarifier+planner / coder / reviewer) vs one, equal limits")
            print(f"{'P':>3}  {'one':>7}  {'three':>7}  {'ratio':>6}   (makespans)")
            spread = {"clarifier": "gem", "planner": "gem", "coder": "gpt", "reviewer": "claude"}
            for parallel in levels:
                alone = write_config(base, {"gpt": servers["gpt"]}, one_role, parallel)
                spread_out = write_config(base, servers, spread, parallel)
                ones, threes = [], []
                for _ in range(args.rounds):  # alternated, so drift hits both alike
                    ones.append(median_runs(alone, base / "out", parallel, 1)["makespan"])
                    threes.append(median_runs(spread_out, base / "out", parallel, 1)["makespan"])
                one, three = statistics.median(ones), statistics.median(threes)
                print(f"{parallel:>3}  {one:>6.2f}s  {three:>6.2f}s  {three / one:>6.3f}")
    finally:
        for process, conn in handles:
            conn.send("stop")
            process.join(10)


if __name__ == "__main__":
    main()
