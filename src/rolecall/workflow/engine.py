"""A small task-graph engine: tasks with roles and dependencies, run concurrently.

The built-in workflow is one pipeline on this engine, and users build their own
the same way::

    pipeline = Pipeline()

    @pipeline.task(role="planner")
    async def outline(ctx: TaskContext) -> str:
        return (await ctx.ask("Outline a talk on B-trees")).text

    @pipeline.task(role="reviewer", depends_on=["outline"])
    async def critique(ctx: TaskContext) -> str:
        return (await ctx.ask(f"Critique:\n{ctx.results['outline']}")).text

    run = await pipeline.run(router, run_id="talk-1", max_parallel=4)

A task starts once every task it depends on has finished; at most
``max_parallel`` run at once (the router adds each provider's own limit). A
task whose dependency failed is ``blocked``. ``Task.expand`` adds tasks from a
finished task's result (the workflow adds one task per planned file this way);
it is a pure function of the result, so a resumed run rebuilds the same graph.
Provider choice, retry and hand-over belong to the router: ``ctx.ask`` only
names the role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, TypeVar

from rolecall.errors import AllProvidersFailed, ProviderError, RolecallError
from rolecall.types import Message, Reply
from rolecall.workflow.errors import TaskFailed

__all__ = [
    "Completer",
    "EngineObserver",
    "Pipeline",
    "PipelineRun",
    "Task",
    "TaskContext",
    "TaskRecord",
    "TaskStatus",
]

log = logging.getLogger("rolecall.workflow")

TaskStatus = Literal["pending", "running", "ok", "failed", "blocked"]
TaskFn = Callable[["TaskContext"], Awaitable[Any]]
Expand = Callable[[Any], Iterable["Task"]]
F = TypeVar("F", bound=TaskFn)
Messages = str | Sequence[Message | Mapping[str, Any]]


class Completer(Protocol):
    """What the engine needs from :class:`rolecall.routing.router.Router`."""

    async def complete(
        self,
        role: str,
        messages: Any,
        *,
        params: Mapping[str, Any] | None = None,
        response_schema: Mapping[str, Any] | None = None,
        provider: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        stage: str | None = None,
    ) -> Reply: ...


@dataclass(frozen=True)
class Task:
    """One unit of work. ``fn(ctx)`` returns the task's result (JSON-ready, for resume)."""

    name: str
    role: str | None
    fn: TaskFn
    depends_on: Sequence[str] = ()
    stage: str | None = None
    expand: Expand | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a task needs a non-empty name")
        if isinstance(self.depends_on, str):
            raise TypeError(f"task '{self.name}': depends_on must be a list of task names")
        object.__setattr__(self, "depends_on", tuple(self.depends_on))


