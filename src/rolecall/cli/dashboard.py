"""``rolecall dashboard``: the ``/ui`` page served from the metrics store alone."""

from __future__ import annotations

import contextlib
import errno
import signal
from types import FrameType
from typing import Any

import click

from rolecall.cli._common import EXIT_USAGE, config_option, fail
from rolecall.cli._store import configured_providers, metrics_config, open_read_store, store_option
from rolecall.config.schema import MetricsConfig

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
    from rolecall.dashboard.server import DashboardServer, unsafe_bind_message
    from rolecall.gateway.auth import is_loopback

    keys = _keys(config_path)
    if not is_loopback(host) and not keys:
        fail(unsafe_bind_message(host), EXIT_USAGE)
    metrics = metrics_config(config_path) if store_url is None else MetricsConfig()
    store = open_read_store(metrics, store_url)  # a URL it cannot read stops it here
    if store is not None:
        store.close()
    url = store_url or metrics.url
    try:
        # Read at each /api/advise: a provider taken out of the config is proposed no more.
        server = DashboardServer(url, host, port, keys, lambda: configured_providers(config_path))
    except OSError as exc:
        fail(_bind_failure(host, port, exc))
    # A service manager's SIGTERM stops it as Ctrl-C does: it only reads, nothing to save.
    # Set before the line saying it serves, which a supervisor may answer with a signal.
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops: no error
        click.echo(f"rolecall dashboard on {server.url}/ui (Ctrl-C to stop)", err=True)
        server.serve_forever()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    """One line naming what could not be bound and which option to change."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno in (errno.EADDRINUSE, errno.EACCES):
        fix = "pick another --port"
    else:  # a name that does not resolve, an address this machine does not have
        fix = "give --host an address of this machine (e.g. 127.0.0.1 or ::1)"
    return f"cannot listen on {where}: {exc.strerror or exc}; {fix}"


def _keys(config_path: str | None) -> list[Any]:
    """The config's gateway keys; none when there is no config file.

    A config whose only problems lie outside ``gateway`` (say, a provider's key variable
    unset in this shell: the dashboard calls no provider) still gives its keys, which the
    dashboard then requires; one whose keys cannot be read stops it (exit 2).
    """
    from pydantic import ValidationError

    from rolecall.config.load import find_config_path, load_config, read_section
    from rolecall.config.schema import GatewayConfig
    from rolecall.errors import ConfigError

    try:
        path = find_config_path(config_path)
    except ConfigError:
        return []  # no config file: -c or $ROLECALL_CONFIG naming none is reported later
    try:
        return list(load_config(path).gateway.keys)
    except ConfigError as exc:
        if any(not i.location or i.location.startswith("gateway") for i in exc.issues):
            raise
        section = read_section(path, "gateway")
        try:
            return list(GatewayConfig.model_validate(section or {}).keys)
        except ValidationError:
            raise exc from None
