"""Serving a :class:`~rolecall.gateway.app.Gateway` with uvicorn on a socket bound up front.

Binding before starting means the real port is known at once (``port=0`` in
tests) and a busy port is reported as one clear line before anything else runs.
uvicorn speaks HTTP through :mod:`rolecall.gateway.protocol`, which bounds
header size and the time a client may take to send a request; each worker of
``rolecall serve --workers N`` (:mod:`rolecall.gateway.supervisor`) serves the
inherited socket with the same protocol, so every limit holds in every worker,
and tags its answers with ``x-rolecall-worker: <pid>``.

Each worker holds at most :func:`connection_bound` client connections, from its open
file limit: past that a client would make it fail to open anything at all (a provider
connection, the store, the config file), and the event loop stop accepting.
"""

from __future__ import annotations

import os
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING, Any

from rolecall._descriptors import open_file_limit
from rolecall.errors import MissingExtra

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from rolecall.gateway.app import Gateway

WORKER_HEADER = b"x-rolecall-worker"

__all__ = [
    "RESERVED_DESCRIPTORS",
    "WORKER_HEADER",
    "GatewayServer",
    "bind_socket",
    "connection_bound",
]

# Descriptors a worker keeps for what is not a client: its listening socket, the store and
# the run log, the config file and .env, logs, the event loop's own, imports.
RESERVED_DESCRIPTORS = 64


def connection_bound(open_files: int | None) -> int | None:
    """Client connections one process may hold with ``open_files`` descriptors (None: no
    limit, no bound): two fifths of what the reserve leaves. As many again are kept for
    provider connections (each client being served may hold one: nginx counts both in
    ``worker_connections``), and a fifth for the connections being turned away."""
    if open_files is None:
        return None
    return max(1, (open_files - RESERVED_DESCRIPTORS) * 2 // 5)


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``; raises OSError (port busy, unknown host...)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        # Listening at once: a client told the address (the startup line) may connect
        # before uvicorn's loop starts, and must queue rather than be refused.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class GatewayServer:
    """uvicorn serving one gateway: ``await serve()`` runs until :meth:`stop` or a signal."""

    def __init__(
        self,
        gateway: Gateway,
        sock: socket.socket,
        *,
        access_log: bool = True,
        log_level: str = "info",
        log_config: dict[str, Any] | None = None,
        worker: str | None = None,
        max_connections: int | None = None,
    ) -> None:
        """``max_connections``: client connections held at once; None: :func:`connection_bound`
        of the open file limit."""
        try:
            import uvicorn
        except ImportError as exc:
            raise MissingExtra("gateway", "uvicorn", "rolecall serve") from exc
        from rolecall.gateway.protocol import limited_protocol

        self.gateway = gateway
        self.sock = sock
        self.worker = worker
        tags = () if worker is None else ((WORKER_HEADER, str(os.getpid()).encode()),)
        if max_connections is None:
            max_connections = connection_bound(open_file_limit())
        config = uvicorn.Config(
            gateway.app if worker is None else _tag_worker(gateway.app),
            http=limited_protocol(gateway.limits, gateway.doors, tags, max_connections),
            ws="none",  # no websocket routes: an upgrade request is plain HTTP
            lifespan="off",  # the gateway is started and closed around serve()
            access_log=access_log,
            log_level=log_level,
            log_config=log_config,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        _force_on_second_sigterm(self._server)

    @property
    def host(self) -> str:
        return str(self.sock.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    async def serve(self) -> None:
        """Start the gateway (router, credential check, watcher), serve, then close it all."""
        await self.gateway.start()
        try:
            await self._server.serve(sockets=[self.sock])
        finally:
            await self.gateway.aclose()
            self.sock.close()

    def stop(self) -> None:
        """Ask the server to finish (safe from another thread)."""
        self._server.should_exit = True


def _force_on_second_sigterm(server: Any) -> None:
    """A second SIGTERM stops ``server`` at once, as a second Ctrl-C does (uvicorn forces
    only on SIGINT): a stop asked for by a service manager is otherwise never forced, and a
    stream that never ends would keep the process until the manager's SIGKILL, which loses
    the records of every request in flight. Forced, they end with a 503 and are recorded."""
    handle_exit = server.handle_exit

    def handle(sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and server.should_exit:
            server.force_exit = True
        handle_exit(sig, frame)

    server.handle_exit = handle


def _tag_worker(app: ASGIApp) -> ASGIApp:
    """``app`` answering with ``x-rolecall-worker: <pid>`` (which worker served a request)."""
    tag = (WORKER_HEADER, str(os.getpid()).encode())

    async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), tag]}
            await send(message)

        await app(scope, receive, send_tagged)

    return tagged
