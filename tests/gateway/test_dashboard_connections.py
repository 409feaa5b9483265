"""``rolecall dashboard`` holds a bounded number of connections, however many clients open.

Each connection is served on a thread of its own, and one may take up to ``header_timeout``
to send its request: clients opening connections faster than that piled up threads and
file descriptors without bound, until the process could serve no one. Past
``max_connections`` a new connection is now answered 503 at once and closed, while those
already open are served as before.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.dashboard.server import DashboardServer

MOST = 4
HEADER_TIMEOUT = 60.0  # the held connections outlive the test: only the bound frees room
READ_WAIT = 10.0  # far longer than a refusal takes: only a server that does not answer


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[DashboardServer]:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    server = DashboardServer(url, header_timeout=HEADER_TIMEOUT, max_connections=MOST).start()
    yield server
    server.stop()


def _connect(server: DashboardServer) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=READ_WAIT)


def _read_all(sock: socket.socket) -> bytes:
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _get(sock: socket.socket, path: str = "/api/health") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return _read_all(sock)


def _held(server: DashboardServer, count: int) -> list[socket.socket]:
    """``count`` connections that send nothing, each taken up by the server (it answers
    the next connection only after accepting the ones before)."""
    socks = [_connect(server) for _ in range(count)]
    with _connect(server) as probe:
        _read_all(probe)
    return socks


def test_a_connection_past_the_bound_is_refused_with_a_503_at_once(
    dashboard: DashboardServer,
) -> None:
    held = _held(dashboard, MOST)
    try:
        with _connect(dashboard) as extra:
            answer = _read_all(extra)  # before the bound, no answer until HEADER_TIMEOUT
        assert answer.startswith(b"HTTP/1.0 503")
        assert b"retry-after:" in answer.lower()
        assert b"connections at once" in answer
    finally:
        for sock in held:
            sock.close()


def test_the_connections_already_open_are_still_served_at_the_bound(
    dashboard: DashboardServer,
) -> None:
    held = _held(dashboard, MOST)
    try:
        assert _get(held[0]).startswith(b"HTTP/1.0 200")
    finally:
        for sock in held:
            sock.close()


def test_threads_stay_bounded_however_many_connections_open(dashboard: DashboardServer) -> None:
    before = threading.active_count()
    socks = [_connect(dashboard) for _ in range(50)]
    try:
        with _connect(dashboard) as probe:
            _read_all(probe)  # every connection before it was accepted and handled
        assert threading.active_count() - before <= MOST
    finally:
        for sock in socks:
            sock.close()


def test_room_comes_back_when_held_connections_close(dashboard: DashboardServer) -> None:
    for sock in _held(dashboard, MOST):
        sock.close()
    # A closed connection's thread ends on its own time: ask until it has (or give up).
    deadline = time.monotonic() + READ_WAIT
    while time.monotonic() < deadline:
        with _connect(dashboard) as sock:
            if _get(sock).startswith(b"HTTP/1.0 200"):
                return
        time.sleep(0.01)
    pytest.fail("the dashboard never served again after its connections closed")
