"""A seeded chaos run: random fault scripts on three vendor sims, concurrent tasks through
the real router and recorder, then the invariants a user relies on.

``run_seed(seed, sims, tmp)`` returns the list of broken invariants (empty when all
hold). Replay one seed with ``python tests/routing/chaos.py SEED`` or hunt with
``python tests/routing/chaos.py FIRST LAST``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim_trio import PROTOCOLS, fresh, providers_for

from rolecall.config.schema import MetricsConfig, RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind, RolecallError, StreamInterrupted
from rolecall.events import AttemptEvent, TaskEvent, moved_on
from rolecall.health.memory import ProviderHealth
from rolecall.recording.recorder import Recorder
from rolecall.recording.store import open_store
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer
from rolecall.types import Reply

ROLES = {
    "coder": ["gpt", "claude", "gemini"],
    "reviewer": ["claude", "gemini"],
    "planner": ["gemini", "gpt"],
}
# What the router must record for a fault the sim served (None: the kind depends on timing).
KIND_OF = {
    "server": ErrorKind.SERVER,
    "overloaded": ErrorKind.OVERLOADED,
    "rate_limit": ErrorKind.RATE_LIMIT,
    "timeout": ErrorKind.TIMEOUT,
    "reset": ErrorKind.NETWORK,
    "malformed": ErrorKind.BAD_RESPONSE,
    "auth": ErrorKind.AUTH,
    "quota": ErrorKind.QUOTA,
    "not_found": ErrorKind.NOT_FOUND,
    "context_length": ErrorKind.CONTEXT_LENGTH,
    "bad_request": ErrorKind.BAD_REQUEST,
}
DEAD_KINDS = {"auth", "quota", "not_found"}
HANG = 3.0  # how long a timeout or stall fault stays silent (the client gives up first)
_TASK = re.compile(r"chaos-task-(\d+)")
_CANCELLED = RolecallError("its client went away")


def answer_text(pid: str, task: int) -> str:
    return f"{pid} answers task {task} with several words"


def random_fault(rng: random.Random, stream: bool) -> Fault | None:
    """None answers; else one fault, the dead-key kinds rare (they kill a provider)."""
    roll = rng.random()
    if roll < 0.45:
        return None
    kinds = ["server", "overloaded", "rate_limit", "reset", "malformed", "timeout"]
    kinds += ["context_length", "bad_request"]
    # A whole answer that may be raced is read as a stream too: these reach it as well.
    kinds += ["stream_error", "stall"] * (2 if stream else 1)
    if rng.random() < 0.05:
        kinds = sorted(DEAD_KINDS)
    kind = rng.choice(kinds)
    if kind == "rate_limit":
        return Fault(kind, retry_after=rng.choice([0.0, 0.3, 0.6, 2.0]))
    if kind in ("timeout", "stall"):
        return Fault(kind, delay=HANG, after_chunks=rng.choice([0, 1]) if kind == "stall" else 0)
    if kind == "stream_error":
        return Fault(kind, after_chunks=rng.choice([0, 1, 2]))
    return Fault(kind)


@dataclass
class Served:
    """One chat request a sim received for a task, and what it was told to do."""

    pid: str
    task: int
    at: float
    fault: Fault | None


@dataclass
class Scenario:
    seed: int
    stream: dict[int, bool]
    roles: dict[int, str]
    scripts: dict[tuple[str, int], list[Fault | None]]
    cancel_at: dict[int, float]  # tasks whose client goes away, and when (seconds)
    max_attempts: int
    max_concurrency: int
    open_for: float  # how long an open circuit skips its provider
    failover_within: float
    timeout: float
    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def scenario(seed: int, tasks: int = 16) -> Scenario:
    rng = random.Random(seed)
    roles = {t: rng.choice(sorted(ROLES)) for t in range(tasks)}
    stream = {t: rng.random() < 0.5 for t in range(tasks)}
    scripts = {
        (pid, t): [random_fault(rng, stream[t]) for _ in range(rng.randint(0, 4))]
        for t in range(tasks)
        for pid in PROTOCOLS
    }
    return Scenario(
        seed=seed,
        stream=stream,
        roles=roles,
        scripts=scripts,
        cancel_at={t: rng.random() * 0.8 for t in range(tasks) if rng.random() < 0.15},
        max_attempts=rng.choice([1, 2, 3]),
        max_concurrency=rng.choice([2, 8]),
        open_for=rng.choice([0.5, 30.0]),
        failover_within=rng.choice([0.4, 0.8]),
        timeout=rng.choice([0.25, 0.6]),
    )


def responder(plan: Scenario, pid: str) -> Any:
    def respond(body: Any) -> Any:
        found = _TASK.search(json.dumps(body))
        assert found, body
        task = int(found.group(1))
        with plan.lock:
            script = plan.scripts[(pid, task)]
            fault = script.pop(0) if script else None
            plan.served.append(Served(pid, task, time.monotonic(), fault))
        return fault if fault is not None else answer_text(pid, task)

    return respond


@dataclass
class Result:
    task: int
    reply: Reply | None = None
    error: BaseException | None = None
    text: str = ""  # what a stream yielded
    hung: bool = False
    cancelled: bool = False


class _Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


async def _one(router: Router, plan: Scenario, task: int, run_id: str) -> Result:
    """The task's outcome; a client that goes away cancels it at its time."""
    result = Result(task)
    call = asyncio.ensure_future(_call(router, plan, task, run_id, result))
    when = plan.cancel_at.get(task)
    if when is None:
        await call
        return result
    done, _ = await asyncio.wait((call,), timeout=when)
    if not done:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        result.cancelled = True
    return result


