"""``rolecall serve``: the OpenAI-compatible gateway (needs the ``gateway`` extra)."""

from __future__ import annotations

import asyncio
import copy
import logging
import logging.config
import os
from collections.abc import Callable
from typing import Any

import click

from rolecall._secrets import redact
from rolecall.cli._common import EXIT_USAGE, config_option, fail
from rolecall.errors import MissingExtra

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
    return config


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4141, show_default=True, type=click.IntRange(0, 65535))
@config_option
@click.option("--offline", is_flag=True, help="Skip the credential check (at start and reload).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes serving the port (provider health is shared between them).",
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
    access_log: bool,
    log_level: str,
) -> None:
    """Serve the OpenAI-compatible gateway: 'model' is a role name or a provider id.

    Routes: POST /v1/chat/completions, GET /v1/models, GET /healthz, GET /metrics.
    Clients send 'Authorization: Bearer KEY' with a key from gateway.keys; without
    keys the gateway only listens on loopback. The config file is re-read when it
    changes; an invalid edit keeps the running config. With --workers N, N processes
    serve the port; a worker that dies is replaced; SIGINT/SIGTERM stops them all.
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

    path = find_config_path(config_path)
    # Empty or blank gateway.keys entries are dropped when loading: they never count as keys.
    config, warnings = load_config_with_warnings(path)
    if not is_loopback(host) and not config.gateway.keys:
        fail(unsafe_bind_message(host), EXIT_USAGE)
    if workers > 1 and not hasattr(os, "fork"):
        fail("--workers needs a system with fork(); use --workers 1 here", EXIT_USAGE)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port")
    log_config = _log_config(log_level)
    logging.config.dictConfig(log_config)
    for warning in warnings:
        logging.getLogger("rolecall.gateway").warning("config: %s", warning)

    def run(worker: str | None = None, ready: Callable[[], None] | None = None) -> None:
        gateway = Gateway(config, config_path=path, offline=offline, host=host)
        server = GatewayServer(
            gateway,
            sock,
            access_log=access_log,
            log_level=log_level,
            log_config=log_config,
            worker=worker,
        )
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(server, path, ready))

    if workers == 1:
        run()
        return
    _serve_workers(workers, run)


def _serve_workers(workers: int, run: Callable[..., None]) -> None:
    """Pre-fork ``workers`` processes sharing provider health through a table on this host."""
    import signal
    import tempfile

    from rolecall.gateway.supervisor import WorkerExit, supervise
    from rolecall.health.host import HealthTable, share_on_host

    def worker(index: int, ready: Callable[[], None]) -> int:
        # uvicorn takes SIGINT/SIGTERM while serving and raises them again once done:
        # by then they only need to end this process normally.
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        run(f"{index + 1}/{workers}", ready)
        return 0

    with tempfile.TemporaryDirectory(prefix="rolecall-serve-") as directory:
        table = HealthTable.create(os.path.join(directory, "health"))
        share_on_host(table)
        try:
            supervise(workers, worker)
        except WorkerExit as exc:
            raise SystemExit(exc.code) from None
        finally:
            table.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's faster event loop when it is installed (uvicorn[standard]), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _serve(server: Any, path: Any, ready: Callable[[], None] | None = None) -> None:
    from rolecall.gateway.app import Gateway

    gateway = server.gateway
    await gateway.start()  # credential check first: a rejected key exits 3 before listening
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
    await server.serve()
