"""Verify and review rounds: check the output, fix what fails, review, fix, check again.

The graph grows as results come in (``Task.expand``, a pure function of a
result, so a resumed run rebuilds the same graph)::

    generate:* --> verify@1 --(failed, fix rounds left)--> fix:P@v1 ... --> verify@2 ...
                      | (passed, nothing to run, or no fix round left)
                      v
            review:P (every file) --> reviewed@1 --(blocking findings, rounds left)-->
            fix:P@1 (those files) --> verify@N --> ... --> review:P@2 --> reviewed@2 ...

``verify@N`` counts up across the run. ``max_fix_rounds`` bounds the fix rounds
that failed checks start, ``review_rounds`` those that blocking findings start.
Each verify result carries ``writers`` (file -> provider of its latest version
written by this run), which the reviews use to pick a reviewer of another vendor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rolecall.errors import AllProvidersFailed
from rolecall.types import Reply
from rolecall.workflow import prompts
from rolecall.workflow.checks import choose_checks
from rolecall.workflow.engine import Task, TaskContext
from rolecall.workflow.files import OutputDir, UnsafePath
from rolecall.workflow.plan import Plan, PlannedFile
from rolecall.workflow.prompts import Finding
from rolecall.workflow.structured import Asker, ask_structured
from rolecall.workflow.vendors import ReviewerChoice, order_reviewers
from rolecall.workflow.verify import CommandResult, files_named, run_checks
from rolecall.workflow.writing import whole_answer, write_answer

__all__ = ["CheckSettings", "Rounds", "checks_text", "review_name"]

TaskFn = Callable[[TaskContext], Awaitable[Any]]
# How much of a failing command's output goes into a prompt (the tail, where errors are).
PROMPT_OUTPUT_CHARS = 3000
REVIEW_OUTPUT_CHARS = 1200


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """The run's ``workflow:`` settings."""

    commands: Sequence[str] | None = None  # None: detect from the plan
    timeout: float = 120.0
    max_fix_rounds: int = 2
    other_vendor: bool = True


@dataclass(frozen=True, slots=True)
class _Phase:
    """Where a verify task stands: the review round after it and the files that round
    reviews, the fix rounds failed checks have used, the verify task before it."""

    review_round: int
    files: tuple[str, ...]
    fixes_used: int
    previous: str | None


def review_name(path: str, round_no: int) -> str:
    return f"review:{path}" if round_no == 1 else f"review:{path}@{round_no}"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def checks_text(verify: Mapping[str, Any], output_chars: int = REVIEW_OUTPUT_CHARS) -> str:
    """A verify result as a few lines for a prompt: each command's result, failures' output."""
    if verify.get("status") == "not_run":
        return f"not run ({verify.get('reason', 'no checks')})"
    lines: list[str] = []
    for data in verify.get("commands", ()):
        result = CommandResult.from_dict(data)
        lines.append(f"- `{result.command}`: {result.summary()}")
        if not result.passed and result.output.strip():
            lines.append("```\n" + _tail(result.output.strip(), output_chars) + "\n```")
    return "\n".join(lines)