@dataclass
class TaskRecord:
    """What happened to one task: the row of the summary table and of the saved state."""

    name: str
    stage: str | None
    role: str | None
    depends_on: list[str] = field(default_factory=list)
    status: TaskStatus = "pending"
    note: str | None = None
    provider: str | None = None
    model: str | None = None
    calls: int = 0
    attempts: int = 0
    handovers: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    error: str | None = None
    result: Any = None
    started_at: float | None = None
    finished_at: float | None = None
    restored: bool = False

    @property
    def finished(self) -> bool:
        return self.status in ("ok", "failed", "blocked")

    def add_reply(self, reply: Reply) -> None:
        self.calls += 1
        self.provider, self.model = reply.provider, reply.model
        self._add_attempts(reply.attempts)
        self.input_tokens += reply.usage.input_tokens
        self.output_tokens += reply.usage.output_tokens
        self.latency_ms += reply.latency_ms
        if reply.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + reply.cost_usd

    def add_failure(self, exc: AllProvidersFailed) -> None:
        self.calls += 1
        attempts = tuple(getattr(exc, "attempts", ()) or ())
        self._add_attempts(attempts)
        # The router's time for the call, waits between attempts included, as for an
        # answer (and as `runs show` gives it); the attempts' sum would leave the waits out.
        spent: float | None = getattr(exc, "latency_ms", None)
        self.latency_ms += sum(a.latency_ms for a in attempts) if spent is None else spent
        if attempts:
            self.provider = attempts[-1].provider
        elif exc.errors:
            self.provider = exc.errors[-1].provider
            self.attempts += len(exc.errors)

    def _add_attempts(self, attempts: Sequence[Any]) -> None:
        self.attempts += len(attempts)
        self.handovers += sum(1 for a in attempts if a.outcome == "handover")

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: the state file is written after every task, so no deep copy.
        return {name: getattr(self, name) for name in _RECORD_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRecord:
        return cls(**{k: v for k, v in data.items() if k in _RECORD_FIELDS})


_RECORD_FIELDS = tuple(f.name for f in fields(TaskRecord))


class EngineObserver:
    """Hooks the engine calls as tasks change state (display, saved state). No-ops here."""

    def tasks_added(self, records: Sequence[TaskRecord]) -> None:
        """New tasks joined the graph (at start, or from a finished task's ``expand``)."""

    def task_started(self, record: TaskRecord) -> None:
        """A task began running."""

    def task_finished(self, record: TaskRecord) -> None:
        """A task finished (ok, failed or blocked), or was restored from an earlier run."""


class TaskContext:
    """What a task function receives: its dependencies' results and a bound ``ask``."""

    def __init__(
        self,
        task: Task,
        record: TaskRecord,
        results: Mapping[str, Any],
        router: Completer,
        run_id: str | None,
    ) -> None:
        self.task = task
        self.record = record
        self.results = results
        self.run_id = run_id
        self._router = router

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def role(self) -> str | None:
        return self.task.role

    @property
    def stage(self) -> str | None:
        return self.task.stage

    def note(self, text: str) -> None:
        """A short status shown in the summary instead of ``ok`` (e.g. ``written``)."""
        self.record.note = text

    async def ask(
        self,
        messages: Messages,
        *,
        role: str | None = None,
        params: Mapping[str, Any] | None = None,
        response_schema: Mapping[str, Any] | None = None,
        provider: str | None = None,
    ) -> Reply:
        """One routed call for this task's role (or ``role``), tagged with run and task ids."""
        use_role = role or self.task.role
        if use_role is None:
            raise ValueError(
                f"task '{self.name}' has no role: give Task(role=...) or ask(role=...)"
            )
        try:
            reply = await self._router.complete(
                use_role,
                messages,
                params=params,
                response_schema=response_schema,
                provider=provider,
                run_id=self.run_id,
                task_id=self.name,
                stage=self.stage,
            )
        except AllProvidersFailed as exc:
            self.record.add_failure(exc)
            raise
        self.record.add_reply(reply)
        return reply


@dataclass
class PipelineRun:
    """The outcome of one engine run: every task's record, in the order tasks were added."""

    records: dict[str, TaskRecord]

    @property
    def results(self) -> dict[str, Any]:
        return {n: r.result for n, r in self.records.items() if r.status == "ok"}

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.records.values())

    @property
    def failed(self) -> list[TaskRecord]:
        return [r for r in self.records.values() if r.status in ("failed", "blocked")]


class Pipeline:
    """A set of tasks and their dependencies; ``run`` executes them on a router."""

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self._tasks: dict[str, Task] = {}
        for task in tasks:
            self.add(task)

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self._tasks.values())

    def add(self, task: Task) -> Task:
        if task.name in self._tasks:
            raise ValueError(f"a task named '{task.name}' is already in the pipeline")
        self._tasks[task.name] = task
        return task

    def task(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        role: str | None = None,
        depends_on: Sequence[str] = (),
        stage: str | None = None,
        expand: Expand | None = None,
    ) -> Any:
        """Decorator form of :meth:`add`; the task is named after the function by default."""

        def register(func: F) -> F:
            self.add(Task(name or func.__name__, role, func, depends_on, stage, expand))
            return func

        return register(fn) if fn is not None else register

    async def run(
        self,
        router: Completer,
        *,
        run_id: str | None = None,
        max_parallel: int = 4,
        restore: Mapping[str, TaskRecord] | None = None,
        observers: Sequence[EngineObserver] = (),
    ) -> PipelineRun:
        """Run every task; ``restore`` holds records of an earlier run (its ``ok`` tasks are
        not run again). Ctrl-C / cancellation stops running tasks, which stay ``pending``."""
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        engine = _Engine(router, run_id, max_parallel, restore or {}, observers)
        return await engine.run(self.tasks)


def _is_task_failure(exc: BaseException) -> bool:
    """Failures that end one task; any other rolecall error (config, credentials, usage,
    no provider for a role) is the same for every task and stops the run."""
    if isinstance(exc, AllProvidersFailed | ProviderError | TaskFailed):
        return True
    return isinstance(exc, Exception) and not isinstance(exc, RolecallError)


