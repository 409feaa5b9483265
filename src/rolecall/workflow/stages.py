"""The built-in clarify -> plan -> generate -> verify -> review pipeline, on the engine.

Task names: ``clarify``, ``plan``, ``generate:PATH``, then the rounds of
:mod:`rolecall.workflow.rounds`: ``verify@N``, ``fix:PATH@vN`` (failed checks),
``review:PATH`` / ``review:PATH@k+1``, ``reviewed@k``, ``fix:PATH@k`` (blocking
findings). Every task result is JSON-ready, so a resumed run rebuilds the same
graph from the saved results.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rolecall._text import visible
from rolecall.workflow import prompts
from rolecall.workflow.engine import Pipeline, Task, TaskContext
from rolecall.workflow.errors import AnswersError
from rolecall.workflow.files import OutputDir, UnsafePath, write_private
from rolecall.workflow.plan import PLAN_SCHEMA, Plan, PlannedFile, parse_plan
from rolecall.workflow.prompts import Question
from rolecall.workflow.report import final_reviews, review_report, truncated_files
from rolecall.workflow.rounds import CheckSettings, Rounds
from rolecall.workflow.state import RunState
from rolecall.workflow.structured import (
    InvalidAnswer,
    ask_structured,
    extract_json,
    schema_or_text,
)
from rolecall.workflow.writing import MAX_CONTINUATIONS, cut_off, whole_answer, write_answer

__all__ = [
    "CLARIFIED_SPEC_FILE",
    "MAX_CONTINUATIONS",
    "PLAN_FILE",
    "REVIEW_FILE",
    "AnswerPrompt",
    "BuiltinStages",
    "checked_answers",
    "final_reviews",
    "resolve_answers",
    "review_report",
    "truncated_files",
]

CLARIFIED_SPEC_FILE = "clarified-spec.md"
REVIEW_FILE = "REVIEW.md"
PLAN_FILE = "plan.json"
# Called for each question without a given answer, on a terminal; returns the answer.
AnswerPrompt = Callable[[Question], Awaitable[str]]


# What an answer may be: one line of text, or a scalar a YAML file gives (a number, a date).
_ANSWER_TYPES = (str, int, float, bool, datetime.date)


def checked_answers(
    given: object, source: str = "answers", example: str = "e.g. {'lang': 'python'}"
) -> dict[str, Any]:
    """``given`` as ``{question id: answer}``, checked alike for an answers file and the
    Python API: anything else is one :class:`AnswersError` line naming ``source``."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise AnswersError(f"{source} must map question ids to answers ({example})")
    for key, value in given.items():
        # A list or mapping would reach the prompts as Python's repr ("['a', 'b']").
        if value is not None and not isinstance(value, _ANSWER_TYPES):
            if isinstance(value, list | tuple):
                kind = "a list"
            elif isinstance(value, Mapping):
                kind = "a mapping"
            else:
                kind = f"a {type(value).__name__}"
            name = visible(str(key))
            raise AnswersError(
                f"{source} gives '{name}' {kind} as its answer; an answer is one line of "
                f"text, e.g. '{name}: first, second'"
            )
    return {str(key): value for key, value in given.items()}


def resolve_answers(
    questions: Sequence[Question],
    given: Mapping[str, Any] | None,
) -> dict[str, str]:
    """Answers from the answers file; unknown ids are an :class:`AnswersError`."""
    given = given or {}
    valid = [q.id for q in questions]
    unknown = [str(key) for key in given if str(key) not in valid]
    if unknown:
        listed = ", ".join(valid) if valid else "none (the clarifier asked no questions)"
        raise AnswersError(
            f"the answers name unknown question id(s) {', '.join(unknown)}; valid ids: {listed}"
        )
    return {str(k): "" if v is None else str(v) for k, v in given.items()}


