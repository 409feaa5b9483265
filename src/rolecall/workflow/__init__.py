"""The spec-to-code workflow (clarify -> plan -> generate -> review) and its task engine.

::

    from rolecall.workflow import run_workflow

    result = await run_workflow("spec.md", config_path="rolecall.yaml", output_dir="out")
    result.status, result.files, result.review_file

Custom pipelines run on the same engine: see :mod:`rolecall.workflow.engine`.
"""

from __future__ import annotations

from rolecall.workflow.engine import (
    EngineObserver,
    Pipeline,
    PipelineRun,
    Task,
    TaskContext,
    TaskRecord,
)
from rolecall.workflow.errors import AnswersError, SpecError, TaskFailed, WorkflowUsageError
from rolecall.workflow.runner import Workflow, WorkflowResult, run_workflow
from rolecall.workflow.spec import Spec, load_spec

__all__ = [
    "AnswersError",
    "EngineObserver",
    "Pipeline",
    "PipelineRun",
    "Spec",
    "SpecError",
    "Task",
    "TaskContext",
    "TaskFailed",
    "TaskRecord",
    "Workflow",
    "WorkflowResult",
    "WorkflowUsageError",
    "load_spec",
    "run_workflow",
]
