"""``rolecall run SPEC``: the clarify -> plan -> generate -> review workflow."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

import click

from rolecall.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    exit_code_for,
    fail,
    json_option,
    print_error,
    print_json,
    run_stoppable,
)
from rolecall.errors import RolecallError

if TYPE_CHECKING:
    from rolecall.workflow.state import RunState

__all__ = ["run"]


@click.command()
@click.argument("spec", required=False, metavar="[SPEC]")
@config_option
@click.option(
    "-o",
    "--output",
    "output_dir",
    default=None,
    metavar="DIR",
    help="Directory the files are written to (default: ./out).",
)
@click.option(
    "--answers",
    "answers_path",
    default=None,
    metavar="FILE",
    help="YAML or JSON answers to the clarifying questions, keyed by question id.",
)
@click.option("-y", "--yes", "assume_yes", is_flag=True, help="Take the default answers.")
@click.option(
    "--resume",
    "resume_id",
    default=None,
    metavar="RUN",
    help="Finish run RUN (its spec, output directory and review rounds); SPEC not needed.",
)
@click.option(
    "--verify-only",
    "verify_id",
    default=None,
    metavar="RUN",
    help="Run the checks again on run RUN's output (nothing is generated); exit 1 if they fail.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(1, 1024),
    default=4,
    show_default=True,
    help="Tasks running at once (each provider's max_concurrency also applies).",
)
@click.option(
    "--review-rounds",
    type=click.IntRange(0, 20),
    default=1,
    show_default=True,
    help="Times a file with blocker/major findings goes back to the coder.",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist in DIR.")
@click.option("--offline", is_flag=True, help="Skip the startup credential check.")
@json_option
def run(
    spec: str | None,
    config_path: str | None,
    output_dir: str | None,
    answers_path: str | None,
    assume_yes: bool,
    resume_id: str | None,
    verify_id: str | None,
    max_parallel: int,
    review_rounds: int,
    force: bool,
    offline: bool,
    as_json: bool,
) -> None:
    """Turn SPEC (Markdown or YAML) into files in DIR, each stage on its role's provider.

    Progress goes to stderr; the summary (or --json) to stdout. Exit codes: 0 done,
    1 some work failed (finished work is kept; resume with --resume RUN), 2 bad input or
    config, 3 credentials rejected, 130 interrupted by Ctrl-C, SIGTERM or SIGHUP (state saved).
    """
    from rolecall.events import new_run_id
    from rolecall.workflow.display import ProgressDisplay
    from rolecall.workflow.errors import AnswersError, WorkflowUsageError
    from rolecall.workflow.runner import Workflow
    from rolecall.workflow.spec import load_spec

    if verify_id:
        _verify_only(verify_id, config_path, as_json, bool(spec or resume_id))
    if not spec and not resume_id:
        fail("missing SPEC: give a Markdown or YAML spec file, or --resume RUN")
    try:
        loaded = load_spec(spec) if spec and not resume_id else None
        answers = _load_answers(answers_path) if answers_path else None
    except WorkflowUsageError as exc:
        fail(exc.message)
    if spec and resume_id:
        click.echo(f"note: resuming run {resume_id} with the spec saved with it", err=True)

    display = ProgressDisplay()
    interactive = sys.stdin.isatty() and not assume_yes
    # A resumed run keeps the review rounds it began with: only a number typed here is
    # compared with them, so the default says nothing.
    given = click.get_current_context().get_parameter_source("review_rounds")
    typed_rounds = review_rounds if given is click.core.ParameterSource.COMMANDLINE else None

    async def ask_user(question: Any) -> str:
        caught: list[int] = []
        try:
            with display.paused(), _stop_signals_raise(caught):
                return str(
                    click.prompt(
                        f"{question.question} [{question.id}]",
                        default=question.default,
                        show_default=bool(question.default),
                        err=True,
                    )
                )
        except (click.Abort, KeyboardInterrupt):
            pass
        if caught:  # handed to its own handler, which stops the run (state saved, exit 130)
            signal.raise_signal(caught[0])
            await asyncio.Future()  # cancelled with the run
        raise AnswersError(
            f"no answer to the question '{question.id}' (the input ended): resume with "
            f"{resume_cmd} to answer it, or add --answers FILE or --yes"
        )

    workflow = Workflow(
        config_path=config_path,
        output_dir=output_dir,
        answers=answers,
        ask_user=ask_user if interactive else None,
        max_parallel=max_parallel,
        review_rounds=typed_rounds if resume_id else review_rounds,
        force=force,
        check_credentials=not offline,
        observers=[display],
        on_start=_announce,
    )
    run_id = resume_id or new_run_id()
    resume_cmd = f"rolecall run --resume {run_id}" + (f" -c {config_path}" if config_path else "")

    async def main() -> Any:
        display.start()
        try:
            if resume_id:
                return await workflow.resume(resume_id)
            assert loaded is not None
            return await workflow.run(loaded, run_id=run_id)
        finally:
            display.stop()

    try:
        result = run_stoppable(main)
    except KeyboardInterrupt:
        click.echo(f"interrupted: state saved; resume with: {resume_cmd}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except WorkflowUsageError as exc:
        fail(exc.message, EXIT_USAGE)
    except RolecallError as exc:
        print_error(exc.message)
        if display.finished_tasks:
            click.echo(f"finished work is kept; resume with: {resume_cmd}", err=True)
        sys.exit(exit_code_for(exc))

    resumable = result.status == "failed"
    if as_json:
        print_json({**result.to_dict(), "resume": resume_cmd if resumable else None})
    else:
        from rolecall.workflow.display import render_summary

        render_summary(result.records)
        _print_outcome(result, resume_cmd if resumable else None)
    sys.exit(EXIT_OK if result.status == "ok" else EXIT_FAILED)


@contextlib.contextmanager
def _stop_signals_raise(caught: list[int]) -> Iterator[None]:
    """While a prompt blocks the event loop, a stop signal (Ctrl-C, SIGTERM, SIGHUP) raises
    KeyboardInterrupt in it and is added to ``caught``: its own handler only asks the
    blocked loop to stop, so the prompt would wait on. One ignored (nohup) stays ignored."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) not in (signal.SIG_IGN, None):
            previous[signum] = signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _verify_only(run_id: str, config_path: str | None, as_json: bool, extra: bool) -> None:
    from rolecall.workflow.errors import WorkflowUsageError
    from rolecall.workflow.runner import Workflow

    if extra:
        fail("--verify-only RUN takes no SPEC and no --resume: it only re-runs the checks")
    try:
        result = asyncio.run(Workflow(config_path=config_path).verify_only(run_id))
    except WorkflowUsageError as exc:
        fail(exc.message, EXIT_USAGE)
    except RolecallError as exc:
        print_error(exc.message)
        sys.exit(exit_code_for(exc))
    if as_json:
        print_json({"run_id": run_id, **result})
    else:
        _print_checks(result)
    sys.exit(EXIT_FAILED if result["status"] == "failed" else EXIT_OK)


