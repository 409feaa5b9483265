"""``rolecall dashboard``: the ``/ui`` page served from the metrics store alone."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from rolecall.cli._common import EXIT_USAGE, config_option, fail
from rolecall.cli._store import metrics_config, store_option

__all__ = ["dashboard"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4142, show_default=True, type=click.IntRange(0, 65535))
@config_option
@store_option
def dashboard(host: str, port: int, config_path: str | None, store_url: str | None) -> None:
    """Serve the dashboard (http://HOST:PORT/ui) from the metrics store, no gateway needed.

    Providers by role, trends, advice and recent runs; live provider health needs
    `rolecall serve`. Off loopback, the data needs a key from gateway.keys.
    """
    from rolecall.dashboard.server import DashboardServer
    from rolecall.gateway.auth import is_loopback, unsafe_bind_message

    keys = _keys(config_path)
    if not is_loopback(host) and not keys:
        fail(unsafe_bind_message(host), EXIT_USAGE)
    url = store_url or metrics_config(config_path).url
    _check_store(url, "--store" if store_url else "metrics.url")
    try:
        server = DashboardServer(url, host, port, keys)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port")
    click.echo(f"rolecall dashboard on {server.url}/ui (Ctrl-C to stop)", err=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops: no error
        server.serve_forever()


def _check_store(url: str, origin: str) -> None:
    """Open the store once, so that a URL the dashboard cannot read fails now, not per request."""
    from rolecall.errors import ConfigError, MissingExtra
    from rolecall.recording.store import StoreNotFound, open_store

    try:
        store = open_store(url, create=False)
    except StoreNotFound:
        return  # no SQLite file yet: the pages show no data until something records
    except ConfigError as exc:
        problems = (
            f"{issue.problem}; {issue.fix}" if issue.fix else issue.problem for issue in exc.issues
        )
        fail(f"{origin}: {'; '.join(problems)}", EXIT_USAGE)
    except MissingExtra as exc:
        fail(exc.message, EXIT_USAGE)
    store.close()


def _keys(config_path: str | None) -> list[Any]:
    """The config's gateway keys; none when there is no config or it does not load."""
    from rolecall.config.load import find_config_path, load_config
    from rolecall.errors import RolecallError

    try:
        return list(load_config(find_config_path(config_path)).gateway.keys)
    except RolecallError:
        return []
