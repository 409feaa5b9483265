"""``rolecall sim``: fake provider servers on 127.0.0.1 to rehearse failures offline."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from rolecall.cli._common import EXIT_FAILED, EXIT_USAGE, fail, json_option
from rolecall.config.registry import provider_types
from rolecall.sim.faults import FAULT_KINDS

if TYPE_CHECKING:
    from rolecall.sim import SimServer

HOST = "127.0.0.1"
_MAX_PORT = 65535


def _dialect_types() -> dict[str, str]:
    """Each wire dialect the sim serves -> the first provider type speaking it (registry order)."""
    dialects: dict[str, str] = {}
    for row in provider_types().values():
        if row.sim_dialect is not None:
            dialects.setdefault(row.sim_dialect, row.name)
    return dialects


PROTOCOLS = tuple(_dialect_types())


@click.group("sim", invoke_without_command=True)
@click.option(
    "--protocol",
    type=click.Choice([*PROTOCOLS, "all"]),
    default="all",
    show_default=True,
    help="Which vendor API to fake.",
)
@click.option(
    "--port",
    type=click.IntRange(0, _MAX_PORT),
    default=0,
    show_default=True,
    help="Port (0: any free port). With --protocol all, PORT, PORT+1, ... one per protocol.",
)
@click.option("--latency", type=click.FloatRange(0), default=0.0, help="Seconds before answers.")
@click.option(
    "--jitter",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Spread each answer's delay uniformly over latency*(1 +/- JITTER), fixed by the prompt.",
)
@click.option("--key", default="test-key", show_default=True, help="The API key servers accept.")
@click.option("--no-auth", is_flag=True, help="Accept any key, or none.")
@click.option("--model", "models", multiple=True, help="A model the servers know (repeatable).")
@click.option("--reply", default="Hello from the sim.", show_default=True, help="Answer text.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND[:OPT=V,...]",
    help="Queue a fault for the next chat request on each server (repeatable, in order), e.g. "
    "rate_limit:retry_after=2. Kinds: " + ", ".join(FAULT_KINDS) + ". Options: retry_after, "
    "delay, after_chunks, echo_key, status, variant.",
)
@click.option(
    "--always",
    "always",
    multiple=True,
    metavar="KIND[:OPT=V,...]",
    help="A fault for every chat request until cleared (repeatable: taken in turn).",
)
@click.option("--quiet", is_flag=True, help="Do not log each request.")
@click.pass_context
def sim(
    ctx: click.Context,
    protocol: str,
    port: int,
    latency: float,
    jitter: float,
    key: str,
    no_auth: bool,
    models: tuple[str, ...],
    reply: str,
    faults: tuple[str, ...],
    always: tuple[str, ...],
    quiet: bool,
) -> None:
    """Fake OpenAI, Anthropic, Gemini, Azure, Vertex and Bedrock servers on 127.0.0.1 till Ctrl-C.

    They speak each vendor's wire format and fail on demand, so a rolecall.yaml
    pointed at them rehearses rate limits, outages and bad keys with no network.
    Queue faults on a running sim with `rolecall sim script --url URL KIND...`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from rolecall.sim import SimServer, parse_fault

    try:
        queued = [parse_fault(spec) for spec in faults]
        sticky = [parse_fault(spec) for spec in always]
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if not math.isfinite(latency):
        fail(f"--latency {latency} is not a number of seconds; use e.g. --latency 0.5")
    chosen = PROTOCOLS if protocol == "all" else (protocol,)
    if port and port + len(chosen) - 1 > _MAX_PORT:
        fail(
            f"--port {port} leaves no room for the {len(chosen)} servers of --protocol "
            f"{protocol} (one port each, from {port} up): use --port "
            f"{_MAX_PORT - len(chosen) + 1} or lower, or --port 0"
        )
    servers: list[SimServer] = []
    listen = 0
    try:
        for offset, name in enumerate(chosen):
            listen = port + offset if port else 0
            server = SimServer(
                name,  # type: ignore[arg-type]
                api_key=None if no_auth else key,
                models=models or ("sim-model",),
                reply=reply,
                latency=latency,
                jitter=jitter,
                host=HOST,
                port=listen,
            )
            server.script(*queued)
            server.set_faults(*sticky)
            servers.append(server.start())
    except OSError as exc:
        for server in servers:
            server.stop()
        fail(
            f"cannot listen on {HOST}:{listen or 'any port'} ({exc.strerror or exc}); "
            "pick another --port or use --port 0",
            EXIT_FAILED,
        )
    if not quiet:
        _log_requests()
    _print_banner(servers, None if no_auth else key, models or ("sim-model",))
    _wait_for_interrupt()
    for server in servers:
        server.stop()
    click.echo("sim stopped", err=True)


def _log_requests() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("rolecall.sim")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _print_banner(servers: Sequence[SimServer], key: str | None, models: Sequence[str]) -> None:
    click.echo(f"rolecall sim: fake providers on {HOST} (Ctrl-C to stop)")
    for server in servers:
        click.echo(f"  {server.protocol:<10} {server.base_url}")
    click.echo("\nPaste into rolecall.yaml:\n")
    click.echo(config_snippet(servers, key, models[0]))
    first = servers[0]
    click.echo(f"Queue faults: rolecall sim script --url {first.root_url} rate_limit overloaded")
    sys.stdout.flush()


