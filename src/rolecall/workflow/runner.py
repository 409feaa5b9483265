"""One workflow run: config snapshot, router, recorder, engine, saved state, REVIEW.md.

The config file is read at the start of every run and the run keeps that
snapshot, so a changed role assignment applies to the next run with no restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rolecall._files import remove_leftover_temps
from rolecall.events import EventSink, TaskOutcome, new_run_id
from rolecall.recording.sinks import attach_sinks
from rolecall.workflow.engine import EngineObserver, TaskRecord
from rolecall.workflow.errors import OutputDirError, TaskFailed, WorkflowUsageError
from rolecall.workflow.files import (
    OutputDir,
    UnsafePath,
    claim_output_dir,
    output_dir_problem,
    write_private,
)
from rolecall.workflow.report import (
    checks_summary,
    final_reviews,
    review_report,
    truncated_files,
    unresolved_files,
    verify_history,
)
from rolecall.workflow.resumed import WORKFLOW_ROLES, resume_notes, role_chains, spec_file
from rolecall.workflow.rounds import CheckSettings
from rolecall.workflow.spec import Spec, load_spec
from rolecall.workflow.stages import REVIEW_FILE, AnswerPrompt, BuiltinStages, checked_answers
from rolecall.workflow.state import RunState, StateSaver, run_dir_of
from rolecall.workflow.vendors import vendors

if TYPE_CHECKING:
    from rolecall.recording.recorder import RecordQueue
    from rolecall.routing.router import Router

__all__ = ["REVIEW_FILE", "Workflow", "WorkflowResult", "run_workflow"]

log = logging.getLogger("rolecall.workflow")


@dataclass
class WorkflowResult:
    """How a run ended, and where its output and records are."""

    run_id: str
    # ok | partial (paths refused, answers truncated, checks failed) | failed | interrupted
    status: str
    output_dir: Path
    run_dir: Path
    records: list[TaskRecord]
    refused: list[dict[str, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    review_file: Path | None = None
    # Files whose answer stayed cut off at the output token limit (not counted as written).
    truncated: list[str] = field(default_factory=list)
    # The checks' outcome: {status: passed | failed | not run, rounds, fix_rounds, commands}.
    checks: dict[str, Any] = field(default_factory=dict)
    # Files whose last review still has blocker/major findings: the review rounds ran out.
    unresolved: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def files(self) -> list[str]:
        """Paths written by this run, relative to the output directory."""
        return [
            r.result["path"]
            for r in self.records
            if r.stage == "generate" and r.status == "ok" and r.result.get("status") == "written"
        ]

    def to_dict(self) -> dict[str, Any]:
        from rolecall.workflow.display import task_row

        return {
            "run_id": self.run_id,
            "status": self.status,
            "output_dir": str(self.output_dir),
            "run_dir": str(self.run_dir),
            "review": str(self.review_file) if self.review_file else None,
            "refused": self.refused,
            "kept": self.kept,
            "truncated": self.truncated,
            "unresolved": self.unresolved,
            "checks": self.checks,
            "tasks": [task_row(r) for r in self.records],
        }


@dataclass
class Workflow:
    """The clarify -> plan -> generate -> review workflow, re-reading the config each run."""

    config_path: str | Path | None = None
    # Where files go; default ./out. A resumed run keeps its own (giving another is an error).
    output_dir: str | Path | None = None
    answers: Mapping[str, Any] | None = None
    ask_user: AnswerPrompt | None = None
    max_parallel: int = 4
    # Times a file with blocker/major findings goes back to the coder; None: 1 for a new
    # run, and for a resumed one the number it began with (a number given is not used).
    review_rounds: int | None = None
    force: bool = False
    check_credentials: bool = True
    observers: Sequence[EngineObserver] = ()
    sinks: Sequence[EventSink] = ()
    runs_dir: str | Path | None = None
    # Called with the run's state once the config and spec are known good, before any task.
    on_start: Callable[[RunState, bool], None] | None = None

    async def run(self, spec: str | Path | Spec, *, run_id: str | None = None) -> WorkflowResult:
        """A new run of ``spec`` (a path, or a :class:`Spec`)."""
        review_rounds = 1 if self.review_rounds is None else self.review_rounds
        if self.max_parallel < 1 or review_rounds < 0:
            raise WorkflowUsageError("max_parallel must be >= 1 and review_rounds >= 0")
        answers = checked_answers(self.answers)
        loaded = spec if isinstance(spec, Spec) else load_spec(spec)
        output_dir = _absolute(self.output_dir or "out")
        _check_output_dir(output_dir)  # before any provider call spends tokens
        router = self._router()
        run_id = run_id or new_run_id()
        state = RunState(
            run_id=run_id,
            run_dir=self._runs_dir(router) / run_id,
            spec=loaded,
            output_dir=output_dir,
            options={
                "review_rounds": review_rounds,
                "force": self.force,
                "answers": answers or None,
                # What a resume compares with, to say what changed since (resumed.py).
                "roles": role_chains(router.config),
                "spec_file": spec_file(loaded.path),
            },
        )
        return await self._execute(router, state, restore={}, resumed=False)

    async def resume(self, run_id: str) -> WorkflowResult:
        """Finish run ``run_id``: its finished tasks are not run again."""
        checked_answers(self.answers)
        router = self._router()
        state = RunState.load(run_dir_of(self._runs_dir(router), run_id))
        if self.output_dir is not None and _absolute(self.output_dir) != state.output_dir:
            raise WorkflowUsageError(
                f"run {run_id} writes to {state.output_dir}, not {self.output_dir}: "
                "leave the output directory out to resume it, or start a new run"
            )
        _check_output_dir(state.output_dir)
        restore = _still_valid(state.tasks, OutputDir(state.output_dir))
        notes = resume_notes(state, role_chains(router.config), self.review_rounds)
        state.status = "running"
        return await self._execute(router, state, restore=restore, resumed=True, notes=notes)

    async def verify_only(self, run_id: str) -> dict[str, Any]:
        """Run the checks again on run ``run_id``'s output; saved with the run."""
        from rolecall.workflow.recheck import recheck

        router = self._router()
        try:
            state = RunState.load(run_dir_of(self._runs_dir(router), run_id))
            return await recheck(state, router.config.workflow)
        finally:
            await router.aclose()

    # -- internals -----------------------------------------------------------------------

    def _router(self) -> Router:
        from rolecall.routing.router import Router

        # The workflow calls its own roles alone: another provider's key cannot stop it.
        return Router.from_file(
            self.config_path, check_credentials=self.check_credentials, checked_roles=WORKFLOW_ROLES
        )

    def _runs_dir(self, router: Router) -> Path:
        # Relative to the working directory, like the recorder's run log beside it.
        return Path(self.runs_dir or router.config.metrics.runs_dir).expanduser().absolute()

    async def _execute(
        self,
        router: Router,
        state: RunState,
        restore: Mapping[str, TaskRecord],
        resumed: bool,
        notes: Sequence[str] = (),
    ) -> WorkflowResult:
        # Held before anything is recorded: a refused second run writes nothing at all.
        with claim_output_dir(state.output_dir):
            # A run killed mid-write left a temporary file; the claim says none is in flight.
            for directory in (state.output_dir, state.run_dir):
                remove_leftover_temps(Path(directory))
            if self.on_start is not None:
                self.on_start(state, resumed)
            for note in notes:
                log.warning("%s", note)
            return await self._execute_claimed(router, state, restore)

    async def _execute_claimed(
        self, router: Router, state: RunState, restore: Mapping[str, TaskRecord]
    ) -> WorkflowResult:
        options = state.options
        output = OutputDir(state.output_dir)
        stages = BuiltinStages(
            state=state,
            output=output,
            review_rounds=int(options.get("review_rounds", 1)),
            force=bool(options.get("force")) or self.force,
            answers=options.get("answers") or self.answers,
            ask_user=self.ask_user,
            checks=_check_settings(router),
            reviewer_chain=lambda: router.chain("reviewer"),
            vendor=vendors(router.config.providers),
        )
        for sink in (*self.sinks, *(o for o in self.observers if hasattr(o, "emit"))):
            router.events.add(sink)
        # The run log and metrics store, and tracing when the OTEL_* variables ask for it.
        recorder = attach_sinks(router)
        recorder.start_run(
            state.run_id,
            kind="workflow",
            meta={"spec": state.spec.name, "output_dir": state.output_dir},
        )
        state.save()
        status = "failed"
        try:
            async with router:
                run = await stages.pipeline().run(
                    router,
                    run_id=state.run_id,
                    max_parallel=self.max_parallel,
                    restore=restore,
                    observers=[
                        StateSaver(state),
                        OutcomeRecorder(recorder, state.run_id),
                        *self.observers,
                    ],
                )
            records = list(run.records.values())
            refused = _refused(records)
            truncated = truncated_files(run.records)
            checks = checks_summary(run.records)
            unresolved = unresolved_files(run.records)
            review_file = self._write_review(state, output, stages, records, truncated)
            if run.failed:
                status = "failed"
            elif refused or truncated or checks["status"] == "failed":
                status = "partial"
            else:
                status = "ok"
        except (asyncio.CancelledError, KeyboardInterrupt):
            status = "interrupted"
            raise
        finally:
            state.status = status
            state.save()
            state.flush()
            recorder.finish_run(state.run_id, status)
            recorder.close()
        return WorkflowResult(
            run_id=state.run_id,
            status=status,
            output_dir=Path(state.output_dir),
            run_dir=state.run_dir,
            records=records,
            refused=refused,
            kept=[
                r.result["path"]
                for r in records
                if r.stage == "generate" and r.status == "ok" and r.result["status"] == "kept"
            ],
            review_file=review_file,
            truncated=truncated,
            checks=checks,
            unresolved=unresolved,
        )

    def _write_review(
        self,
        state: RunState,
        output: OutputDir,
        stages: BuiltinStages,
        records: list[TaskRecord],
        truncated: Sequence[str],
    ) -> Path | None:
        by_name = {r.name: r for r in records}
        reviews = final_reviews(by_name)
        plan = by_name.get("plan")
        if plan is None or plan.status != "ok":
            return None
        text = review_report(
            state.run_id, reviews, stages.review_rounds, truncated, verify_history(by_name)
        )
        # A full disk here loses the report, not the run: its files and state are kept.
        saved: Path | None = state.run_dir / "review.md"
        try:
            write_private(state.run_dir / "review.md", text)
        except TaskFailed as exc:
            log.warning("%s", exc.message)
            saved = None
        # A planned review.md is REVIEW.md on a case-insensitive file system: not replaced.
        planned = {f["path"].casefold() for f in plan.result["files"]}
        if REVIEW_FILE.casefold() in planned:
            return saved
        if REVIEW_FILE in plan.result.get("existing", ()) and not stages.force:
            return saved
        try:
            return output.write(REVIEW_FILE, text)
        except UnsafePath:
            return saved
        except TaskFailed as exc:
            log.warning("%s", exc.message)
            return saved