def _print_checks(result: dict[str, Any]) -> None:
    from rolecall.workflow.verify import CommandResult

    for command in map(CommandResult.from_dict, result.get("commands", ())):
        click.echo(f"{command.summary():<12} {command.command}  ({command.seconds:.1f}s)")
        if not command.passed and command.output.strip():
            click.echo("    " + command.output.strip()[-2000:].replace("\n", "\n    "))
    if result.get("network"):
        click.echo(f"sandbox: {result['network']}")
    status = {"not_run": "not run"}.get(result["status"], result["status"])
    reason = f" ({result['reason']})" if result.get("reason") else ""
    click.echo(f"checks: {status}{reason}")


def _announce(state: RunState, resumed: bool) -> None:
    """Name the run once its config and spec are known good, so a bad one names no run."""
    if resumed:
        click.echo(f"run {state.run_id}: resuming -> {state.output_dir}", err=True)
    else:
        click.echo(
            f"run {state.run_id}: {state.spec.path or state.spec.name} -> {state.output_dir}",
            err=True,
        )


def _print_outcome(result: Any, resume_cmd: str | None) -> None:
    for item in result.refused:
        click.echo(f"refused: {item['path']} ({item['reason']}): nothing written", err=True)
    for path in result.kept:
        click.echo(f"kept: {path} already exists (use --force to overwrite)", err=True)
    for path in result.truncated:
        click.echo(
            f"truncated: {path}: the answer stopped at the output token limit"
            " (raise max_tokens for the coder role)",
            err=True,
        )
    for path in result.unresolved:
        click.echo(
            f"unresolved: {path}: blocker/major review findings remain after the last fix "
            "round (see REVIEW.md; --review-rounds allows more)",
            err=True,
        )
    click.echo(f"checks: {_checks_line(result.checks)}")
    click.echo(f"status: {result.status}")
    click.echo(f"output: {result.output_dir}")
    if result.review_file:
        click.echo(f"review: {result.review_file}")
    click.echo(
        f"run: {result.run_id} (rolecall runs show {result.run_id}; state in {result.run_dir})"
    )
    if resume_cmd:
        click.echo(f"some tasks failed; finished work is kept; resume with: {resume_cmd}")