@dataclass
class Rounds:
    """Builds the verify, review and fix tasks that follow the generate stage."""

    plan: Plan
    # The spec as the user wrote it: its Verify section, not one in the clarifier's
    # questions or default answers appended to it, names the commands run.
    spec_text: str
    files: tuple[str, ...]  # the planned files that are safe to write
    output: OutputDir
    checks: CheckSettings
    review_rounds: int
    reviewer_chain: Callable[[], Sequence[str]]
    vendor: Mapping[str, str]

    def first(self, generated: Sequence[str]) -> Task:
        """``verify@1``, after every generate task."""
        return self._verify_task(1, generated, _Phase(1, self.files, 0, None))

    # -- verify --------------------------------------------------------------------------

    def _verify_task(self, number: int, after: Sequence[str], phase: _Phase) -> Task:
        name = f"verify@{number}"
        deps = ["clarify", *after, *([phase.previous] if phase.previous else [])]
        return Task(
            name,
            None,
            self._verifier(number, phase),
            deps,
            stage="verify",
            expand=lambda result: self._after_verify(number, phase, result),
        )

    def _verifier(self, number: int, phase: _Phase) -> TaskFn:
        async def verify(ctx: TaskContext) -> dict[str, Any]:
            writers = _writers(ctx.results, phase.previous)
            present = [p for p in self.files if _exists(self.output, p)]
            chosen = choose_checks(self.spec_text, self.checks.commands, present)
            cut = _cut_off(ctx.results, phase.previous, writers)
            base = {"round": number, "source": chosen.source, "writers": writers, "cut_off": cut}
            if not chosen.commands:
                reason = "no checks configured" if chosen.source != "detected" else "no .py file"
                ctx.note(f"not run ({reason})")
                return {**base, "status": "not_run", "reason": reason, "commands": []}
            results, isolation = await run_checks(
                chosen.commands, self.output.root, limit=self.checks.timeout
            )
            failed = [r for r in results if not r.passed]
            named = files_named("\n".join(r.output for r in failed), self.files)
            ctx.note(f"failed: {len(failed)} of {len(results)}" if failed else "passed")
            if not isolation.isolated:
                ctx.record.error = isolation.describe()
            return {
                **base,
                "status": "failed" if failed else "passed",
                "commands": [r.to_dict() for r in results],
                "named": named,
                "network": isolation.describe(),
            }

        return verify

    def _after_verify(self, number: int, phase: _Phase, result: Mapping[str, Any]) -> list[Task]:
        name = f"verify@{number}"
        writers: Mapping[str, str | None] = result.get("writers", {})
        # The files the failing output names and the planned files they depend on (a
        # failing test names itself, not the module under test); else every file written.
        named = result.get("named") or list(writers)
        with_deps = [*named, *(d for p in named for d in self._planned(p).depends_on)]
        targets = [p for p in dict.fromkeys(with_deps) if p in writers]
        if (
            result.get("status") == "failed"
            and phase.fixes_used < self.checks.max_fix_rounds
            and targets
        ):
            fixes = [self._check_fix_task(path, number) for path in targets]
            following = _Phase(phase.review_round, phase.files, phase.fixes_used + 1, name)
            return [*fixes, self._verify_task(number + 1, [t.name for t in fixes], following)]
        return self._review_round(phase.review_round, phase.files, number, phase.fixes_used)

    def _check_fix_task(self, path: str, number: int) -> Task:
        file = self._planned(path)

        async def fix(ctx: TaskContext) -> dict[str, Any]:
            verify = ctx.results[f"verify@{number}"]
            failures = [
                (r.command, r.summary(), _tail(r.output.strip(), PROMPT_OUTPUT_CHARS))
                for r in map(CommandResult.from_dict, verify["commands"])
                if not r.passed
            ]
            content = self.output.read(path) or ""
            messages = prompts.check_fix_messages(
                ctx.results["clarify"]["spec"], file, content, failures
            )
            return await self._rewrite(ctx, path, messages, f"v{number}")

        return Task(
            f"fix:{path}@v{number}", "coder", fix, ["clarify", f"verify@{number}"], stage="verify"
        )

    async def _rewrite(
        self, ctx: TaskContext, path: str, messages: prompts.Chat, round_id: str | int
    ) -> dict[str, Any]:
        text, cut = await whole_answer(ctx, messages)
        if cut:  # the earlier version stays: a cut-off fix must not replace it
            ctx.note("truncated (kept the earlier version)")
            return {"path": path, "status": "truncated", "round": round_id}
        return {**write_answer(ctx, self.output, path, text), "round": round_id}

    # -- review --------------------------------------------------------------------------

    def _review_round(
        self, round_no: int, files: Sequence[str], verify_number: int, fixes_used: int
    ) -> list[Task]:
        verify = f"verify@{verify_number}"
        reviews = [self._review_task(path, round_no, verify) for path in files]
        if not reviews:
            return []
        join = Task(
            f"reviewed@{round_no}",
            None,
            _joiner(round_no),
            [t.name for t in reviews],
            stage="review",
            expand=lambda result: self._after_review(result, verify_number, fixes_used),
        )
        return [*reviews, join]

    def _review_task(self, path: str, round_no: int, verify: str) -> Task:
        file = self._planned(path)

        async def review(ctx: TaskContext) -> dict[str, Any]:
            checked = ctx.results[verify]
            writers = checked.get("writers", {})
            content = self.output.read(path)
            base = {"path": path, "round": round_no, "verify": verify}
            if content is None or path not in writers:
                # A file cut off at the token limit is written but never judged as whole.
                why = "truncated" if path in checked.get("cut_off", ()) else "not generated"
                ctx.note(f"skipped ({why})")
                return {**base, "findings": [], "skipped": True, "reason": why}
            writer = writers[path]
            choice = (
                order_reviewers(self.reviewer_chain(), writer, self.vendor)
                if self.checks.other_vendor
                else None
            )
            findings, reply = await ask_structured(
                _candidates_ask(ctx, choice),
                prompts.review_messages(
                    ctx.results["clarify"]["spec"], file, content, checks_text(checked)
                ),
                prompts.FINDINGS_SCHEMA,
                prompts.parse_findings,
                what="review",
            )
            blocking = sum(1 for f in findings if f.blocking)
            note = _findings_note(findings, blocking)
            if choice is not None and choice.note:
                note += " (writer's vendor)"
            ctx.note(note)
            return {
                **base,
                "findings": [f.to_dict() for f in findings],
                "blocking": blocking,
                "writer": writer,
                "reviewer": reply.provider,
                "vendor_note": choice.note if choice else None,
            }

        after = [] if round_no == 1 else [f"fix:{path}@{round_no - 1}"]
        return Task(
            review_name(path, round_no),
            "reviewer",
            review,
            ["clarify", verify, *after],
            stage="review",
        )

    def _after_review(
        self, result: Mapping[str, Any], verify_number: int, fixes_used: int
    ) -> list[Task]:
        round_no = int(result["round"])
        blocking: list[str] = list(result.get("blocking", ()))
        if not blocking or round_no > self.review_rounds:
            return []
        fixes = [self._review_fix_task(path, round_no) for path in blocking]
        phase = _Phase(round_no + 1, tuple(blocking), fixes_used, f"verify@{verify_number}")
        return [*fixes, self._verify_task(verify_number + 1, [t.name for t in fixes], phase)]

    def _review_fix_task(self, path: str, round_no: int) -> Task:
        file = self._planned(path)
        review = review_name(path, round_no)

        async def fix(ctx: TaskContext) -> dict[str, Any]:
            findings = [Finding.from_dict(f) for f in ctx.results[review]["findings"]]
            content = self.output.read(path) or ""
            messages = prompts.fix_messages(
                ctx.results["clarify"]["spec"], file, content, [f for f in findings if f.blocking]
            )
            return await self._rewrite(ctx, path, messages, round_no)

        return Task(f"fix:{path}@{round_no}", "coder", fix, ["clarify", review], stage="review")

    def _planned(self, path: str) -> PlannedFile:
        return self.plan.get(path) or PlannedFile(path, "")


