"""The ``rolecall`` command line.

Command groups live in their own modules and are imported only when invoked,
so ``rolecall --help`` stays fast. Every error a user can cause ends as one
line on stderr and an exit code (the README's Commands section): 1 work failed,
2 usage or config, 3 credentials.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from typing import Any

import click

__all__ = ["main"]

# name -> (module, attribute, one-line help); imported lazily.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("rolecall.cli.init", "init", "Detect keys and local models; write rolecall.yaml."),
    "config": ("rolecall.cli.config", "config", "Validate, show or describe the config file."),
    "ask": ("rolecall.cli.ask", "ask", "Send one prompt to a role's provider chain."),
    "run": ("rolecall.cli.run", "run", "Run the spec-to-code workflow on a spec file."),
    "runs": ("rolecall.cli.runs", "runs", "List and inspect recorded runs."),
    "metrics": ("rolecall.cli.metrics", "metrics", "Per provider x role metrics, trends, advice."),
    "serve": ("rolecall.cli.serve", "serve", "Serve the OpenAI-compatible gateway."),
    "dashboard": ("rolecall.cli.dashboard", "dashboard", "Serve the /ui dashboard from the store."),
    "sim": ("rolecall.cli.sim", "sim", "Run fake provider servers to rehearse failures offline."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in _COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None or not _module_exists(entry[0]):
            return None
        module = importlib.import_module(entry[0])
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a reader that closed the pipe (``| head -1``) ends it with 0.

        Caught here, not left to click, which would exit 1 as if the work had failed.
        """
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _drop_stdout()
            raise click.exceptions.Exit(0) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _drop_stdout() -> None:
    """Send what is left of stdout to the null device: its reader is gone, and the
    flush at exit must not fail on the closed pipe (Python would print a warning)."""
    # OSError, ValueError: no file descriptor behind stdout (captured output).
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _module_exists(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rolecall")
def cli() -> None:
    """rolecall: route each LLM task to the provider assigned to its role.

    Config is found by -c, then $ROLECALL_CONFIG, then ./rolecall.yaml.
    Exit codes: 0 ok, 1 the work failed, 2 usage or config error, 3 credentials rejected,
    130 ask or run interrupted (Ctrl-C, SIGTERM, SIGHUP).
    """


class _WarningLines(logging.Handler):
    """Each warning the library logs as one ``warning: ...`` line on stderr, secrets redacted."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        from rolecall._secrets import redact
        from rolecall._text import visible

        try:
            text = " ".join(record.getMessage().split())
            click.echo(f"{record.levelname.lower()}: {visible(redact(text))}", err=True)
        except Exception:  # a broken stderr must not break the command
            self.handleError(record)


def _show_warnings() -> None:
    # The OpenTelemetry SDK's own warnings (a collector that fails) may quote its endpoint
    # or headers: shown the same way, redacted, rather than raw by logging's last resort.
    for name in ("rolecall", "opentelemetry"):
        logger = logging.getLogger(name)
        if not any(isinstance(handler, _WarningLines) for handler in logger.handlers):
            logger.addHandler(_WarningLines())


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning every rolecall error into one line and an exit code."""
    from rolecall.cli._common import run_cli

    _show_warnings()
    return run_cli(cli, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
