"""The front doors served straight from the HTTP protocol behave as HTTP/1.1 says."""

from __future__ import annotations

import json
import socket

from gateway_helpers import GATEWAY_KEY, RunningGateway


def _request(path: str, body: dict[str, object], version: str = "1.1", extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/{version}\r\nHost: gw\r\nAuthorization: Bearer {GATEWAY_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
    )
    return head.encode() + data


def _chat(content: str) -> dict[str, object]:
    return {"model": "coder", "messages": [{"role": "user", "content": content}]}


class _Responses:
    """Reads Content-Length framed responses from one connection, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self.buffer += chunk

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body


def _connect(gateway: RunningGateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.server.port), timeout=10)
    sock.settimeout(10)
    return sock


def test_pipelined_requests_to_every_door_are_answered_in_order(gateway: RunningGateway) -> None:
    messages = {"model": "coder", "max_tokens": 64, "messages": [{"role": "user", "content": "m"}]}
    with _connect(gateway) as sock:
        sock.sendall(
            _request("/v1/chat/completions", _chat("one"))
            + _request("/v1/messages", messages)
            + _request("/v1/responses", {"model": "coder", "input": "r"})
            + _request("/v1/chat/completions", {**_chat("who"), "model": "nobody"})
        )
        responses = _Responses(sock)
        answers = [responses.next() for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 404]
    chat, anthropic, openai_responses, unknown = (json.loads(body) for _, _, body in answers)
    assert chat["choices"][0]["message"]["content"] == "answer from A"
    assert anthropic["type"] == "message"
    assert anthropic["content"][0]["text"] == "answer from A"
    assert openai_responses["object"] == "response"
    assert unknown["error"]["code"] == "model_not_found"
    assert answers[0][1]["x-rolecall-provider"] == "a"


def test_a_door_with_a_query_string_is_answered_the_same(gateway: RunningGateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_request("/v1/chat/completions?trace=1", _chat("q")))
        status, headers, body = _Responses(sock).next()
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "answer from A"
    assert headers["x-rolecall-role"] == "coder"


def test_claude_codes_beta_query_on_messages_is_answered(gateway: RunningGateway) -> None:
    body = {"model": "coder", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    with _connect(gateway) as sock:
        sock.sendall(_request("/v1/messages?beta=true", body, extra="anthropic-beta: x-1\r\n"))
        status, _, answer = _Responses(sock).next()
    assert status == 200
    assert json.loads(answer)["content"][0]["text"] == "answer from A"


def test_an_http_1_0_request_gets_its_answer_then_the_connection_closes(
    gateway: RunningGateway,
) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_request("/v1/chat/completions", _chat("old"), version="1.0"))
        responses = _Responses(sock)
        status, headers, _ = responses.next()
        assert status == 200
        assert headers["connection"] == "close"
        assert sock.recv(65536) == b""


def test_connection_close_from_the_client_closes_after_the_answer(
    gateway: RunningGateway,
) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_request("/v1/chat/completions", _chat("bye"), extra="Connection: close\r\n"))
        status, headers, _ = _Responses(sock).next()
        assert (status, headers["connection"]) == (200, "close")
        assert sock.recv(65536) == b""


def test_a_get_on_a_door_is_refused_by_the_app(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        answer = client.get("/v1/chat/completions")
    assert answer.status_code == 405
    assert "no route GET /v1/chat/completions" in answer.json()["error"]["message"]
