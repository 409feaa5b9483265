"""Errors the workflow raises on purpose.

``WorkflowUsageError`` and its subclasses are problems the user can fix in the
command line or the input files (exit 2); they stop the run. ``TaskFailed`` is
one task that could not do its work (exit 1); the run goes on with the tasks
that do not depend on it.
"""

from __future__ import annotations

from rolecall.errors import RolecallError

__all__ = ["AnswersError", "OutputDirError", "SpecError", "TaskFailed", "WorkflowUsageError"]


class WorkflowUsageError(RolecallError):
    """Bad input from the user (spec, answers, resume id, options): the run stops."""


class SpecError(WorkflowUsageError):
    """The spec file is missing, empty, binary, not UTF-8 or cannot be parsed."""


class AnswersError(WorkflowUsageError):
    """The answers file cannot be read or names questions that were not asked."""


class OutputDirError(WorkflowUsageError):
    """The output directory (-o) is a file, cannot be created or cannot be written."""


class TaskFailed(RolecallError):
    """One task could not finish its work (e.g. the plan stayed invalid after a repair)."""