class OutcomeRecorder(EngineObserver):
    """Records what the run concluded of each task it finished, for ``runs show``: a plan
    still invalid fails though every call was answered; the checks make no call."""

    def __init__(self, recorder: RecordQueue, run_id: str) -> None:
        self.recorder, self.run_id = recorder, run_id

    def task_finished(self, record: TaskRecord) -> None:
        if record.restored or record.status not in ("ok", "failed", "blocked"):
            return  # recorded by the run that finished it; or stopped, to run again
        self.recorder.task_outcome(
            TaskOutcome(
                run_id=self.run_id,
                task_id=record.name,
                role=record.role,
                stage=record.stage,
                status=record.status,
                error=record.error,
                note=record.note,
            )
        )


def _check_settings(router: Router) -> CheckSettings:
    settings = router.config.workflow
    return CheckSettings(
        commands=settings.verify,
        timeout=settings.verify_timeout,
        max_fix_rounds=settings.max_fix_rounds,
        other_vendor=settings.review.other_vendor,
    )


def _check_output_dir(path: str) -> None:
    problem = output_dir_problem(path)
    if problem is not None:
        raise OutputDirError(
            f"output directory (-o) {problem}: pass -o a new directory or a writable existing one"
        )


def _absolute(path: str | Path) -> str:
    return str(Path(path).resolve())