async def _call(router: Router, plan: Scenario, task: int, run_id: str, result: Result) -> None:
    await asyncio.sleep(random.Random(plan.seed * 1000 + task).random() * 0.05)
    prompt = f"chaos-task-{task}"
    role = plan.roles[task]
    try:
        if plan.stream[task]:
            pieces: list[str] = []
            stream = router.stream(role, prompt, run_id=run_id, task_id=f"t{task}")
            try:
                async for text in stream:
                    pieces.append(text)
            finally:
                result.text = "".join(pieces)
            result.reply = stream.reply
        else:
            result.reply = await router.complete(role, prompt, run_id=run_id, task_id=f"t{task}")
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # judged below: only rolecall errors are allowed
        result.error = exc


def config_for(plan: Scenario, sims: Mapping[str, SimServer], tmp: Path) -> RolecallConfig:
    providers = providers_for(sims)
    for entry in providers.values():
        entry["timeout"] = plan.timeout
        entry["max_concurrency"] = plan.max_concurrency
        entry["pricing"] = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    roles = {role: {"provider": chain[0], "fallback": chain[1:]} for role, chain in ROLES.items()}
    return RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": roles,
            "retry": {
                "max_attempts": plan.max_attempts,
                "initial_backoff": 0.1,
                "max_backoff": 0.2,
            },
            "failover_within": plan.failover_within,
            "metrics": {
                "url": f"sqlite:///{tmp / 'm.db'}",
                "runs_dir": str(tmp / "runs"),
                "flush_interval": 0.05,
            },
        }
    )


async def drive(seed: int, sims: Mapping[str, SimServer], tmp: Path) -> list[str]:
    plan = scenario(seed)
    fresh(sims)
    for pid, server in sims.items():
        server.responder = responder(plan, pid)
    config = config_for(plan, sims, tmp)
    sink = _Sink()
    recorder = Recorder(
        MetricsConfig.model_validate(config.metrics.model_dump()), install_signal_handlers=False
    )
    run_id = f"chaos-{seed}"
    recorder.start_run(run_id, "chaos")
    try:
        health = ProviderHealth(open_for=plan.open_for)
        async with Router(config, sinks=[sink, recorder], health=health) as router:
            jobs = {asyncio.ensure_future(_one(router, plan, t, run_id)): t for t in plan.roles}
            done, pending = await asyncio.wait(jobs, timeout=30)
            for job in pending:
                job.cancel()
            results = [j.result() if j in done else Result(t, hung=True) for j, t in jobs.items()]
            leaks = [
                pid
                for pid, limit in router._calls._semaphores.items()
                if getattr(limit, "_value", plan.max_concurrency) != plan.max_concurrency
            ]
        await asyncio.sleep(0.05)  # connections the router abandoned reach the sims
    finally:
        recorder.finish_run(run_id, "ok")
        recorder.close()
        for server in sims.values():
            server.responder = None
    problems = [f"{pid} still holds concurrency slots" for pid in leaks]
    problems += check(plan, results, sink.events, sims)
    problems += check_store(tmp, run_id, sink.events)
    return [f"seed {seed}: {p}" for p in problems]


