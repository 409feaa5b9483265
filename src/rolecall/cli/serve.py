"""``rolecall serve``: the OpenAI-compatible gateway (needs the ``gateway`` extra)."""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import logging.config
import math
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from rolecall._descriptors import raise_open_file_limit
from rolecall._secrets import redact
from rolecall.cli._common import EXIT_USAGE, config_option, fail
from rolecall.errors import MissingExtra
from rolecall.health.host_limit import MAX_WORKERS  # the host table has a column per worker

if TYPE_CHECKING:
    from rolecall.config.schema import MetricsConfig, RolecallConfig
    from rolecall.recording.recorder import RecordQueue

__all__ = ["serve"]


class RedactingFormatter(logging.Formatter):
    """Formats like uvicorn's plain formatter, then strips every known secret (tracebacks too)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for formatter in config["formatters"].values():
        formatter["()"] = "rolecall.cli.serve.RedactingFormatter"
        formatter.pop("use_colors", None)
    config["formatters"]["default"]["fmt"] = "%(levelname)-8s %(message)s"
    config["formatters"]["access"]["fmt"] = "%(levelname)-8s %(message)s"
    config["formatters"]["rolecall"] = {
        "()": "rolecall.cli.serve.RedactingFormatter",
        "fmt": "%(levelname)-8s %(name)s: %(message)s",
    }
    config["handlers"]["rolecall"] = {
        "formatter": "rolecall",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["rolecall"] = {
        "handlers": ["rolecall"],
        "level": level.upper(),
        "propagate": False,
    }
    # The OpenTelemetry SDK's warnings may quote the collector's endpoint or headers.
    config["loggers"]["opentelemetry"] = {
        "handlers": ["rolecall"],
        "level": "WARNING",
        "propagate": False,
    }
    return config


MAX_AUTO_WORKERS = 8
AUTO = 0  # --workers auto, resolved once the config is read


def _workers_option(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """``--workers``: a number of processes from 1 to MAX_WORKERS, or ``auto`` (:data:`AUTO`)."""
    text = value.strip().lower()
    if text == "auto":
        return AUTO
    if text.isdigit() and 1 <= int(text) <= MAX_WORKERS:
        return int(text)
    raise click.BadParameter(
        f"{value!r} is not a number of processes from 1 to {MAX_WORKERS}, nor 'auto'"
    )


DEFAULT_WORKER_TIMEOUT = "30"
MIN_WORKER_TIMEOUT = 2.0  # workers beat once a second: less would kill live ones


def _worker_timeout_option(ctx: click.Context, param: click.Parameter, value: str) -> float | None:
    """``--worker-timeout``: seconds, at least :data:`MIN_WORKER_TIMEOUT`, or 0 (None: never)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if seconds == 0:
        return None
    if MIN_WORKER_TIMEOUT <= seconds < math.inf:
        return seconds
    raise click.BadParameter(
        f"{value!r} is not a number of seconds from {MIN_WORKER_TIMEOUT:g}, nor 0 (never)"
    )


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def cgroup_cpu_limit(path: str = CGROUP_CPU_MAX) -> int | None:
    """The CPUs a container's quota allows (cgroup v2 ``cpu.max``: "quota period", rounded
    up), or None without a quota. A container sees every core of its host in its affinity."""
    try:
        with open(path) as file:
            quota, period = file.read().split()[:2]
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):  # no cgroup v2, "max" (no quota), or unreadable
        return None


def _auto_workers(config: RolecallConfig) -> int:
    """One worker per core this process may run on (within a container's CPU quota), at
    most MAX_AUTO_WORKERS; one without fork(), on macOS, or when an embedded model serves
    (each worker would load its own copy). macOS: its system libraries (the proxy settings
    the HTTP client reads, for one) may start threads, after which a forked child can crash,
    so workers there are asked for with --workers N, not started by default."""
    if (
        not hasattr(os, "fork")
        or sys.platform == "darwin"
        or any(p.type == "local" for p in config.providers.values())
    ):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_cpu_limit()
    return max(1, min(cores or 1, limit or MAX_AUTO_WORKERS, MAX_AUTO_WORKERS))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4141, show_default=True, type=click.IntRange(0, 65535))