def _checks_line(checks: dict[str, Any]) -> str:
    """``passed after 1 fix round (2 commands)``, ``failed (...)``, ``not run (reason)``."""
    status = checks.get("status", "not run")
    if status == "not run":
        return f"not run ({checks.get('reason') or 'the run stopped before them'})"
    rounds = checks.get("fix_rounds", 0)
    after = f" after {rounds} fix round(s)" if rounds else ""
    failed = [c["command"] for c in checks.get("commands", ()) if c["status"] != "passed"]
    detail = f"; failing: {', '.join(failed)}" if failed else ""
    line = f"{status}{after} ({len(checks.get('commands', ()))} command(s){detail})"
    network = checks.get("network") or ""
    return line + (f"; {network}" if network.startswith("network NOT") else "")


def _load_answers(path: str) -> dict[str, Any]:
    """The answers file as ``{question id: answer}``; every problem is one AnswersError line."""
    from rolecall.workflow._structured import SyntaxProblem, load_structured
    from rolecall.workflow.errors import AnswersError
    from rolecall.workflow.stages import checked_answers

    file = Path(path)
    example = "e.g. 'lang: python'"
    if not file.exists():
        raise AnswersError(f"answers file not found: {path}")
    if file.is_dir():
        raise AnswersError(
            f"answers file {path} is a directory: pass a YAML or JSON file, "
            f"e.g. --answers {file / 'answers.yaml'}"
        )
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise AnswersError(
            f"cannot read answers file {path}: {exc.strerror or exc}; check its permissions"
        ) from None
    if b"\x00" in data:
        raise AnswersError(
            f"answers file {path} looks like a binary file: pass a YAML or JSON text file "
            f"mapping question ids to answers ({example})"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnswersError(
            f"answers file {path} is not UTF-8 text (invalid byte at offset {exc.start}): "
            "save it as UTF-8 YAML or JSON"
        ) from None
    language: Literal["json", "yaml"] = "json" if file.suffix.lower() == ".json" else "yaml"
    try:
        loaded = load_structured(text, language)
    except SyntaxProblem as exc:
        fix = (
            'e.g. {"lang": "python"}'
            if language == "json"
            else f"one 'question_id: answer' per line ({example})"
        )
        raise AnswersError(f"answers file {path} is {exc}; fix the syntax, {fix}") from None
    return checked_answers(loaded, f"answers file {path}", example)