def check(
    plan: Scenario, results: list[Result], events: list[Any], sims: Mapping[str, SimServer]
) -> list[str]:
    problems: list[str] = []
    attempts: dict[str, list[AttemptEvent]] = defaultdict(list)
    tasks: dict[str, list[TaskEvent]] = defaultdict(list)
    for event in events:
        (attempts if isinstance(event, AttemptEvent) else tasks)[event.task_id].append(event)
    served: dict[tuple[int, str], list[Served]] = defaultdict(list)
    for call in sorted(plan.served, key=lambda c: c.at):
        served[(call.task, call.pid)].append(call)
    total_served = len(plan.served)
    total_calls = sum(server.calls for server in sims.values())
    if total_served != total_calls:
        problems.append(f"sims counted {total_calls} calls, responders saw {total_served}")
    for result in results:
        t = result.task
        tid = f"t{t}"
        chain = ROLES[plan.roles[t]]
        what = f"task {t} ({plan.roles[t]}, {'stream' if plan.stream[t] else 'whole'})"
        if result.hung:
            problems.append(f"{what} never finished")
            continue
        error = result.error
        if result.cancelled and result.reply is None and error is None:
            error = _CANCELLED
        if error is not None and not isinstance(error, RolecallError):
            problems.append(f"{what} raised {type(error).__name__}: {error}")
            continue
        if (result.reply is None) == (error is None):
            problems.append(f"{what} ended with neither or both of an answer and an error")
            continue
        task_events = tasks.get(tid, [])
        if result.cancelled:
            if len(task_events) > 1:
                problems.append(f"{what} was cancelled and has {len(task_events)} task records")
        elif len(task_events) != 1:
            problems.append(f"{what} has {len(task_events)} task records")
        recorded = attempts.get(tid, [])
        if task_events:
            record = task_events[0]
            moves = sum(1 for a in recorded if moved_on(a.outcome, _kind(a.error_kind)))
            if (record.attempts, record.handovers) != (len(recorded), moves):
                problems.append(
                    f"{what} task record says {record.attempts} attempts / {record.handovers} "
                    f"handovers, attempt records {len(recorded)} / {moves}"
                )
        reply_attempts = (
            result.reply.attempts if result.reply is not None else getattr(error, "attempts", None)
        )
        if reply_attempts is not None:
            got = [(a.provider, a.attempt, a.outcome) for a in reply_attempts]
            want = [(a.provider, a.attempt, a.outcome) for a in recorded]
            if got != want:
                problems.append(f"{what} reply attempts {got} != recorded {want}")
        # Attempt records against the calls each sim received for this task.
        for pid in PROTOCOLS:
            calls = served.get((t, pid), [])
            made = sorted(
                (a for a in recorded if a.provider == pid and a.attempt > 0),
                key=lambda a: a.attempt,
            )
            if [a.attempt for a in made] != list(range(1, len(made) + 1)):
                problems.append(f"{what} {pid} attempt numbers {[a.attempt for a in made]}")
            unsent = (
                result.cancelled and len(made) == len(calls) + 1 and made[-1].outcome == "cancelled"
            )  # cancelled before the request reached the sim
            # A loaded machine can make a short timeout expire before the request is
            # even read: such attempts may have no call at the sim.
            timed_out = sum(1 for a in made if a.error_kind in _SLOW_MACHINE_KINDS)
            unread = len(calls) < len(made) <= len(calls) + timed_out
            if len(made) != len(calls) and not unsent and not unread:
                problems.append(
                    f"{what} {pid}: {len(made)} attempt records, sim received {len(calls)} "
                    f"({[c.fault.kind if c.fault else 'ok' for c in calls]}; recorded "
                    f"{[(a.attempt, a.outcome, a.error_kind) for a in made]})"
                )
            if len(made) > plan.max_attempts:
                problems.append(f"{what} {pid}: {len(made)} attempts > {plan.max_attempts}")
            if calls and pid not in chain:
                problems.append(f"{what} called {pid}, which is not in its chain {chain}")
            if not unread:  # else which record goes with which call is not known
                for record, call in zip(made, calls, strict=False):
                    problems += _kind_agrees(what, pid, record, call)
        # Fallback order: first calls follow the chain (a deferred provider once more after).
        order = [c.pid for c in sorted((c for c in plan.served if c.task == t), key=lambda c: c.at)]
        firsts = list(dict.fromkeys(order))
        if not _in_order(firsts, chain):
            problems.append(f"{what} called {firsts}, chain {chain}")
        if result.reply is not None:
            reply = result.reply
            expected = answer_text(reply.provider, t)
            if reply.text != expected:
                problems.append(f"{what} answered {reply.text!r}, expected {expected!r}")
            if plan.stream[t] and result.text != expected:
                problems.append(f"{what} streamed {result.text!r}, expected {expected!r}")
            if task_events and task_events[0].status != "ok":
                problems.append(f"{what} answered but its task record says failed")
        elif isinstance(error, StreamInterrupted):
            problems += _interrupted(what, t, error, result, plan)
        elif isinstance(error, AllProvidersFailed):
            named = {e.provider for e in error.errors}
            if not set(chain) <= named:
                problems.append(f"{what} failure names {sorted(named)}, chain {chain}")
            if task_events and task_events[0].status != "failed":
                problems.append(f"{what} failed but its task record says ok")
            if result.text:
                problems.append(f"{what} failed after yielding {result.text!r}")
        elif error is not _CANCELLED:
            problems.append(f"{what} raised {type(error).__name__}: {error}")
    problems += _dead_and_cooling(plan)
    return problems