@config_option
@click.option("--offline", is_flag=True, help="Skip the credential check (at start and reload).")
@click.option(
    "--workers",
    default="auto",
    show_default=True,
    metavar="N|auto",
    callback=_workers_option,
    help="Processes serving the port (provider health is shared between them); 'auto': "
    f"one per core (within a container's CPU quota), at most {MAX_AUTO_WORKERS}; 1 on macOS or "
    "when an embedded local model serves.",
)
@click.option(
    "--worker-timeout",
    default=DEFAULT_WORKER_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    callback=_worker_timeout_option,
    help="With workers: a worker or the run writer whose event loop has not beaten for this "
    "long (frozen, deadlocked, hung starting) is killed and replaced; at least 2; 0: never.",
)
@click.option("--access-log/--no-access-log", default=True, help="Log one line per request.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(
    host: str,
    port: int,
    config_path: str | None,
    offline: bool,
    workers: int,
    worker_timeout: float | None,
    access_log: bool,
    log_level: str,
) -> None:
    """Serve the gateway: 'model' is a role, a provider id or a gateway.model_aliases name.

    Routes: POST /v1/chat/completions (OpenAI), POST /v1/messages and
    /v1/messages/count_tokens (Anthropic), POST /v1/responses and
    /v1/responses/input_tokens (OpenAI Responses), GET /v1/models, GET /healthz,
    GET /metrics; the dashboard at GET /ui (http://HOST:PORT/ui) and its data at
    GET /api/... (metrics, trend, advise, runs, live provider health).
    Clients send 'Authorization: Bearer KEY' or 'x-api-key: KEY' with a key from
    gateway.keys (the page asks for one); without keys the gateway only listens on
    loopback. The config file is re-read when it
    changes or on SIGHUP; an invalid edit keeps the running config. By default one
    process per core serves the port (--workers N: N of them) and, with more than one, one
    more writes their records; a worker that dies, or is frozen for --worker-timeout seconds,
    is replaced; SIGINT/SIGTERM stops them all.
    """
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("gateway", exc.name or "starlette", "rolecall serve") from None
    from rolecall.config.load import find_config_path, load_config_with_warnings
    from rolecall.gateway.app import Gateway
    from rolecall.gateway.auth import is_loopback, unsafe_bind_message
    from rolecall.gateway.server import GatewayServer, bind_socket

    if hasattr(signal, "SIGHUP"):
        # Until the gateway takes SIGHUP (a reload), its default would end the process: a
        # SIGHUP during the credential check must not. The edit it announces is read anyway,
        # at the config watcher's first poll.
        signal.signal(signal.SIGHUP, lambda *_: None)
    path = find_config_path(config_path)
    # Empty or blank gateway.keys entries are dropped when loading: they never count as keys.
    config, warnings = load_config_with_warnings(path)
    if not is_loopback(host) and not config.gateway.keys:
        fail(unsafe_bind_message(host), EXIT_USAGE)
    if workers == AUTO:
        workers = _auto_workers(config)
    if workers > 1 and not hasattr(os, "fork"):
        fail("--workers needs a system with fork(); use --workers 1 here", EXIT_USAGE)
    # Up to the hard limit, as Go does at start: the soft one is often 1024, a default for
    # programs that use select(). The workers inherit it.
    open_files = raise_open_file_limit()
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port")
    log_config = _log_config(log_level)
    logging.config.dictConfig(log_config)
    for warning in warnings:
        logging.getLogger("rolecall.gateway").warning("config: %s", warning)
    _warn_few_connections(open_files)

    def run(
        worker: str | None = None,
        ready: Callable[[], None] | None = None,
        open_recorder: Callable[[MetricsConfig], RecordQueue] | None = None,
        early_signals: list[int] | None = None,
        metrics_dir: str | None = None,
        quiet: bool = False,
        beat: Callable[[], None] | None = None,
    ) -> None:
        # With workers the parent checked the credentials once, before forking.
        gateway = Gateway(
            config,
            config_path=path,
            offline=offline,
            host=host,
            open_recorder=open_recorder,
            metrics_dir=metrics_dir,
            workers=workers,
            quiet=quiet,
        )
        server = GatewayServer(
            gateway,
            sock,
            access_log=access_log,
            log_level=log_level,
            log_config=log_config,
            worker=worker,
        )
        if early_signals is not None:
            # A worker: SIGINT/SIGTERM stop it whenever they come, also before uvicorn takes
            # them (a worker still starting) and after it gives them back (it re-raises them).
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: server.stop())
            if early_signals:
                server.stop()
        else:
            # One process: uvicorn re-raises the SIGTERM it stopped on, and its default
            # would end the process before the gateway writes its records and closes its run.
            signal.signal(signal.SIGTERM, lambda *_: server.stop())
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(server, path, ready, beat, check=worker is None))

    if workers == 1:
        run()
        return
    _serve_workers(workers, run, config, sock, check=not offline, timeout=worker_timeout)


FEW_CONNECTIONS = 256  # per worker: a handful of busy clients' worth


def _warn_few_connections(open_files: int | None) -> None:
    """One warning when the open file limit (its hard one too) leaves few connections."""
    from rolecall.gateway.server import connection_bound

    most = connection_bound(open_files)
    if most is not None and most < FEW_CONNECTIONS:
        logging.getLogger("rolecall.gateway").warning(
            "the open file limit is %d (ulimit -n, hard limit included): each worker holds "
            "at most %d client connections and answers 503 past them; raise it (ulimit -n, "
            "LimitNOFILE= for a systemd service) to serve more",
            open_files,
            most,
        )


async def _check_credentials(config: RolecallConfig) -> None:
    """The startup credential check, once for every worker: a rejected key is one error
    line and exit 3; what it finds unreachable starts in the shared cooldown."""
    from rolecall.routing.router import Router

    router = Router(config)
    try:
        await router.check_credentials()
    finally:
        await router.aclose()


