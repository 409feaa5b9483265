"""A client cannot hold the gateway with huge headers, slow headers or slow bodies."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway, config_text

from rolecall.sim import SimServer

LIMITS = """\
  max_body_bytes: 4096
  max_header_bytes: 4096
  header_timeout: 500ms
  body_timeout: 500ms
"""


@pytest.fixture
def limited(
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> RunningGateway:
    text = config_text(primary, fallback, tmp=config_path.parent)
    config_path.write_text(text.replace("  max_body_bytes: 4096\n", LIMITS))
    return start_gateway(config_path)


def connect(running: RunningGateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", running.server.port), timeout=10)
    sock.settimeout(10)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def read_response(sock: socket.socket) -> bytes:
    """One whole Content-Length framed response: head and body may come in separate reads."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def healthy(running: RunningGateway) -> bool:
    return httpx.get(running.server.url + "/healthz", timeout=5).status_code == 200


def test_streamed_huge_header_is_431_and_the_connection_closed(limited: RunningGateway) -> None:
    sock = connect(limited)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: "

    def send() -> None:
        with contextlib.suppress(OSError):  # the server may close before the last byte
            sock.sendall(head + b"a" * (1024 * 1024) + b"\r\n\r\n")

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = read_until_closed(sock)
    sender.join(10)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"gateway.max_header_bytes" in answer
    assert healthy(limited)


def test_header_block_over_the_limit_in_one_piece_is_431(limited: RunningGateway) -> None:
    with connect(limited) as sock:
        headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(60))  # ~6.5 KiB
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    with connect(limited) as sock:  # just under the limit is served
        headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(30))
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n"
        )
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")


def test_slow_headers_are_closed_while_others_are_served(limited: RunningGateway) -> None:
    started = time.monotonic()
    idle = [connect(limited) for _ in range(5)]  # connect and send nothing
    slow = [connect(limited) for _ in range(20)]  # a request line, never the end of headers
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert healthy(limited)
    for sock in slow:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    for sock in idle:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 0.5 + 5  # closed near the limit, not at the 10 s read cap
    for sock in idle + slow:
        sock.close()


def test_slow_body_is_closed_while_others_are_served(limited: RunningGateway) -> None:
    started = time.monotonic()
    slow = [connect(limited) for _ in range(10)]
    for sock in slow:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + GATEWAY_KEY.encode() + b"\r\n"
            b'Content-Length: 200\r\n\r\n{"model": '
        )
    assert healthy(limited)
    for sock in slow:
        answer = read_until_closed(sock)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 0.5 + 5
    for sock in slow:
        sock.close()
    assert healthy(limited)


def test_a_kept_alive_connection_gets_the_whole_header_time_for_each_request(
    limited: RunningGateway,
) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.3)  # the first request's header time (500 ms) is mostly gone
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the second never finishes
        started = time.monotonic()
        sock.sendall(b"X-Slow: ")
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert 0.4 < waited < 0.5 + 5  # its own 500 ms, not what was left of the first's


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_time(
    limited: RunningGateway,
) -> None:
    """uvicorn's keep-alive time (5 s) between requests, whether a door or a route answered,
    then a quiet close: no 408, as no request was under way."""
    with connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.0)  # longer than the header and body times (500 ms): still open
        body = b'{"model": "coder", "messages": [{"role": "user", "content": "hi"}]}'
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + GATEWAY_KEY.encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer == b""
    assert 4.5 < waited < 5 + 3


CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


def _upgrade_request(body: bytes, path: bytes = b"/v1/chat/completions") -> bytes:
    """A request as `curl --http2` sends it over http:// (asking to switch to h2c)."""
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
        b"Authorization: Bearer " + GATEWAY_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )


def test_an_upgrade_request_is_served_as_http_1_1_with_its_body(gateway: RunningGateway) -> None:
    body = json.dumps(CHAT).encode()
    sock = connect(gateway)
    try:
        sock.sendall(_upgrade_request(body) + body[:10])  # the body split across two reads
        time.sleep(0.2)
        sock.sendall(body[10:])
        first = read_response(sock)
        # The same connection goes on: the next request (no Upgrade) is parsed afresh.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        second = read_response(sock)
    finally:
        sock.close()
    assert first.startswith(b"HTTP/1.1 200 "), first
    assert b"answer from A" in first
    assert second.startswith(b"HTTP/1.1 200 "), second
