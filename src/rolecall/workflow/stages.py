"""The built-in clarify -> plan -> generate -> review pipeline, defined on the engine.

Task names: ``clarify``, ``plan``, ``generate:PATH``, ``review:PATH``, and for
each fix round k: ``fix:PATH@k`` then ``review:PATH@k+1``. Every task result is
JSON-ready, so a resumed run rebuilds the same graph from the saved results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rolecall.workflow import prompts
from rolecall.workflow.engine import Pipeline, Task, TaskContext
from rolecall.workflow.errors import AnswersError
from rolecall.workflow.files import OutputDir, UnsafePath, atomic_write_text
from rolecall.workflow.plan import PLAN_SCHEMA, Plan, PlannedFile, parse_plan
from rolecall.workflow.prompts import Finding, Question
from rolecall.workflow.state import RunState
from rolecall.workflow.structured import InvalidAnswer, ask_structured, extract_json, strip_fence

__all__ = [
    "CLARIFIED_SPEC_FILE",
    "PLAN_FILE",
    "REVIEW_FILE",
    "AnswerPrompt",
    "BuiltinStages",
    "final_reviews",
    "resolve_answers",
    "review_report",
    "truncated_files",
]

CLARIFIED_SPEC_FILE = "clarified-spec.md"
REVIEW_FILE = "REVIEW.md"
PLAN_FILE = "plan.json"
# A file answer cut off at the provider's output token limit is continued on the same
# provider this many times before the file is reported truncated.
MAX_CONTINUATIONS = 2
# Called for each question without a given answer, on a terminal; returns the answer.
AnswerPrompt = Callable[[Question], Awaitable[str]]


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
            f"the answers file names unknown question id(s) {', '.join(unknown)}; "
            f"valid ids: {listed}"
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
        reply = await ctx.ask(
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
        atomic_write_text(self.state.run_dir / CLARIFIED_SPEC_FILE, text)
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
        atomic_write_text(self.state.run_dir / PLAN_FILE, json.dumps(result, indent=1) + "\n")
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
        tasks += [self._review_task(f, 1) for f in safe]
        return tasks

    # -- generate ------------------------------------------------------------------------

    def _generator(
        self, plan: Plan, file: PlannedFile, existing: frozenset[str]
    ) -> Callable[[TaskContext], Awaitable[Any]]:
        async def generate(ctx: TaskContext) -> dict[str, Any]:
            try:
                self.output.target(file.path)
            except UnsafePath as exc:
                ctx.note("refused")
                return {"path": file.path, "status": "refused", "reason": exc.reason}
            if file.path in existing and not self.force:
                ctx.note("kept (exists)")
                return {"path": file.path, "status": "kept"}
            deps = [(d, self.output.read(d)) for d in file.depends_on]
            spec_text = ctx.results["clarify"]["spec"]
            text, cut = await _whole_answer(
                ctx, prompts.generate_messages(spec_text, plan, file, deps)
            )
            if cut:  # written, so the work is not lost, but never reported as complete
                return {**self._write(ctx, file.path, text, "truncated"), **_cut_off()}
            return self._write(ctx, file.path, text)

        return generate

    def _write(
        self, ctx: TaskContext, path: str, answer: str, status: str = "written"
    ) -> dict[str, Any]:
        content = strip_fence(answer)
        if content and not content.endswith("\n"):
            content += "\n"
        try:
            self.output.write(path, content)
        except UnsafePath as exc:
            ctx.note("refused")
            return {"path": path, "status": "refused", "reason": exc.reason}
        ctx.note(status)
        digest = hashlib.sha256(content.encode()).hexdigest()
        return {"path": path, "status": status, "sha256": digest, "bytes": len(content)}

    # -- review and fix rounds ------------------------------------------------------------

    def _review_task(self, file: PlannedFile, round_no: int) -> Task:
        after = f"generate:{file.path}" if round_no == 1 else f"fix:{file.path}@{round_no - 1}"
        return Task(
            _review_name(file.path, round_no),
            "reviewer",
            self._reviewer(file, round_no),
            ["clarify", after],
            stage="review",
            expand=lambda result: self._expand_review(file, result),
        )

    def _reviewer(
        self, file: PlannedFile, round_no: int
    ) -> Callable[[TaskContext], Awaitable[Any]]:
        async def review(ctx: TaskContext) -> dict[str, Any]:
            generated = ctx.results.get(f"generate:{file.path}", {"status": "written"})
            content = self.output.read(file.path)
            if content is None or generated["status"] != "written":
                ctx.note("skipped (not generated)")
                return {"path": file.path, "round": round_no, "findings": [], "skipped": True}
            spec_text = ctx.results["clarify"]["spec"]
            findings, _ = await ask_structured(
                ctx.ask,
                prompts.review_messages(spec_text, file, content),
                prompts.FINDINGS_SCHEMA,
                prompts.parse_findings,
                what="review",
            )
            blocking = sum(1 for f in findings if f.blocking)
            ctx.note(_findings_note(findings, blocking))
            return {
                "path": file.path,
                "round": round_no,
                "findings": [f.to_dict() for f in findings],
                "blocking": blocking,
            }

        return review

    def _expand_review(self, file: PlannedFile, result: Mapping[str, Any]) -> Iterable[Task]:
        round_no = int(result["round"])
        if not result.get("blocking") or round_no > self.review_rounds:
            return []
        findings = [Finding.from_dict(f) for f in result["findings"]]
        fix = Task(
            f"fix:{file.path}@{round_no}",
            "coder",
            self._fixer(file, round_no, findings),
            ["clarify", _review_name(file.path, round_no)],
            stage="review",
        )
        return [fix, self._review_task(file, round_no + 1)]

    def _fixer(
        self, file: PlannedFile, round_no: int, findings: Sequence[Finding]
    ) -> Callable[[TaskContext], Awaitable[Any]]:
        async def fix(ctx: TaskContext) -> dict[str, Any]:
            content = self.output.read(file.path) or ""
            spec_text = ctx.results["clarify"]["spec"]
            blocking = [f for f in findings if f.blocking]
            text, cut = await _whole_answer(
                ctx, prompts.fix_messages(spec_text, file, content, blocking)
            )
            if cut:  # the reviewed version stays: a cut-off fix must not replace it
                ctx.note("truncated (kept the earlier version)")
                return {"path": file.path, "status": "truncated", "round": round_no, **_cut_off()}
            return {**self._write(ctx, file.path, text), "round": round_no}

        return fix


async def _whole_answer(ctx: TaskContext, messages: prompts.Chat) -> tuple[str, bool]:
    """The answer's text, continued on the same provider while it stops at the output
    token limit (at most :data:`MAX_CONTINUATIONS` times); True when still cut off."""
    reply = await ctx.ask(messages)
    text = reply.text
    for _ in range(MAX_CONTINUATIONS):
        if reply.finish_reason != "length":
            return text, False
        messages = [
            *messages,
            {"role": "assistant", "content": text},
            {"role": "user", "content": prompts.CONTINUE},
        ]
        reply = await ctx.ask(messages, provider=reply.provider)
        text += reply.text
    return text, reply.finish_reason == "length"


def _cut_off() -> dict[str, str]:
    return {
        "reason": f"the answer hit the output token limit {MAX_CONTINUATIONS + 1} times: "
        "raise max_tokens for the coder role"
    }


def truncated_files(records: Mapping[str, Any]) -> list[str]:
    """Files whose last generate or fix answer was cut off, sorted."""
    latest: dict[str, tuple[int, str]] = {}
    for record in records.values():
        result = record.result
        if record.status != "ok" or not isinstance(result, dict) or "path" not in result:
            continue
        if record.name.startswith("generate:"):
            order = 0
        elif record.name.startswith("fix:"):
            order = int(result.get("round", 0))
        else:
            continue
        if result["path"] not in latest or order >= latest[result["path"]][0]:
            latest[result["path"]] = (order, str(result.get("status")))
    return sorted(path for path, (_, status) in latest.items() if status == "truncated")


def _review_name(path: str, round_no: int) -> str:
    return f"review:{path}" if round_no == 1 else f"review:{path}@{round_no}"


def _findings_note(findings: Sequence[Finding], blocking: int) -> str:
    if not findings:
        return "clean"
    return f"{len(findings)} finding(s), {blocking} blocking"


def final_reviews(records: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The last finished review of each file (what remains after the fix rounds)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records.values():
        result = record.result
        if record.stage != "review" or record.status != "ok" or not isinstance(result, dict):
            continue
        if "findings" not in result or result.get("skipped"):
            continue
        path = result["path"]
        if path not in latest or result["round"] > latest[path]["round"]:
            latest[path] = result
    return latest


def review_report(
    run_id: str,
    reviews: Mapping[str, Mapping[str, Any]],
    rounds: int,
    truncated: Sequence[str] = (),
) -> str:
    """REVIEW.md: files left cut off, then the findings that remain, per file, worst first."""
    order = {s: i for i, s in enumerate(prompts.SEVERITIES)}
    lines = [
        "# Review",
        "",
        f"Findings that remain after up to {rounds} fix round(s) (run {run_id}).",
        "",
    ]
    if truncated:
        lines += [
            "## Truncated",
            "",
            "The answer for these files stopped at the provider's output token limit; "
            "raise `max_tokens` for the coder role and run again.",
            "",
            *(f"- {p}" for p in truncated),
            "",
        ]
    clean = [p for p, r in sorted(reviews.items()) if not r["findings"]]
    for path, review in sorted(reviews.items()):
        findings = sorted(
            (Finding.from_dict(f) for f in review["findings"]), key=lambda f: order[f.severity]
        )
        if not findings:
            continue
        lines += [f"## {path}", ""]
        for f in findings:
            where = f" (line {f.line})" if f.line else ""
            lines.append(f"- **{f.severity}**{where}: {f.message}")
        lines.append("")
    if clean:
        lines += ["## No findings", "", *(f"- {p}" for p in clean), ""]
    if not reviews:
        lines += ["No file was reviewed.", ""]
    return "\n".join(lines)
