"""The workflow's progress lines and summary show names and errors as they are.

A task's name comes from the plan a model wrote, its error from a provider's
message: rich markup in one must print as written, not restyle or hide text, and a
control character (an ANSI escape, a window title, a right-to-left override) must
print as its escape, not act on the terminal.
"""

from __future__ import annotations

import io

from rich.console import Console

from rolecall.workflow.display import ProgressDisplay, render_summary
from rolecall.workflow.engine import TaskRecord

MARKUP = "src/[bold red]app[/].py"
HOSTILE_ERROR = "gpt: bad\x1b]0;owned\x07 \u202eoops\nclaude: \x1b[2Jgone"
UNSHOWABLE = ("\x1b", "\x07", "\u202e")


def _failed() -> TaskRecord:
    return TaskRecord(
        name=MARKUP,
        stage="generate",
        role="coder",
        status="failed",
        provider="gpt",
        model="m[/bold]x[red]",
        attempts=2,
        handovers=1,
        error=HOSTILE_ERROR,
    )


def _assert_shown(text: str) -> None:
    for char in UNSHOWABLE:
        assert char not in text, f"{char!r} reached the terminal"


def test_summary_table_shows_markup_in_a_name_as_written() -> None:
    out = io.StringIO()
    render_summary([_failed()], stream=out)
    text = out.getvalue()
    assert MARKUP in text
    _assert_shown(text)


def test_a_task_line_escapes_control_characters_in_a_name() -> None:
    record = _failed()
    record.name = "a\x1b[31mb\u202ec"
    out = io.StringIO()
    ProgressDisplay(live=False, stream=out).task_finished(record)
    text = out.getvalue()
    assert "a\\x1b[31mb\\u202ec" in text
    _assert_shown(text)


def test_a_failed_task_line_shows_its_error_escaped_one_provider_a_line() -> None:
    out = io.StringIO()
    ProgressDisplay(live=False, stream=out).task_finished(_failed())
    lines = out.getvalue().splitlines()
    _assert_shown(out.getvalue())
    assert MARKUP in lines[0]
    assert lines[1] == "    gpt: bad\\x1b]0;owned\\x07 \\u202eoops"
    assert lines[2] == "    claude: \\x1b[2Jgone"


def test_live_view_shows_markup_in_task_names_as_written() -> None:
    display = ProgressDisplay(live=False, stream=io.StringIO())
    running = TaskRecord(name="[i]run[/i]", stage="generate", role="[blink]coder", status="running")
    failed = _failed()
    failed.finished_at = 1.0
    display.tasks_added([running, failed])
    out = io.StringIO()
    Console(file=out, width=200).print(display._render())  # what the live view draws
    text = out.getvalue()
    assert "[i]run[/i]" in text
    assert "[blink]coder" in text
    assert MARKUP in text
    _assert_shown(text)
