"""``rolecall init``: detect keys, cloud credentials, local servers and the embedded model;
write rolecall.yaml."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rolecall._text import visible
from rolecall.cli._common import EXIT_USAGE, fail, json_option, print_json

if TYPE_CHECKING:
    from rolecall.setup.proposal import Proposal


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the config and assignments; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option(
    "-o",
    "--output",
    "output",
    metavar="FILE",
    default="rolecall.yaml",
    show_default=True,
    help="Where to write the config.",
)
@json_option
def init(dry_run: bool, force: bool, output: str, as_json: bool) -> None:
    """Detect what is available and write a config assigning every role.

    Looks for API keys in the environment (OpenAI, Anthropic, Gemini, Groq,
    Mistral, DeepSeek, OpenRouter), Azure OpenAI, AWS and Google Cloud
    credentials in their standard places, model servers on 127.0.0.1 (Ollama,
    llama.cpp, vLLM, LM Studio) and the embedded model. Sends no prompt.
    """
    from rolecall.setup.discover import discover
    from rolecall.setup.proposal import propose, render_yaml

    if not output.strip():
        fail("-o is empty: give the config file's name, e.g. -o rolecall.yaml")
    path = Path(output)
    if path.is_dir() or output.endswith(("/", os.sep)):
        fail(
            f"{output} names a directory: -o takes the config file's name, "
            f"e.g. -o {path / 'rolecall.yaml'}"
        )
    # A symlink counts even when it leads nowhere: writing would create its target.
    if (path.exists() or path.is_symlink()) and not force and not dry_run:
        fail(f"{path} already exists: pass --force to overwrite it, or -o FILE to write elsewhere")
    try:
        found = asyncio.run(discover())
    except ValueError as exc:  # a malformed ROLECALL_DISCOVER_PORTS
        fail(str(exc), EXIT_USAGE)
    proposal = propose(found)
    text = render_yaml(proposal, found)
    if not dry_run:
        try:
            _write(path, text)
        except OSError as exc:
            fail(f"cannot write {path}: {exc.strerror or exc}; choose another path with -o FILE")
    if as_json:
        print_json(
            {
                "path": str(path),
                "written": not dry_run,
                "default_provider": proposal.default_provider,
                "assignments": [a.to_dict() for a in proposal.roles],
                "notes": list(proposal.notes),
                "config": text,
            }
        )
        return
    if dry_run:
        click.echo(text)
    _print_table(proposal)
    for note in proposal.notes:
        click.echo(f"note: {visible(note)}", err=True)
    if not dry_run:
        click.echo(f"wrote {path}; check it with: rolecall config validate -c {path}")


def _write(path: Path, text: str) -> None:
    """Replace the file whole (a failed write leaves the old one as it was), through a
    symlink to its target, keeping an existing file's permissions."""
    from rolecall._files import atomic_write_text

    atomic_write_text(path.resolve() if path.is_symlink() else path, text)


def _print_table(proposal: Proposal) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="role assignments", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("role", "provider", "model", "fallback", "reason"):
        table.add_column(column, overflow="fold")
    for a in proposal.roles:
        # Model names come from local servers: no markup, no control characters.
        cells = (a.role, a.provider, a.model, ", ".join(a.fallback) or "-", a.reason)
        table.add_row(*(Text(visible(cell)) for cell in cells))
    # Piped output has no terminal width: do not fold rows into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 200)
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()).strip("\n"))