@dataclass
class BuiltinStages:
    """Builds the built-in pipeline for one run."""

    state: RunState
    output: OutputDir
    review_rounds: int = 1
    force: bool = False
    answers: Mapping[str, Any] | None = None
    ask_user: AnswerPrompt | None = None
    checks: CheckSettings = field(default_factory=CheckSettings)
    # The reviewer chain as the router orders it now, and provider id -> vendor.
    reviewer_chain: Callable[[], Sequence[str]] = tuple
    vendor: Mapping[str, str] = field(default_factory=dict)

    def pipeline(self) -> Pipeline:
        pipeline = Pipeline()
        pipeline.add(Task("clarify", "clarifier", self._clarify, stage="clarify"))
        pipeline.add(
            Task("plan", "planner", self._plan, ["clarify"], stage="plan", expand=self._expand_plan)
        )
        return pipeline

    # -- clarify -------------------------------------------------------------------------

    async def _clarify(self, ctx: TaskContext) -> dict[str, Any]:
        spec_text = self.state.spec.text
        reply = await schema_or_text(ctx.ask)(
            prompts.clarify_messages(spec_text), response_schema=prompts.QUESTIONS_SCHEMA
        )
        try:
            questions = prompts.parse_questions(extract_json(reply.text))
        except InvalidAnswer as exc:
            # Clarifying is optional: no repair round trip, go on with the spec as written.
            questions = []
            ctx.note("no usable questions")
            ctx.record.error = f"the clarifier's answer was not usable: {exc}"
        answers = resolve_answers(questions, self.answers)
        for question in questions:
            if question.id not in answers:
                answers[question.id] = (
                    await self.ask_user(question) if self.ask_user else question.default
                )
        text = prompts.clarified_spec(spec_text, questions, answers)
        write_private(self.state.run_dir / CLARIFIED_SPEC_FILE, text)
        if questions:
            ctx.note(f"{len(questions)} question(s) answered")
        return {
            "questions": [q.to_dict() for q in questions],
            "answers": answers,
            "spec": text,
        }

    # -- plan ----------------------------------------------------------------------------

    async def _plan(self, ctx: TaskContext) -> dict[str, Any]:
        spec_text = ctx.results["clarify"]["spec"]
        plan, _ = await ask_structured(
            ctx.ask, prompts.plan_messages(spec_text), PLAN_SCHEMA, parse_plan, what="plan"
        )
        refused: list[dict[str, str]] = []
        existing: list[str] = []
        for path in dict.fromkeys([*(f.path for f in plan.files), REVIEW_FILE]):
            try:
                if self.output.exists(path):
                    existing.append(path)
            except UnsafePath as exc:
                refused.append({"path": path, "reason": exc.reason})
        # Files there before this run are the user's: kept unless --force. Saved with the
        # plan, so a resumed run still tells them apart from the ones it wrote itself.
        result = {
            **plan.to_dict(),
            "fixes": list(plan.fixes),
            "refused": refused,
            "existing": existing,
        }
        write_private(self.state.run_dir / PLAN_FILE, json.dumps(result, indent=1) + "\n")
        note = f"{len(plan.files)} file(s)"
        if plan.fixes:
            note += f", {len(plan.fixes)} planner mistake(s) fixed (see plan.json)"
        ctx.note(note + (f", {len(refused)} refused" if refused else ""))
        return result

    def _expand_plan(self, result: Mapping[str, Any]) -> Iterable[Task]:
        plan = parse_plan(result)
        refused = {r["path"] for r in result.get("refused", ())}
        safe = [f for f in plan.files if f.path not in refused]
        tasks = [
            Task(
                f"generate:{f.path}",
                "coder",
                self._generator(plan, f, frozenset(result.get("existing", ()))),
                ["clarify", "plan", *(f"generate:{d}" for d in f.depends_on if d not in refused)],
                stage="generate",
            )
            for f in safe
        ]
        rounds = Rounds(
            plan=plan,
            spec_text=self.state.spec.text,
            files=tuple(f.path for f in safe),
            output=self.output,
            checks=self.checks,
            review_rounds=self.review_rounds,
            reviewer_chain=self.reviewer_chain,
            vendor=self.vendor,
        )
        return [*tasks, rounds.first([t.name for t in tasks])]

    # -- generate ------------------------------------------------------------------------

    def _generator(
        self, plan: Plan, file: PlannedFile, existing: frozenset[str]
    ) -> Callable[[TaskContext], Awaitable[Any]]:
        async def generate(ctx: TaskContext) -> dict[str, Any]:
            try:
                there = self.output.exists(file.path)
            except UnsafePath as exc:
                ctx.note("refused")
                return {"path": file.path, "status": "refused", "reason": exc.reason}
            # Also one that appeared since the plan: a resumed run's directory may have had
            # another run, or the user, write there in between.
            if not self.force and (file.path in existing or there):
                ctx.note("kept (exists)")
                return {"path": file.path, "status": "kept"}
            deps = [(d, self.output.read(d)) for d in file.depends_on]
            spec_text = ctx.results["clarify"]["spec"]
            text, cut = await whole_answer(
                ctx, prompts.generate_messages(spec_text, plan, file, deps)
            )
            if cut:  # written, so the work is not lost, but never reported as complete
                written = write_answer(ctx, self.output, file.path, text, "truncated")
                return {**written, **cut_off()}
            return write_answer(ctx, self.output, file.path, text)

        return generate