def _still_valid(tasks: Mapping[str, TaskRecord], output: OutputDir) -> dict[str, TaskRecord]:
    """The earlier records a resumed run keeps: not a file's generation when the file is
    gone from the output directory (deleted, or never there after a kill), nor any task
    after it (checks, reviews, fixes saw the old file), so those run again."""
    redo = {name for name, record in tasks.items() if _file_gone(record, output)}
    while True:
        after = {
            name
            for name, record in tasks.items()
            if name not in redo and not redo.isdisjoint(record.depends_on)
        }
        if not after:
            return {name: record for name, record in tasks.items() if name not in redo}
        redo |= after


def _file_gone(record: TaskRecord, output: OutputDir) -> bool:
    result = record.result
    if record.stage != "generate" or record.status != "ok" or not isinstance(result, dict):
        return False
    if result.get("status") not in ("written", "truncated"):
        return False
    try:
        return not output.exists(str(result.get("path")))
    except UnsafePath:
        return False


def _refused(records: Sequence[TaskRecord]) -> list[dict[str, str]]:
    refused: list[dict[str, str]] = []
    for record in records:
        if record.status != "ok" or not isinstance(record.result, dict):
            continue
        if record.name == "plan":
            refused += record.result.get("refused", [])
        elif record.stage == "generate" and record.result.get("status") == "refused":
            refused.append({"path": record.result["path"], "reason": record.result["reason"]})
    return refused


async def run_workflow(
    spec: str | Path | Spec,
    *,
    config_path: str | Path | None = None,
    resume: str | None = None,
    **options: Any,
) -> WorkflowResult:
    """Run (or, with ``resume=RUN_ID``, finish) the workflow; the config is read anew."""
    workflow = Workflow(config_path=config_path, **options)
    if resume:
        return await workflow.resume(resume)
    return await workflow.run(spec)
