"""A client cannot hold ``rolecall dashboard``'s threads by never finishing its request.

The dashboard serves each connection on a thread of its own; a connection that sends
nothing, or its headers a byte at a time, held that thread for ever, so a client that
can reach the port (the dashboard listens beyond loopback with keys) could pile up
threads without sending a key. Its request must now be whole within ``header_timeout``.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.dashboard.server import DashboardServer

HEADER_TIMEOUT = 0.5
WAIT = 10.0  # far past HEADER_TIMEOUT: only a server that never closes reaches it


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[DashboardServer]:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    server = DashboardServer(url, header_timeout=HEADER_TIMEOUT).start()
    yield server
    server.stop()


def _connect(server: DashboardServer) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def _closed(sock: socket.socket) -> bool:
    """The server closed the connection (it may answer a line of text first)."""
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(4096):
            pass
    return True


def test_a_connection_that_sends_nothing_is_closed(dashboard: DashboardServer) -> None:
    with _connect(dashboard) as sock:
        assert _closed(sock)


def test_headers_that_never_end_are_cut_off(dashboard: DashboardServer) -> None:
    with _connect(dashboard) as sock:
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _closed(sock)


def test_headers_sent_a_byte_at_a_time_are_cut_off(dashboard: DashboardServer) -> None:
    # Each byte comes well within the timeout: only a deadline for the whole head stops it.
    with _connect(dashboard) as sock:
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nX-Drip: ")
        for _ in range(int(WAIT / 0.1)):
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                assert _closed(sock)
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"a")
        pytest.fail("the dashboard still reads a request that started long ago")


def test_a_whole_request_is_still_answered(dashboard: DashboardServer) -> None:
    with _connect(dashboard) as sock:
        sock.sendall(b"GET /ui HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 200")
