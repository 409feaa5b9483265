"""``rolecall dashboard``: the ``/ui`` page and its ``/api/`` data from the metrics store alone.

The standard library's threading HTTP server is enough here: a handful of GETs per page
load from one person, no streaming, no provider calls. So the dashboard needs no extra
(not even the gateway's) and starts in a blink. Same rules as the gateway: ``/api/``
takes the ``gateway.keys`` of the config when it has any, and without keys only a
loopback address may be bound and ``/api/`` answers only requests sent to a loopback
name (not a web page's own name pointed at 127.0.0.1). No live health here (no router runs).

A connection holds a thread until its request is whole, so the request line and headers
must arrive within ``header_timeout`` of the connection's opening (the gateway's default):
a client that sends nothing, or a byte now and then, cannot hold one for long. And at most
``max_connections`` are served at once: past that, a new one is answered 503 and closed
without a thread, so clients opening connections faster than they time out cannot pile up
threads and file descriptors until the process serves no one.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rolecall.dashboard import PAGE_HEADERS, asset
from rolecall.dashboard.api import DataSource, ProvidersFn, answer, foreign_host_body
from rolecall.gateway.auth import KeyChecker, loopback_host_header

__all__ = ["DashboardServer", "unsafe_bind_message"]

_API_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
# A page load takes 6 at once (a browser's most per server), and a few people may look.
MAX_CONNECTIONS = 64


def unsafe_bind_message(host: str) -> str:
    """Why the dashboard will not listen on ``host`` (not loopback) without keys."""
    return (
        f"refusing to listen on {host}: no gateway API key is configured (empty or blank "
        "entries, e.g. from an unset or empty variable, are not keys), so anyone who can "
        "reach this address could read your metrics and runs (providers, models, costs, "
        "run ids); add keys under gateway.keys (e.g. gateway: {keys: "
        "['${ROLECALL_GATEWAY_KEY}']}) and set the variable each entry reads, or bind 127.0.0.1"
    )


class DashboardServer:
    """Serves the dashboard over ``store_url`` on ``host:port`` (0: any free port)."""

    def __init__(
        self,
        store_url: str,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Sequence[Any] = (),
        providers: ProvidersFn | None = None,
        header_timeout: float = 10.0,
        max_connections: int = MAX_CONNECTIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = DataSource(lambda: store_url, providers=providers, clock=clock)
        self.keys = KeyChecker(keys)
        handler = _handler(self.source, self.keys, header_timeout)
        # The address family of the host (ThreadingHTTPServer alone binds IPv4 only, so
        # --host ::1 failed); socket.gaierror, an OSError, for a name that does not resolve.
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        server_class = type("Server", (_BoundedServer,), {"address_family": family[0][0]})
        self._server = server_class((host, port), handler, max_connections)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        address = self._server.server_address
        host, port = str(address[0]), int(address[1])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self.source.close_store()

    def start(self) -> DashboardServer:
        """Serve from a background thread (tests, benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join()


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, for at most ``max_connections`` connections at once."""

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        self.max_connections = max_connections
        self._open = 0
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            room = self._open < self.max_connections
            if room:
                self._open += 1
        if not room:
            _turn_away(request, self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: the connection is closed by the caller
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self._open -= 1


def _turn_away(connection: socket.socket, most: int) -> None:
    """A 503 for a connection past the bound, written without waiting on the client."""
    message = (
        f"the dashboard serves {most} connections at once and has no room for another: "
        "try again in a few seconds"
    )
    body = json.dumps({"error": message}).encode()
    head = (
        "HTTP/1.0 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 5\r\nconnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):  # a full send buffer or a client gone: closed all the same
        connection.setblocking(False)
        connection.send(head.encode() + body)


_ALLOW = "GET, HEAD"


def _routed(path: str) -> bool:
    """``path`` is one the dashboard answers (a GET of it gets more than a 404)."""
    if path.startswith("/api/") or path in ("/", "/ui", "/ui/"):
        return True
    return path.startswith("/ui/") and asset(path[len("/ui/") :]) is not None


class _HeadReader(io.RawIOBase):
    """A connection's reads, each allowed only the time left until ``deadline``: a per-read
    timeout alone would let a byte every few seconds hold the connection for ever."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        self._connection = connection
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request headers not received in time")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)


def _handler(
    source: DataSource, keys: KeyChecker, header_timeout: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # What the stdlib answers itself (a malformed request line, an unknown method) as
        # one line of text, not an HTML page.
        error_message_format = "%(code)d %(message)s\n"
        error_content_type = "text/plain; charset=utf-8"

        def version_string(self) -> str:
            return "rolecall"

        def setup(self) -> None:
            super().setup()
            deadline = time.monotonic() + header_timeout
            self.rfile.close()  # the stdlib's, replaced: closed, it keeps no hold on the socket
            # A read timed out ends the request: the stdlib answers nothing and closes.
            self.rfile = io.BufferedReader(_HeadReader(self.connection, deadline))

        def parse_request(self) -> bool:
            parsed = super().parse_request()
            # The head is in (one request per connection: HTTP/1.0); writing the answer
            # gets the same time per send, so a client that never reads holds no thread.
            self.connection.settimeout(header_timeout)
            return parsed

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)  # as the gateway sees it: /api/runs/<encoded run id>
            if path.startswith("/api/"):
                if not keys.allows(self.headers.get("authorization")):
                    body = b'{"error":"invalid or missing API key: send Authorization: Bearer KEY"}'
                    self._send(401, body, "application/json", {"www-authenticate": "Bearer"})
                    return
                if not keys.enabled and not loopback_host_header(self.headers.get("host")):
                    self._send(403, foreign_host_body(self.headers.get("host")), "application/json")
                    return
                status, body = answer(source, path, dict(parse_qsl(parts.query)))
                self._send(status, body, "application/json", _API_HEADERS)
                return
            if path in ("/", "/ui/"):
                self._send(302, b"", "text/plain", {"location": "/ui"})
                return
            found = asset(path[len("/ui/") :] if path.startswith("/ui/") else "")
            if found is None or not (path == "/ui" or path.startswith("/ui/")):
                self._send(404, b"not found\n", "text/plain")
                return
            self._send(200, found[0], found[1], PAGE_HEADERS)

        def do_HEAD(self) -> None:
            self.do_GET()  # _send leaves the body out

        def _refuse(self) -> None:
            """Any other method: the dashboard only reads."""
            path = unquote(urlsplit(self.path).path)
            if not _routed(path):
                self._send(404, b"not found\n", "text/plain")
                return
            message = f"{self.command} is not served here: {path} answers GET and HEAD only"
            body = json.dumps({"error": message}).encode()
            self._send(405, body, "application/json", {"allow": _ALLOW})

        do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

        def _send(
            self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
