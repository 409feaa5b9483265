"""``rolecall run --verify-only RUN``: the checks again, on a finished run's output.

The same choice of commands as the run's verify stage (the spec's, the
config's as it is now, or detected from the run's plan), the same sandbox; the
result is appended to the run's saved state under ``rechecks``.
"""

from __future__ import annotations

import time
from typing import Any

from rolecall.config.schema import WorkflowConfig
from rolecall.workflow.checks import choose_checks
from rolecall.workflow.errors import WorkflowUsageError
from rolecall.workflow.files import OutputDir, UnsafePath
from rolecall.workflow.state import RunState
from rolecall.workflow.verify import files_named, run_checks

__all__ = ["recheck"]


def _planned(state: RunState) -> list[str]:
    plan = state.tasks.get("plan")
    if plan is None or plan.status != "ok" or not isinstance(plan.result, dict):
        raise WorkflowUsageError(
            f"run {state.run_id} has no plan, so nothing was written to check; "
            "finish it with 'rolecall run --resume RUN' first"
        )
    refused = {r["path"] for r in plan.result.get("refused", ())}
    return [f["path"] for f in plan.result.get("files", ()) if f["path"] not in refused]


async def recheck(state: RunState, settings: WorkflowConfig) -> dict[str, Any]:
    """Run the checks on ``state``'s output directory; the result is saved with the run."""
    output = OutputDir(state.output_dir)
    planned = _planned(state)
    present: list[str] = []
    for path in planned:
        try:
            if output.exists(path):
                present.append(path)
        except UnsafePath:
            continue
    # The spec as the user wrote it, not the clarified one (a model wrote the additions).
    chosen = choose_checks(state.spec.text, settings.verify, present)
    result: dict[str, Any] = {"round": "recheck", "source": chosen.source, "at": time.time()}
    if not chosen.commands:
        reason = "no checks configured" if chosen.source != "detected" else "no .py file"
        result.update(status="not_run", reason=reason, commands=[])
    else:
        results, isolation = await run_checks(
            chosen.commands, output.root, limit=settings.verify_timeout
        )
        failed = [r for r in results if not r.passed]
        result.update(
            status="failed" if failed else "passed",
            commands=[r.to_dict() for r in results],
            named=files_named("\n".join(r.output for r in failed), planned),
            network=isolation.describe(),
        )
    state.rechecks.append(result)
    state.save()
    state.flush()
    return result