def _kind(kind: ErrorKind | None) -> str | None:
    return kind.value if kind is not None else None


# What a slow (loaded) machine may turn any call into: the client's timeout or stall
# detector fires before the sim's answer is read.
_SLOW_MACHINE_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.STALLED})


def _kind_agrees(what: str, pid: str, record: AttemptEvent, call: Served) -> list[str]:
    if record.error_kind in _SLOW_MACHINE_KINDS:
        return []
    fault = call.fault
    if fault is None:
        if record.outcome not in ("ok", "cancelled"):
            return [
                f"{what} {pid} #{record.attempt}: sim answered, recorded {record.outcome} "
                f"{record.error_kind}"
            ]
        return []
    if record.outcome == "ok":
        return [f"{what} {pid} #{record.attempt}: sim served {fault.kind}, recorded ok"]
    want = KIND_OF.get(fault.kind)
    if record.outcome == "cancelled" or want is None:
        return []
    if record.error_kind is not want:
        return [
            f"{what} {pid} #{record.attempt}: sim served {fault.kind}, recorded {record.error_kind}"
        ]
    return []


def _in_order(called: list[str], chain: list[str]) -> bool:
    """``called`` walks ``chain`` in order, then maybe revisits (deferred) in order again."""
    position = 0
    for pid in called:
        index = chain.index(pid) if pid in chain else -1
        if index < 0:
            return False
        if index >= position:
            position = index + 1
    return len(called) == len(set(called))


def _interrupted(
    what: str, t: int, error: StreamInterrupted, result: Result, plan: Scenario
) -> list[str]:
    problems: list[str] = []
    pid = error.provider or ""
    # A stream the sim cuts or stalls sends its plain reply.
    fulls = (answer_text(pid, t), f"hello from {pid}")
    if not result.text or not any(full.startswith(result.text) for full in fulls):
        problems.append(f"{what} interrupted on {pid} after {result.text!r}")
    if error.received_chars != len(result.text):
        problems.append(f"{what} received_chars {error.received_chars} != {len(result.text)}")
    calls = sorted((c for c in plan.served if c.task == t), key=lambda c: c.at)
    last = max(i for i, c in enumerate(calls) if c.pid == pid)
    if last != len(calls) - 1:
        problems.append(f"{what} called {calls[last + 1].pid} after {pid} had sent text")
    return problems


