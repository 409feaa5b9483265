"""The gateway holds a bounded number of connections, however many clients open.

Each connection takes a file descriptor, and the gateway had no bound on them: clients
holding more connections than its open file limit left it unable to open anything, a
``/healthz`` reset, the config watcher reporting the file gone, the store and providers
failing too. Each worker now holds at most a share of its limit
(:func:`~rolecall.gateway.server.connection_bound`); one more closes the connection
idle the longest, or is answered 503 with Retry-After, and those being served go on.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway, wait_for
from test_gateway_limits import connect, read_response, read_until_closed

from rolecall.gateway.server import connection_bound
from serve_helpers import serving_process

OPEN_FILES = 160  # the gateway's RLIMIT_NOFILE, soft and hard: it cannot raise it
MOST = 3  # connections at once, in process
KEEP_ALIVE = 5.0  # uvicorn's keep-alive time: an idle connection closes after it anyway


def _head(path: str = "/healthz") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def _chat_started(sock: socket.socket) -> bytes:
    """A chat request sent but for the last byte of its body: the rest, to send later."""
    body = json.dumps({"model": "coder", "messages": [{"role": "user", "content": "hi"}]})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {GATEWAY_KEY}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    sock.sendall((head + body[:-1]).encode())
    return body[-1:].encode()


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.fixture
def bounded(
    config_path: Path, start_gateway: Callable[..., RunningGateway]
) -> Iterator[RunningGateway]:
    text = config_path.read_text().replace(
        "max_body_bytes: 4096", "max_body_bytes: 4096\n  header_timeout: 60s\n  body_timeout: 60s"
    )
    config_path.write_text(text)
    yield start_gateway(config_path, max_connections=MOST)


def test_past_the_bound_the_connection_idle_the_longest_is_closed_first(
    bounded: RunningGateway,
) -> None:
    oldest, newer, served = (connect(bounded) for _ in range(MOST))
    with oldest, newer, served:
        for idle in (oldest, newer):  # answered, kept alive, idle: the oldest first
            idle.sendall(_head())
            assert _status(read_response(idle)) == 200
        rest = _chat_started(served)  # being served: its body is still coming
        with connect(bounded) as extra:
            extra.sendall(_head())
            assert _status(read_response(extra)) == 200
        # Closed already, with nothing sent: well before its keep-alive time would close it.
        assert select.select([oldest], [], [], KEEP_ALIVE / 5)[0] == [oldest]
        assert read_until_closed(oldest) == b""
        newer.sendall(_head())  # the other idle one is still kept alive
        assert _status(read_response(newer)) == 200
        served.sendall(rest)
        answer = read_response(served)
    assert _status(answer) == 200, answer
    assert b"answer from A" in answer


def test_with_none_idle_one_more_is_answered_503_with_retry_after_and_closed(
    bounded: RunningGateway,
) -> None:
    held = [connect(bounded) for _ in range(MOST)]
    rests = [_chat_started(sock) for sock in held]
    try:
        with connect(bounded) as extra:
            extra.sendall(_head())  # never read: the answer comes all the same
            answer = read_until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 503 ")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"\r\nretry-after: 1\r\n" in head
        error = json.loads(body)["error"]
        assert error["code"] == "server_busy"
        assert f"holds {MOST} connections" in error["message"]
        for sock, rest in zip(held, rests, strict=True):  # none of those served was cut
            sock.sendall(rest)
            assert _status(read_response(sock)) == 200
    finally:
        for sock in held:
            sock.close()
    # Room again: served as before.
    with connect(bounded) as again:
        again.sendall(_head())
        assert _status(read_response(again)) == 200


def _hold(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def _healthz(url: str) -> int:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(url + "/healthz", timeout=10).status_code
    return 0


def test_clients_holding_more_connections_than_the_open_file_limit_leave_it_serving(
    config_path: Path,
) -> None:
    """Twice as many idle connections as the gateway may open files: past its bound each is
    answered 503 (a /healthz was reset), its own files still open (the config watcher said
    the file had disappeared), and once they close it serves again."""
    text = config_path.read_text().replace(
        "max_body_bytes: 4096", "max_body_bytes: 4096\n  header_timeout: 60s"
    )
    config_path.write_text(text)
    limits = (OPEN_FILES, OPEN_FILES)
    with serving_process(config_path, "--workers", "1", open_files=limits) as (proc, url, lines):
        threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True).start()
        held = _hold(int(url.rsplit(":", 1)[1]), 2 * OPEN_FILES)
        try:
            answer = httpx.get(url + "/healthz", timeout=10)
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert f"holds {connection_bound(OPEN_FILES)} connections" in answer.text
            config_path.write_text(
                text.replace("coder: {provider: a, fallback: [b]}", "coder: {provider: b}")
            )
            wait_for(lambda: any("reloaded (generation 2)" in line for line in lines))
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: _healthz(url) == 200)
    log = "".join(lines)
    assert "Too many open files" not in log and "disappeared" not in log, log
    assert "Traceback" not in log, log


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/limits")
def test_serve_raises_its_soft_open_file_limit_to_the_hard_one(config_path: Path) -> None:
    with serving_process(config_path, "--workers", "1", open_files=(128, 4096)) as (proc, _, lines):
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line
    assert "open file limit" not in "".join(lines)  # no warning: room enough