class _Engine:
    def __init__(
        self,
        router: Completer,
        run_id: str | None,
        max_parallel: int,
        restore: Mapping[str, TaskRecord],
        observers: Sequence[EngineObserver],
    ) -> None:
        self.router = router
        self.run_id = run_id
        self.max_parallel = max_parallel
        self.restore = restore
        self.observers = observers
        self.tasks: dict[str, Task] = {}
        self.records: dict[str, TaskRecord] = {}
        self.running: dict[asyncio.Task[Any], str] = {}

    async def run(self, tasks: Sequence[Task]) -> PipelineRun:
        self.add(tasks)
        try:
            while True:
                self._start_ready()
                if not self.running:
                    break
                done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    self._finish(self.running.pop(future), future)
        except BaseException:
            await self._stop_running()
            raise
        return PipelineRun(dict(self.records))

    def add(self, tasks: Sequence[Task]) -> None:
        batch = {t.name: t for t in tasks}
        if len(batch) != len(tasks):
            raise ValueError("tasks added together must have distinct names")
        for task in tasks:
            if task.name in self.tasks:
                raise ValueError(f"a task named '{task.name}' is already in the pipeline")
            for dep in task.depends_on:
                if dep not in self.tasks and dep not in batch:
                    raise ValueError(f"task '{task.name}' depends on unknown task '{dep}'")
        _check_acyclic(batch)
        new: list[TaskRecord] = []
        for task in tasks:
            self.tasks[task.name] = task
            record = TaskRecord(task.name, task.stage, task.role, list(task.depends_on))
            self.records[task.name] = record
            new.append(record)
        self._notify("tasks_added", new)
        for task in tasks:
            earlier = self.restore.get(task.name)
            if earlier is not None and earlier.status == "ok":
                self._restore(task, earlier)

    def _restore(self, task: Task, earlier: TaskRecord) -> None:
        record = TaskRecord.from_dict(earlier.to_dict())
        record.restored = True
        self.records[task.name] = record
        self._notify("task_finished", record)
        self._expand(task, record)

    def _start_ready(self) -> None:
        progressed = True
        while progressed:  # blocking can cascade down a chain of dependents
            progressed = False
            for name, record in self.records.items():
                if record.status != "pending":
                    continue
                deps = [self.records[d] for d in self.tasks[name].depends_on]
                if any(d.status in ("failed", "blocked") for d in deps):
                    record.status = "blocked"
                    record.error = "dependency failed: " + ", ".join(
                        d.name for d in deps if d.status in ("failed", "blocked")
                    )
                    self._notify("task_finished", record)
                    progressed = True
                elif all(d.status == "ok" for d in deps) and len(self.running) < self.max_parallel:
                    self._launch(self.tasks[name], record)

    def _launch(self, task: Task, record: TaskRecord) -> None:
        results = {d: self.records[d].result for d in task.depends_on}
        context = TaskContext(task, record, results, self.router, self.run_id)
        record.status, record.started_at, record.error, record.note = (
            "running",
            time.time(),
            None,
            None,
        )
        self._notify("task_started", record)
        future = asyncio.ensure_future(task.fn(context))
        self.running[future] = task.name

    def _finish(self, name: str, future: asyncio.Task[Any]) -> None:
        record = self.records[name]
        record.finished_at = time.time()
        if future.cancelled():
            record.status, record.error = "failed", "cancelled"
            self._notify("task_finished", record)
            return
        exc = future.exception()
        if exc is None:
            record.status, record.result = "ok", future.result()
            try:
                self._expand(self.tasks[name], record)
            except Exception as bug:
                log.debug("expand of task %s failed", name, exc_info=bug)
                record.status, record.error = "failed", f"{type(bug).__name__}: {bug}"
        elif _is_task_failure(exc):
            log.debug("task %s failed", name, exc_info=exc)
            record.status = "failed"
            record.error = (
                exc.message if isinstance(exc, RolecallError) else f"{type(exc).__name__}: {exc}"
            )
        else:
            record.status = "pending"
            raise exc
        self._notify("task_finished", record)

    def _expand(self, task: Task, record: TaskRecord) -> None:
        if task.expand is not None:
            added = list(task.expand(record.result))
            if added:
                self.add(added)

    async def _stop_running(self) -> None:
        """Keep what already finished; cancel the rest, which stays ``pending`` for resume."""
        for future, name in list(self.running.items()):
            if future.done() and not future.cancelled():
                del self.running[future]
                with contextlib.suppress(BaseException):
                    self._finish(name, future)
        for future in self.running:
            future.cancel()
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)
        for name in self.running.values():
            record = self.records[name]
            record.status, record.note, record.started_at = "pending", "interrupted", None
            self._notify("task_finished", record)
        self.running.clear()

    def _notify(self, hook: str, payload: Any) -> None:
        for observer in self.observers:
            getattr(observer, hook)(payload)


def _check_acyclic(batch: Mapping[str, Task]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in batch[name].depends_on:
            if dep not in batch:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [name, dep]
                raise ValueError("tasks depend on each other in a cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in batch:
        if name not in state:
            visit(name, [name])
