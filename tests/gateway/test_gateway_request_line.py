"""The request line and Host as RFC 9112 has them, checked before a door or route runs.

A request with two ``Host`` lines, or an HTTP/1.1 request with none, is a 400 (RFC 9112,
3.2): which name it meant is unknowable, and a keyless gateway's loopback-name check
(``test_gateway_host.py``) must not read one Host while something else reads another. A
target in absolute form (``POST http://name/path``) names the host itself: its authority
is the request's Host (RFC 9112, 3.2.2 and 3.3), checked like one. A transfer coding other
than ``chunked`` is not decoded, so it is refused (501) rather than read as plain chunked.
Raw sockets to a real gateway on 127.0.0.1, so the HTTP protocol itself is what is tested.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_helpers import FALLBACK_KEY, GATEWAY_KEY, PRIMARY_KEY, RunningGateway, config_text

from rolecall.sim import SimServer

CHAT = json.dumps({"model": "coder", "messages": [{"role": "user", "content": "hi"}]}).encode()
JSON_BODY = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(CHAT)
KEY = f"Authorization: Bearer {GATEWAY_KEY}\r\n".encode()

# (request line start, the rest after the headers) for a door and for a route of the ASGI app
TARGETS = [
    pytest.param(b"POST /v1/chat/completions", JSON_BODY + b"\r\n" + CHAT, id="door"),
    pytest.param(b"GET /v1/models", b"\r\n", id="route"),
]


@pytest.fixture
def keyless(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> RunningGateway:
    (tmp_path / ".env").write_text(f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\n")
    config = tmp_path / "rolecall.yaml"
    config.write_text(config_text(primary, fallback, keys="[]", tmp=tmp_path))
    return start_gateway(config)


def exchange(running: RunningGateway, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` on a new connection: (the answer's status, the answer), read to its
    Content-Length or to the close."""
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    return int(head.split(b" ", 2)[1]), head + b"\r\n\r\n" + body


@pytest.mark.parametrize(("start", "rest"), TARGETS)
def test_two_host_lines_are_a_400(
    gateway: RunningGateway, primary: SimServer, start: bytes, rest: bytes
) -> None:
    status, answer = exchange(
        gateway, start + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n" + KEY + rest
    )
    assert status == 400, answer
    assert b"Host" in answer and b"bad_host" in answer
    assert primary.calls == 0


@pytest.mark.parametrize(("start", "rest"), TARGETS)
def test_an_http_1_1_request_without_host_is_a_400(
    gateway: RunningGateway, primary: SimServer, start: bytes, rest: bytes
) -> None:
    status, answer = exchange(gateway, start + b" HTTP/1.1\r\n" + KEY + rest)
    assert status == 400, answer
    assert b"no Host" in answer
    assert primary.calls == 0


def test_an_http_1_0_request_without_host_is_answered(gateway: RunningGateway) -> None:
    # HTTP/1.0 had no Host: an old client's request without one is valid.
    status, answer = exchange(
        gateway, b"POST /v1/chat/completions HTTP/1.0\r\n" + KEY + JSON_BODY + b"\r\n" + CHAT
    )
    assert status == 200, answer


@pytest.mark.parametrize(("start", "rest"), TARGETS)
def test_a_keyless_gateway_checks_the_authority_of_an_absolute_target(
    keyless: RunningGateway, primary: SimServer, start: bytes, rest: bytes
) -> None:
    method, path = start.split(b" ")
    foreign = method + b" http://evil.example" + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    status, answer = exchange(keyless, foreign + rest)
    assert status == 403, answer
    assert b"evil.example" in answer and b"foreign_host" in answer
    assert primary.calls == 0
    loopback = method + b" http://localhost:8080" + path + b" HTTP/1.1\r\nHost: evil.example\r\n"
    status, answer = exchange(keyless, loopback + rest)
    assert status == 200, answer


def test_an_absolute_target_is_served_like_its_path(gateway: RunningGateway) -> None:
    status, answer = exchange(
        gateway,
        b"POST http://gw.internal/v1/chat/completions?trace=1 HTTP/1.1\r\nHost: gw.internal\r\n"
        + KEY
        + JSON_BODY
        + b"\r\n"
        + CHAT,
    )
    assert status == 200, answer
    assert b"answer from A" in answer


@pytest.mark.parametrize("target", [b"ftp://127.0.0.1/v1/models", b"http:///v1/models"])
def test_an_absolute_target_that_names_no_http_host_is_a_400(
    gateway: RunningGateway, target: bytes
) -> None:
    status, answer = exchange(
        gateway, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + KEY + b"\r\n"
    )
    assert status == 400, answer


@pytest.mark.parametrize(
    "coding",
    [b"gzip, chunked", b"identity, chunked", b"gzip\r\nTransfer-Encoding: chunked"],
)
def test_a_transfer_coding_besides_chunked_is_a_501(
    gateway: RunningGateway, primary: SimServer, coding: bytes
) -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT)
    status, answer = exchange(
        gateway,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + KEY
        + b"Transfer-Encoding: "
        + coding
        + b"\r\n\r\n"
        + chunked,
    )
    assert status == 501, answer
    assert b"Transfer-Encoding" in answer and b"chunked" in answer
    assert primary.calls == 0


def test_a_body_whose_last_transfer_coding_is_not_chunked_is_a_400(
    gateway: RunningGateway, primary: SimServer
) -> None:
    # Where such a body ends is unknowable (RFC 9112, 6.3).
    status, answer = exchange(
        gateway,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + KEY
        + b"Transfer-Encoding: gzip\r\n\r\n"
        + CHAT,
    )
    assert status == 400, answer
    assert b"only 'chunked'" in answer
    assert primary.calls == 0


@pytest.mark.parametrize("coding", [b"chunked", b"Chunked ", b" chunked"])
def test_a_chunked_body_is_served(gateway: RunningGateway, coding: bytes) -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT)
    status, answer = exchange(
        gateway,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + KEY
        + b"Transfer-Encoding: "
        + coding
        + b"\r\n\r\n"
        + chunked,
    )
    assert status == 200, answer


def test_a_request_pipelined_after_a_refused_one_is_not_served(
    gateway: RunningGateway, primary: SimServer
) -> None:
    refused = b"POST /v1/chat/completions HTTP/1.1\r\n" + KEY + JSON_BODY + b"\r\n" + CHAT
    valid = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + KEY + JSON_BODY + b"\r\n" + CHAT
    with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=10) as sock:
        sock.sendall(refused + valid)  # one read: the parser reaches the second at once
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.count(b"\r\n\r\n") == 1, answer  # one answer, then the close
    assert primary.calls == 0
    with gateway.client() as client:  # not even started: no request counted (a 499)
        assert "rolecall_gateway_requests_total{" not in client.get("/metrics").text
