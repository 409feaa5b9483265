"""Helpers every command uses: config lookup, error reporting, JSON output, exit codes."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from rolecall._secrets import redact
from rolecall._text import UNSHOWN_IN_JSON, visible
from rolecall.errors import (
    AllProvidersFailed,
    ConfigError,
    CredentialsError,
    MissingExtra,
    NoProviderForRole,
    RolecallError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CREDENTIALS = 3
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as a shell reports it

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")


def config_option(func: F) -> F:
    """The shared ``-c/--config FILE`` option."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        metavar="FILE",
        default=None,
        help="Config file (default: $ROLECALL_CONFIG, then ./rolecall.yaml).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def _finite(data: Any) -> Any:
    """``data`` with each NaN or infinity as None: JSON has no such numbers."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data


def _indented(data: Any) -> str:
    """``data`` as indented JSON, each NaN or infinity as null. orjson writes it some 30
    times faster than json's indenting encoder, which is pure Python (a 30-day hourly
    trend: 0.7 s against 0.02 s); json writes what orjson refuses (a non-string key, an
    integer beyond 64 bits, a lone surrogate) and where orjson is not installed."""
    try:
        import orjson
    except ImportError:
        pass
    else:
        # Dataclasses and datetimes go through ``default=str``, as json writes them.
        options = (
            orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
        )
        try:
            return orjson.dumps(data, default=str, option=options).decode()
        except TypeError:
            pass
    return json.dumps(_finite(data), indent=2, default=str, ensure_ascii=False)


def print_json(data: Any) -> None:
    """``data`` as JSON every parser reads (no NaN), safe on a terminal, secrets redacted."""
    text = _indented(data)
    text = UNSHOWN_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    click.echo(redact(text))


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, redacted, control characters escaped."""
    click.echo(f"error: {visible(redact(message), newlines=True)}", err=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one redacted line (or block) on stderr and exit with ``code``."""
    print_error(message)
    sys.exit(code)


def exit_code_for(exc: RolecallError) -> int:
    if isinstance(exc, CredentialsError):
        return EXIT_CREDENTIALS
    if isinstance(exc, ConfigError | NoProviderForRole | MissingExtra):
        # A missing extra is a setup problem, fixed by the pip command the message names.
        return EXIT_USAGE
    if isinstance(exc, AllProvidersFailed):
        # Every provider refused the key, permission, model or quota: what the startup
        # check reports with exit 3, so --offline (which skips that check) exits alike.
        if exc.errors and all(error.kind.disables_provider for error in exc.errors):
            return EXIT_CREDENTIALS
        return EXIT_FAILED
    return EXIT_FAILED


def run_cli(group: click.Group, argv: list[str] | None) -> int:
    """Run ``group``; rolecall errors become a message and their exit code, never a traceback."""
    try:
        group.main(args=argv, prog_name="rolecall", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        print_error(exc.format_message())
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(f"Try '{exc.ctx.command_path} --help' for help.", err=True)
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except RolecallError as exc:
        print_error(exc.message)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_OK


def run_stoppable(main: Callable[[], Awaitable[_T]]) -> _T:
    """``asyncio.run(main())``, where SIGTERM (``kill``, a service manager, a CI timeout)
    and SIGHUP (its terminal closed) stop the command the way Ctrl-C does: the main task
    cancelled (its calls cancelled, what it holds saved, its run recorded
    ``interrupted``), then ``KeyboardInterrupt`` (exit 130). A SIGHUP the process was
    started to ignore (``nohup``) stays ignored. Once the loop is done, each signal gets
    its previous handler back.

    The task is cancelled here rather than through SIGINT's handler: a process started
    with SIGINT ignored (``nohup``, ``cmd &`` in a script) has none from asyncio.
    """
    cancel: list[Callable[[], object]] = []
    stopping = False

    async def body() -> _T:
        task = asyncio.current_task()
        assert task is not None
        cancel.append(
            functools.partial(asyncio.get_running_loop().call_soon_threadsafe, task.cancel)
        )
        return await main()

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping or not cancel:  # a second signal, or one before the loop runs
            raise KeyboardInterrupt
        stopping = True
        cancel[0]()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
        hangup = getattr(signal, "SIGHUP", None)
        if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
            previous[hangup] = signal.signal(hangup, on_term)
    try:
        return asyncio.run(body())
    except asyncio.CancelledError:
        if stopping:
            raise KeyboardInterrupt from None
        raise
    finally:
        # A signal after the loop closed has no task to cancel.
        for signum, handler in previous.items():
            if signal.getsignal(signum) is on_term:
                signal.signal(signum, handler)
