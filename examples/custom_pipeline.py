"""A custom pipeline on rolecall's task engine: outline -> two drafts in parallel -> critique.

Each task names a role; ``ctx.ask`` sends the prompt to that role's provider
chain (retries, fallback and recording are the router's job), tagged with the
run and task ids so ``rolecall runs show RUN`` lists every task with its
provider. A task starts once the tasks it depends on have finished; the two
drafts run at the same time.

    python examples/custom_pipeline.py [-c rolecall.yaml] "B-trees"

The built-in ``rolecall run`` workflow is defined the same way
(``rolecall.workflow.stages``).
"""

from __future__ import annotations

import argparse
import asyncio

from rolecall import Router
from rolecall.events import new_run_id
from rolecall.recorder import Recorder
from rolecall.workflow import Pipeline, Task, TaskContext


def build_pipeline(topic: str) -> Pipeline:
    pipeline = Pipeline()

    @pipeline.task(role="planner")
    async def outline(ctx: TaskContext) -> str:
        reply = await ctx.ask(f"Write a five-point outline for a short talk on {topic}.")
        return reply.text

    async def draft(ctx: TaskContext) -> str:
        audience = "beginners" if ctx.name == "draft_beginners" else "experts"
        prompt = f"Write the talk for {audience}, following this outline:\n{ctx.results['outline']}"
        return (await ctx.ask(prompt)).text

    # Tasks can also be added as objects; these two share one function.
    pipeline.add(Task("draft_beginners", "coder", draft, depends_on=["outline"]))
    pipeline.add(Task("draft_experts", "coder", draft, depends_on=["outline"]))

    @pipeline.task(role="reviewer", depends_on=["draft_beginners", "draft_experts"])
    async def critique(ctx: TaskContext) -> str:
        drafts = "\n\n---\n\n".join(ctx.results.values())
        return (await ctx.ask(f"Which draft is clearer, and why?\n\n{drafts}")).text

    return pipeline


async def main(topic: str, config_path: str | None) -> None:
    router = Router.from_file(config_path)  # reads the config now: this run's snapshot
    recorder = Recorder(router.config.metrics)
    router.events.add(recorder)
    run_id = new_run_id()
    recorder.start_run(run_id, kind="workflow", meta={"pipeline": "talk"})
    status = "failed"
    try:
        async with router:  # checks every provider's credentials first
            run = await build_pipeline(topic).run(router, run_id=run_id, max_parallel=4)
        status = "ok" if run.ok else "failed"
    finally:
        recorder.finish_run(run_id, status)
        recorder.close()
    for record in run.records.values():
        print(f"{record.name:16} {record.role:9} {record.provider or '-':10} {record.status}")
    print(run.results.get("critique", ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A custom pipeline on rolecall's engine.")
    parser.add_argument("topic")
    parser.add_argument("-c", "--config", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.topic, args.config))