def _joiner(round_no: int) -> TaskFn:
    async def joined(ctx: TaskContext) -> dict[str, Any]:
        blocking = [
            r["path"] for r in ctx.results.values() if isinstance(r, dict) and r.get("blocking")
        ]
        ctx.note(f"{len(blocking)} file(s) with blocking findings" if blocking else "no blocking")
        return {"round": round_no, "blocking": blocking}

    return joined


def _writers(results: Mapping[str, Any], previous: str | None) -> dict[str, str | None]:
    """File -> provider of its latest version written by this run."""
    writers: dict[str, str | None] = dict(results[previous]["writers"]) if previous else {}
    for result in results.values():
        if isinstance(result, dict) and result.get("status") == "written" and "path" in result:
            writers[result["path"]] = result.get("provider")
    return writers


def _cut_off(
    results: Mapping[str, Any], previous: str | None, writers: Mapping[str, str | None]
) -> list[str]:
    """Files written as far as their answer went before the token limit, not since whole."""
    cut = list(results[previous].get("cut_off", ())) if previous else []
    for result in results.values():
        if isinstance(result, dict) and result.get("status") == "truncated" and "path" in result:
            cut.append(result["path"])
    return sorted({path for path in cut if path not in writers})


def _exists(output: OutputDir, path: str) -> bool:
    try:
        return output.exists(path)
    except UnsafePath:
        return False


def _findings_note(findings: Sequence[Finding], blocking: int) -> str:
    if not findings:
        return "clean"
    return f"{len(findings)} finding(s), {blocking} blocking"


def _candidates_ask(ctx: TaskContext, choice: ReviewerChoice | None) -> Asker:
    """``ctx.ask`` that, for a normally routed call, tries each candidate in order."""

    async def ask(
        messages: Sequence[Mapping[str, str]],
        *,
        response_schema: Mapping[str, Any] | None = None,
        provider: str | None = None,
    ) -> Reply:
        if provider is not None or choice is None:
            return await ctx.ask(messages, response_schema=response_schema, provider=provider)
        failure: AllProvidersFailed | None = None
        for candidate in choice.candidates:
            try:
                return await ctx.ask(messages, response_schema=response_schema, provider=candidate)
            except AllProvidersFailed as exc:
                failure = exc
        if failure is None:
            raise AllProvidersFailed("reviewer", [])
        raise failure

    return ask