def _serve_workers(
    workers: int,
    run: Callable[..., None],
    config: RolecallConfig,
    sock: socket.socket,
    *,
    check: bool,
    timeout: float | None,
) -> None:
    """Pre-fork ``workers`` processes sharing provider health and concurrency limits through
    a table on this host, and recording through one writer process."""
    import tempfile

    from rolecall.gateway.supervisor import WorkerExit, supervise
    from rolecall.health.host import HealthTable, share_on_host
    from rolecall.recording.relay import CLOSE_WAIT, RecordRelay, writer_main

    with tempfile.TemporaryDirectory(prefix="rolecall-serve-") as directory:
        records = os.path.join(directory, "records.sock")
        # Each worker publishes its /metrics values here; a scrape sums them all.
        metrics_dir = os.path.join(directory, "metrics")
        os.mkdir(metrics_dir, 0o700)
        listener: socket.socket | None = None
        if config.metrics.enabled:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(records)
            listener.listen(workers * 2)

        def worker(index: int, ready: Callable[[], None], beat: Callable[[], None]) -> int:
            share_on_host(table, worker=index)  # its calls in flight count in its column
            early: list[int] = []  # a stop asked for before the server exists
            signal.signal(signal.SIGINT, lambda signum, _: early.append(signum))
            signal.signal(signal.SIGTERM, lambda signum, _: early.append(signum))
            relay = None
            if listener is not None:
                listener.close()
                # A stopping worker waits for a frozen writer to be replaced (silent for
                # `timeout`, then killed and started again) and to write what it sends again.
                wait = CLOSE_WAIT if timeout is None else timeout + CLOSE_WAIT
                relay = lambda metrics: RecordRelay(metrics, records, close_wait=wait)  # noqa: E731
            # The first worker reports a bad edit or telemetry setting; the others would repeat it.
            name = f"{index + 1}/{workers}"
            run(name, ready, relay, early, metrics_dir, quiet=index > 0, beat=beat)
            return 0

        def writer(beat: Callable[[], None]) -> int:
            assert listener is not None
            sock.close()  # the writer serves no HTTP
            return writer_main(listener, config.metrics, beat)

        table = HealthTable.create(os.path.join(directory, "health"))
        share_on_host(table)
        try:
            if check:  # before forking, so the workers inherit what it found
                asyncio.run(_check_credentials(config))
            # A worker that ended (killed, crashed) holds no provider's slot any more.
            supervise(
                workers,
                worker,
                writer if listener is not None else None,
                ended=table.limits.forget,
                timeout=timeout,
            )
        except WorkerExit as exc:
            raise SystemExit(exc.code) from None
        finally:
            table.close()
            if listener is not None:
                listener.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's faster event loop when it is installed (uvicorn[standard]), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _beat_every(seconds: float, beat: Callable[[], None]) -> None:
    """``beat()`` now and every ``seconds`` from the running event loop (one timer: a loop
    that is frozen stops beating, and the parent replaces its worker)."""
    loop = asyncio.get_running_loop()

    def tick() -> None:
        beat()
        loop.call_later(seconds, tick)

    tick()


async def _serve(
    server: Any,
    path: Any,
    ready: Callable[[], None] | None = None,
    beat: Callable[[], None] | None = None,
    *,
    check: bool = True,
) -> None:
    from rolecall.gateway.app import Gateway

    gateway = server.gateway
    # Credential check first: a rejected key exits 3 before listening.
    await gateway.start(check=check)
    if hasattr(signal, "SIGHUP"):  # as nginx and gunicorn: SIGHUP reloads, never stops
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, gateway.reload_now)
    # Everything built so far (modules, config, router) lives as long as the process: keep it
    # out of the collector's full passes, which otherwise walk it all (tens of ms here) and
    # stall every request in flight meanwhile.
    gc.freeze()
    if beat is not None:  # from before it is ready: the parent looks from then on
        from rolecall.gateway.supervisor import BEAT_SECONDS

        _beat_every(BEAT_SECONDS, beat)
    if ready is not None:
        ready()
    config = gateway.generation.config
    keys = config.gateway.keys
    worker = f"; worker {server.worker} pid {os.getpid()}" if server.worker else ""
    logging.getLogger("rolecall.gateway").info(
        "rolecall gateway on %s/v1 (config %s; roles: %s; providers: %s; auth: %s; run %s%s)",
        server.url,
        path,
        ", ".join(Gateway.roles(config)) or "none",
        ", ".join(config.providers),
        f"{len(keys)} key(s)" if keys else "none (loopback only)",
        gateway.run_id or "not recorded",
        worker,
    )
    # Ctrl-C from now on stops the server as SIGTERM does (a second one forces the stop):
    # uvicorn re-raises the SIGINTs it stopped on, and asyncio's own handler would cancel
    # this task (a second one raising KeyboardInterrupt) in the middle of the gateway's
    # close, before the requests still in flight are answered and recorded. Before this
    # point (the credential check) a Ctrl-C still interrupts at once.
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    await server.serve()
