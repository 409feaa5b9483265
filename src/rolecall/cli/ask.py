"""``rolecall ask ROLE PROMPT``: one routed call."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import click

from rolecall.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    config_option,
    exit_code_for,
    fail,
    json_option,
    print_error,
    print_json,
    run_stoppable,
)

if TYPE_CHECKING:
    from rolecall.config.schema import RolecallConfig


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each value read as YAML and checked by the config's own rules."""
    import yaml

    from rolecall.config.params import param_value_problem

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--param expects KEY=VALUE, got {pair!r} (e.g. --param temperature=0.2)")
        try:
            params[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            params[key] = raw
        problem = param_value_problem(key, params[key])
        if problem is not None:
            what, fix = problem
            fail(f"--param {pair}: {what}; {fix}")
    return params


def _empty_role(config: RolecallConfig) -> str:
    """The error for a blank ROLE, naming the roles the config assigns (the built-in
    ones, served by default_provider, when it assigns none)."""
    from rolecall.config.schema import BUILTIN_ROLES

    roles = list(config.roles)
    kind = "configured roles" if roles else "built-in roles"
    roles = roles or list(BUILTIN_ROLES)
    return (
        f"the role is empty: pass one of the {kind}: {', '.join(roles)} "
        f"(e.g. rolecall ask {roles[0]} PROMPT)"
    )


@click.command()
@click.argument("role")
@click.argument("prompt")
@config_option
@json_option
@click.option("--stream", is_flag=True, help="Print the answer as it arrives.")
@click.option("--system", "system_prompt", default=None, help="A system prompt.")
@click.option(
    "--param",
    "param_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A call parameter (temperature, max_tokens, ...); repeatable.",
)
@click.option("--offline", is_flag=True, help="Skip the startup credential check.")
def ask(
    role: str,
    prompt: str,
    config_path: str | None,
    as_json: bool,
    stream: bool,
    system_prompt: str | None,
    param_pairs: tuple[str, ...],
    offline: bool,
) -> None:
    """Send PROMPT to ROLE's provider chain and print the answer ('-' reads stdin).

    With --json: {text, role, provider, model, usage, latency_ms, attempts, finish_reason,
    cost_usd}; when every provider fails (exit 1): {error, role, attempts}.
    """
    prompt = _read_stdin() if prompt == "-" else _utf8_text(prompt, "PROMPT")
    if system_prompt:
        system_prompt = _utf8_text(system_prompt, "--system")
    if not prompt.strip():
        fail("the prompt is empty: pass the text as PROMPT, or '-' to read it from stdin")
    params = _parse_params(param_pairs)
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": prompt})
    try:
        code = run_stoppable(
            lambda: _ask(
                role, messages, config_path, as_json, stream and not as_json, params, offline
            )
        )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(
            f"stdin is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "pipe UTF-8 text, e.g. through iconv -t UTF-8"
        )


def _utf8_text(text: str, name: str) -> str:
    # Arguments that are not UTF-8 arrive as lone surrogates (Python's surrogateescape).
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        fail(f"{name} is not UTF-8 text (at character {exc.start}): pass UTF-8 text")
    return text


async def _ask(
    role: str,
    messages: list[dict[str, str]],
    config_path: str | None,
    as_json: bool,
    stream: bool,
    params: dict[str, Any],
    offline: bool,
) -> int:
    from rolecall.errors import AllProvidersFailed, StreamInterrupted, UnknownParameter
    from rolecall.events import new_run_id
    from rolecall.recording.sinks import attach_sinks
    from rolecall.routing.router import Router

    router = Router.from_file(config_path, check_credentials=not offline)
    if not role.strip():
        await router.aclose()
        fail(_empty_role(router.config))
    async with router:
        recorder = attach_sinks(router)
        run_id = new_run_id()
        recorder.start_run(run_id, kind="ask", meta={"role": role})
        status = "failed"
        try:
            if stream:
                # Closed here however the loop ends (a reader gone, Ctrl-C): the call is
                # recorded as cancelled while the router and the recorder are still open.
                async with router.stream(
                    role, messages, params=params, run_id=run_id
                ) as reply_stream:
                    async for piece in reply_stream:
                        click.echo(piece, nl=False)
                click.echo()
                reply = reply_stream.reply
            else:
                reply = await router.complete(role, messages, params=params, run_id=run_id)
            status = "ok"
            # The answer before the recorder closes: that may wait on a store another
            # process holds, and recording must not hold up the call.
            if as_json:
                print_json(reply.to_dict())
            elif not stream:
                click.echo(reply.text)
        except AllProvidersFailed as exc:
            if as_json:
                attempts = [a.to_dict() for a in exc.attempts]
                print_json({"error": exc.message, "role": role, "attempts": attempts})
            else:
                print_error(exc.message)
            return exit_code_for(exc)  # 3 when every provider rejected its key
        except UnknownParameter as exc:  # a --param name no provider takes: bad input
            print_error(exc.message)
            return EXIT_USAGE
        except StreamInterrupted as exc:
            click.echo()
            print_error(exc.message)
            return EXIT_FAILED
        except (asyncio.CancelledError, KeyboardInterrupt):  # Ctrl-C or SIGTERM
            status = "interrupted"
            if stream:
                click.echo()
            click.echo(
                f"interrupted: the call was stopped; run {run_id} is recorded as interrupted",
                err=True,
            )
            raise
        finally:
            recorder.finish_run(run_id, status)
            recorder.close()
    return 0