# Keys a type requires beyond model, key and address (the sim takes any project or
# region; a bedrock entry's api_key is sent as a Bedrock API key, which the sim takes).
_SNIPPET_KEYS = {
    "vertex": ("    project: sim-project",),
    "bedrock": ("    region: us-east-1",),
}


def _entry(server: SimServer, key: str | None, model: str) -> list[str]:
    return [
        f"    type: {_dialect_types().get(server.protocol, server.protocol)}",
        f"    model: {model}",
        f"    api_key: {key or 'any-key'}",
        f"    base_url: {server.base_url}",
        *_SNIPPET_KEYS.get(server.protocol, ()),
        "    timeout: 10s",
    ]


def _missing_extra(provider_id: str, entry: Sequence[str]) -> str | None:
    """Why this entry's adapter cannot be built here (an optional package not installed)."""
    import yaml

    from rolecall.config.schema import RolecallConfig
    from rolecall.errors import MissingExtra
    from rolecall.providers import build_provider

    text = "providers:\n  " + provider_id + ":\n" + "\n".join(entry) + "\n"
    config = RolecallConfig.model_validate(yaml.safe_load(text))
    try:
        build_provider(provider_id, config.providers[provider_id])
    except MissingExtra as exc:
        return exc.message
    return None


def config_snippet(servers: Sequence[SimServer], key: str | None, model: str) -> str:
    """A rolecall.yaml using the running servers: the first as primary, the rest as fallbacks.

    A server whose provider type needs a package that is not installed is left out (with a
    comment naming the package), so the snippet works as pasted; unless none would remain.
    """
    entries = {f"sim-{s.protocol}": _entry(s, key, model) for s in servers}
    missing = {pid: why for pid, entry in entries.items() if (why := _missing_extra(pid, entry))}
    if len(missing) == len(entries):
        missing = {}
    lines = ["schema_version: 1", "providers:"]
    lines += [f"  # {pid} left out: {why}" for pid, why in missing.items()]
    ids = [pid for pid in entries if pid not in missing]
    for provider_id in ids:
        lines += [f"  {provider_id}:", *entries[provider_id]]
    lines.append("roles:")
    for role in ("clarifier", "planner", "coder", "reviewer"):
        fallback = f", fallback: [{', '.join(ids[1:])}]" if len(ids) > 1 else ""
        lines.append(f"  {role}: {{provider: {ids[0]}{fallback}}}")
    lines.append(f"default_provider: {ids[0]}")
    lines.append("retry: {max_attempts: 2, initial_backoff: 200ms}")
    return "\n".join(lines) + "\n"


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(0.5):
        pass


def _control(url: str, action: str, payload: Any = None) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        parts.port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
    except ValueError:  # that, or an unclosed [IPv6 bracket
        parts = urlsplit("")
    if not parts.netloc or parts.scheme not in ("http", "https"):
        fail(f"--url {url!r} is not a URL; use the sim's address, e.g. http://127.0.0.1:8080")
    target = f"{parts.scheme}://{parts.netloc}/_sim/{action}"
    get = payload is None and action == "stats"
    request = urllib.request.Request(
        target,
        data=None if get else json.dumps(payload).encode(),
        headers={} if get else {"Content-Type": "application/json"},
        method="GET" if get else "POST",
    )
    # The sim is local: no proxy from the environment may stand in between.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    not_a_sim = f"{parts.netloc} is not a rolecall sim; pass the address `rolecall sim` printed"
    try:
        with opener.open(request, timeout=5) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _sim_answer(exc.read())
        if detail is None or not isinstance(detail.get("error"), str):
            fail(f"{not_a_sim} (HTTP {exc.code} for /_sim/{action})", EXIT_FAILED)
        fail(f"the sim at {parts.netloc} refused: {detail['error']}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = f"cannot reach a sim at {parts.netloc} ({getattr(exc, 'reason', exc)})"
        fail(f"{reason}; is `rolecall sim` running?", EXIT_FAILED)
    result = _sim_answer(raw)
    if result is None:
        fail(f"{not_a_sim} (its answer to /_sim/{action} is not the sim's JSON)", EXIT_FAILED)
    return result


def _sim_answer(raw: bytes) -> dict[str, Any] | None:
    """A control answer as the sim sends it (a JSON object), or None."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


_url_option = click.option(
    "--url", required=True, help="The sim's address (any of its base URLs works)."
)


@sim.command("script")
@_url_option
@click.option("--always", is_flag=True, help="Apply to every request until cleared.")
@click.argument("kinds", nargs=-1, required=True, metavar="KIND[:OPT=V,...]...")
@json_option
def script(url: str, always: bool, kinds: tuple[str, ...], as_json: bool) -> None:
    """Queue faults on a running sim, one per coming chat request, in order."""
    from rolecall.sim import parse_fault

    try:
        faults = [parse_fault(kind).to_dict() for kind in kinds]
    except ValueError as exc:
        fail(str(exc))
    stats = _control(url, "faults" if always else "script", faults)
    click.echo(json.dumps(stats))


@sim.command("clear")
@_url_option
@json_option
def clear(url: str, as_json: bool) -> None:
    """Drop every queued and sticky fault on a running sim."""
    click.echo(json.dumps(_control(url, "clear", {})))


@sim.command("stats")
@_url_option
@json_option
def stats(url: str, as_json: bool) -> None:
    """Print a running sim's request counts and pending faults as JSON."""
    click.echo(json.dumps(_control(url, "stats")))