def _dead_and_cooling(plan: Scenario) -> list[str]:
    """No call reaches a dead key after its death is known, nor a provider before its reset."""
    problems: list[str] = []
    margin = 0.15  # requests already on the wire when the fault came back
    by_pid: dict[str, list[Served]] = defaultdict(list)
    for call in sorted(plan.served, key=lambda c: c.at):
        by_pid[call.pid].append(call)
    for pid, calls in by_pid.items():
        for i, call in enumerate(calls):
            fault = call.fault
            if fault is None:
                continue
            later = [c for c in calls[i + 1 :] if c.at > call.at + margin]
            if fault.kind in DEAD_KINDS and later:
                problems.append(
                    f"{pid} got task {later[0].task}'s call {later[0].at - call.at:.2f} s "
                    f"after its {fault.kind} (task {call.task})"
                )
            if fault.kind == "rate_limit" and fault.retry_after:
                early = [c for c in later if c.at < call.at + fault.retry_after - 0.05]
                if early:
                    problems.append(
                        f"{pid} got task {early[0].task}'s call {early[0].at - call.at:.2f} s "
                        f"after a 429 with retry-after {fault.retry_after} (task {call.task})"
                    )
    return problems


def check_store(tmp: Path, run_id: str, events: list[Any]) -> list[str]:
    problems: list[str] = []
    attempt_events = [e for e in events if isinstance(e, AttemptEvent)]
    task_events = [e for e in events if isinstance(e, TaskEvent)]
    with open_store(f"sqlite:///{tmp / 'm.db'}") as store:
        rows = store.metrics()
        run = store.run(run_id)
        summary = next((s for s in store.runs(limit=5) if s.run_id == run_id), None)
    requests = sum(r.requests for r in rows)
    successes = sum(r.successes for r in rows)
    errors: Counter[str] = Counter()
    for row in rows:
        errors.update(row.errors)
    want_requests = len(attempt_events)
    if requests != want_requests:
        problems.append(f"metrics count {requests} requests, events {want_requests}")
    oks = sum(1 for e in attempt_events if e.outcome == "ok")
    if successes != oks:
        problems.append(f"metrics count {successes} successes, events {oks}")
    # A cancelled call with no error (its client went away) counts as "cancelled".
    want_errors = Counter(
        e.error_kind.value if e.error_kind else "cancelled"
        for e in attempt_events
        if e.outcome != "ok"
    )
    if +errors != +want_errors:
        problems.append(f"metrics errors {dict(errors)} != events {dict(want_errors)}")
    tokens = sum(r.output_tokens for r in rows)
    want_tokens = sum(e.output_tokens for e in attempt_events)
    if tokens != want_tokens:
        problems.append(f"metrics output tokens {tokens} != events {want_tokens}")
    if run is None or summary is None:
        return [*problems, f"run {run_id} not stored"]
    # A task its client cancelled has attempt records only; the run still lists it.
    task_ids = {e.task_id for e in events if isinstance(e, AttemptEvent | TaskEvent)}
    if len(run.tasks) != len(task_ids):
        problems.append(f"stored {len(run.tasks)} tasks, events name {len(task_ids)}")
    stored_attempts = sum(len(task.attempts) for task in run.tasks)
    if stored_attempts != len(attempt_events) or summary.attempts != len(attempt_events):
        problems.append(
            f"stored {stored_attempts} attempts (summary {summary.attempts}), "
            f"events {len(attempt_events)}"
        )
    failed = sum(1 for e in task_events if e.status == "failed")
    if summary.tasks != len(task_events) or summary.tasks_failed != failed:
        problems.append(
            f"run summary {summary.tasks} tasks / {summary.tasks_failed} failed, "
            f"events {len(task_events)} / {failed}"
        )
    return problems


def main(argv: list[str]) -> int:
    from sim_trio import started_sims

    first = int(argv[0]) if argv else 0
    last = int(argv[1]) if len(argv) > 1 else first
    failures = 0
    with started_sims() as sims:
        for seed in range(first, last + 1):
            with tempfile.TemporaryDirectory() as tmp:
                problems = asyncio.run(drive(seed, sims, Path(tmp)))
            for problem in problems:
                print(problem, flush=True)
            failures += bool(problems)
    print(f"{failures} of {last - first + 1} seeds broke an invariant")
    return 1 if failures else 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
