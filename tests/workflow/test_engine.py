"""The task-graph engine: order, parallelism, failures, expansion, restore, cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import write_config

from rolecall.errors import NoProviderForRole
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.workflow.engine import EngineObserver, Pipeline, Task, TaskContext, TaskRecord
from rolecall.workflow.errors import TaskFailed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_pipeline.py"
NO_ROUTER: Any = None  # tasks below that never call ``ask`` need no router


async def test_dependencies_run_first_and_pass_results() -> None:
    order: list[str] = []
    pipeline = Pipeline()

    @pipeline.task
    async def a(ctx: TaskContext) -> int:
        order.append("a")
        return 1

    @pipeline.task(depends_on=["a"])
    async def b(ctx: TaskContext) -> int:
        order.append("b")
        return ctx.results["a"] + 1

    pipeline.add(Task("c", None, lambda ctx: _value(ctx.results["b"] * 10), ["b"]))
    run = await pipeline.run(NO_ROUTER)
    assert order == ["a", "b"]
    assert run.results == {"a": 1, "b": 2, "c": 20}
    assert run.ok


async def _value(value: Any) -> Any:
    return value


async def test_max_parallel_is_respected_and_used() -> None:
    running = 0
    peak = 0

    async def work(ctx: TaskContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    pipeline = Pipeline(Task(f"t{i}", None, work) for i in range(10))
    await pipeline.run(NO_ROUTER, max_parallel=3)
    assert peak == 3


async def test_failure_blocks_dependents_but_not_others() -> None:
    async def boom(ctx: TaskContext) -> None:
        raise TaskFailed("no good")

    ran: list[str] = []

    async def ok(ctx: TaskContext) -> str:
        ran.append(ctx.name)
        return ctx.name

    pipeline = Pipeline(
        [
            Task("bad", None, boom),
            Task("child", None, ok, ["bad"]),
            Task("grandchild", None, ok, ["child"]),
            Task("other", None, ok),
        ]
    )
    run = await pipeline.run(NO_ROUTER)
    status = {name: r.status for name, r in run.records.items()}
    assert status == {"bad": "failed", "child": "blocked", "grandchild": "blocked", "other": "ok"}
    assert run.records["bad"].error == "no good"
    assert ran == ["other"]
    assert not run.ok


async def test_unexpected_exception_fails_the_task_with_its_type() -> None:
    async def bug(ctx: TaskContext) -> None:
        raise KeyError("missing")

    run = await Pipeline([Task("bug", None, bug)]).run(NO_ROUTER)
    assert run.records["bug"].status == "failed"
    assert "KeyError" in (run.records["bug"].error or "")


async def test_run_wide_errors_stop_the_run() -> None:
    async def no_provider(ctx: TaskContext) -> None:
        raise NoProviderForRole("coder")

    with pytest.raises(NoProviderForRole):
        await Pipeline([Task("x", None, no_provider)]).run(NO_ROUTER)


async def test_expand_adds_tasks_from_a_result() -> None:
    async def plan(ctx: TaskContext) -> list[str]:
        return ["x", "y"]

    async def make(ctx: TaskContext) -> str:
        return ctx.name.upper()

    def expand(result: list[str]) -> list[Task]:
        return [Task(name, None, make, ["plan"]) for name in result]

    run = await Pipeline([Task("plan", None, plan, expand=expand)]).run(NO_ROUTER)
    assert run.results == {"plan": ["x", "y"], "x": "X", "y": "Y"}


async def test_restore_skips_finished_tasks_and_rebuilds_the_graph() -> None:
    calls: list[str] = []

    async def plan(ctx: TaskContext) -> list[str]:
        calls.append("plan")
        return ["x", "y"]

    async def make(ctx: TaskContext) -> str:
        calls.append(ctx.name)
        return ctx.name

    def build() -> Pipeline:
        expand = lambda names: [Task(n, None, make, ["plan"]) for n in names]  # noqa: E731
        return Pipeline([Task("plan", None, plan, expand=expand)])

    first = await build().run(NO_ROUTER)
    earlier = dict(first.records)
    earlier["y"] = TaskRecord("y", None, None, status="failed")
    calls.clear()
    second = await build().run(NO_ROUTER, restore=earlier)
    assert calls == ["y"]
    assert second.records["plan"].restored and second.records["x"].restored
    assert not second.records["y"].restored and second.ok


async def test_cancellation_leaves_running_tasks_pending() -> None:
    started = asyncio.Event()
    finished: list[TaskRecord] = []

    class Watch(EngineObserver):
        def task_finished(self, record: TaskRecord) -> None:
            finished.append(record)

    async def slow(ctx: TaskContext) -> None:
        started.set()
        await asyncio.sleep(30)

    async def quick(ctx: TaskContext) -> str:
        return "done"

    pipeline = Pipeline([Task("quick", None, quick), Task("slow", None, slow)])
    runner = asyncio.ensure_future(pipeline.run(NO_ROUTER, observers=[Watch()]))
    await started.wait()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    by_name = {r.name: r for r in finished}
    assert by_name["quick"].status == "ok"
    assert by_name["slow"].status == "pending" and by_name["slow"].note == "interrupted"


def test_graph_errors_are_reported() -> None:
    async def noop(ctx: TaskContext) -> None:
        return None

    pipeline = Pipeline([Task("a", None, noop)])
    with pytest.raises(ValueError, match="already"):
        pipeline.add(Task("a", None, noop))
    with pytest.raises(TypeError):
        Task("b", None, noop, depends_on="a")
    cyclic = Pipeline([Task("a", None, noop, ["b"]), Task("b", None, noop, ["a"])])
    with pytest.raises(ValueError, match="cycle"):
        asyncio.run(cyclic.run(NO_ROUTER))
    unknown = Pipeline([Task("a", None, noop, ["ghost"])])
    with pytest.raises(ValueError, match="unknown task 'ghost'"):
        asyncio.run(unknown.run(NO_ROUTER))


async def test_ask_is_routed_for_the_task_role_with_ids(tmp_path: Path) -> None:
    with SimServer("openai", reply="hello") as gpt, SimServer("anthropic", reply="hi") as claude:
        config = write_config(
            tmp_path,
            {"gpt": gpt, "claude": claude},
            {"planner": {"provider": "claude"}},
            default_provider="gpt",
        )
        seen: list[Any] = []
        pipeline = Pipeline()

        @pipeline.task(role="planner", stage="think")
        async def outline(ctx: TaskContext) -> str:
            return (await ctx.ask("outline please")).text

        @pipeline.task(role="writer", depends_on=["outline"])
        async def write(ctx: TaskContext) -> str:
            return (await ctx.ask(f"expand: {ctx.results['outline']}")).text

        router = Router.from_file(config, check_credentials=False)

        class Sink:
            def emit(self, event: Any) -> None:
                seen.append(event)

        router.events.add(Sink())
        async with router:
            run = await pipeline.run(router, run_id="run-1")
        assert run.results == {"outline": "hi", "write": "hello"}
        assert run.records["outline"].provider == "claude"
        assert run.records["write"].provider == "gpt"  # unassigned role -> default
        assert run.records["outline"].input_tokens > 0
        tasks = [e for e in seen if e.type == "task"]
        assert {(e.run_id, e.task_id, e.stage) for e in tasks} == {
            ("run-1", "outline", "think"),
            ("run-1", "write", None),
        }


async def test_bundled_custom_pipeline_example_runs(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("custom_pipeline_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with SimServer("openai", reply="text") as gpt, SimServer("anthropic", reply="notes") as claude:
        config = write_config(
            tmp_path,
            {"gpt": gpt, "claude": claude},
            {"planner": {"provider": "claude"}, "reviewer": {"provider": "claude"}},
            default_provider="gpt",
        )
        async with Router.from_file(config) as router:
            run = await module.build_pipeline("B-trees").run(router, run_id="talk")
    assert run.ok
    providers = {name: r.provider for name, r in run.records.items()}
    assert providers == {
        "outline": "claude",
        "draft_beginners": "gpt",
        "draft_experts": "gpt",
        "critique": "claude",
    }
    assert gpt.calls == 2 and claude.calls == 2
