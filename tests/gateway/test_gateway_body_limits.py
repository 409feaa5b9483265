"""Deeply nested JSON is a clear 400, and the bytes of bodies in flight are bounded (503)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway, config_text, wait_for

from rolecall.sim import SimServer

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
LIMITS = """\
  max_body_bytes: 1048576
  max_inflight_bytes: 4096
"""


@pytest.fixture
def roomy(
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> RunningGateway:
    text = config_text(primary, fallback, tmp=config_path.parent)
    config_path.write_text(text.replace("  max_body_bytes: 4096\n", LIMITS))
    return start_gateway(config_path)


def nested_schema(levels: int) -> str:
    """A JSON schema ``levels`` objects deep, as text (json.dumps itself would recurse)."""
    return '{"type":"object","properties":{"a":' * levels + '{"type":"string"}' + "}}" * levels


def hold_a_body(port: int, body: bytes) -> socket.socket:
    """A chat request whose body is sent only in part: it holds its bytes of the budget."""
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + GATEWAY_KEY.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:100]
    )
    return held


def test_deeply_nested_json_is_400(roomy: RunningGateway, primary: SimServer) -> None:
    arrays = b"[" * 100_000 + b"]" * 100_000
    head = json.dumps(CHAT)[:-1]
    response_format = '"response_format":{"type":"json_schema","json_schema":{"name":"deep",'
    deep = f'{head},{response_format}"schema":{nested_schema(1000)}}}}}}}'.encode()
    with roomy.client() as client:
        for body in (arrays, deep):
            response = client.post(
                "/v1/chat/completions",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, response.text[:300]
            error = response.json()["error"]
            assert error["code"] == "too_deeply_nested"
            assert "deeper than 100 levels" in error["message"]
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert primary.calls == 1


def test_bodies_in_flight_are_bounded_with_503(roomy: RunningGateway) -> None:
    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 3000}]}).encode()
    held = hold_a_body(roomy.server.port, body)
    with roomy.client() as client:
        second = json.dumps({**CHAT, "messages": [{"role": "user", "content": "y" * 2000}]})

        def refused() -> bool:
            response = client.post(
                "/v1/chat/completions",
                content=second,
                headers={"content-type": "application/json"},
            )
            if response.status_code == 503:
                refused.response = response  # type: ignore[attr-defined]
                return True
            return False

        wait_for(refused, timeout=5)
        busy: httpx.Response = refused.response  # type: ignore[attr-defined]
        assert busy.headers["retry-after"] == "1"
        assert "gateway.max_inflight_bytes" in busy.json()["error"]["message"]
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200  # small fits

        held.sendall(body[100:])  # the held request finishes and gives its bytes back
        assert held.recv(65536).startswith(b"HTTP/1.1 200 ")
        held.close()
        wait_for(
            lambda: (
                client.post(
                    "/v1/chat/completions",
                    content=second,
                    headers={"content-type": "application/json"},
                ).status_code
                == 200
            ),
            timeout=5,
        )


def test_each_worker_holds_its_share_of_the_bodies_in_flight(
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> None:
    # 8192 bytes for a gateway of two workers: 4096 for this one, so 3000 + 2000 is refused.
    text = config_text(primary, fallback, tmp=config_path.parent)
    config_path.write_text(text.replace("  max_body_bytes: 4096\n", LIMITS.replace("4096", "8192")))
    worker = start_gateway(config_path, workers=2)
    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 3000}]}).encode()
    held = hold_a_body(worker.server.port, body)
    second = json.dumps({**CHAT, "messages": [{"role": "user", "content": "y" * 2000}]})
    with worker.client() as client:

        def refused() -> bool:
            return client.post("/v1/chat/completions", content=second).status_code == 503

        wait_for(refused, timeout=5)
        busy = client.post("/v1/chat/completions", content=second)
        assert "this worker of 2 holds its share, 4096 bytes" in busy.json()["error"]["message"]
        held.sendall(body[100:])
        assert held.recv(65536).startswith(b"HTTP/1.1 200 ")
        held.close()


def test_the_sdks_are_told_to_retry_a_full_gateway_shortly(roomy: RunningGateway) -> None:
    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 3000}]}).encode()
    held = hold_a_body(roomy.server.port, body)
    ask = [{"role": "user", "content": "y" * 2000}]
    chat = openai.OpenAI(base_url=roomy.url, api_key=GATEWAY_KEY, max_retries=0)
    messages = anthropic.Anthropic(base_url=roomy.server.url, api_key=GATEWAY_KEY, max_retries=0)
    failures: list[openai.APIStatusError | anthropic.APIStatusError] = []

    def refused() -> bool:
        try:
            chat.chat.completions.create(model="coder", messages=ask)  # type: ignore[arg-type]
        except openai.InternalServerError as exc:
            failures.append(exc)
            return True
        return False

    wait_for(refused, timeout=5)
    with pytest.raises(openai.InternalServerError) as answer:
        chat.responses.create(model="coder", input="y" * 2000)
    with pytest.raises(anthropic.APIStatusError) as message:
        messages.messages.create(model="coder", max_tokens=20, messages=ask)  # type: ignore[arg-type]
    failures += [answer.value, message.value]
    assert [f.status_code for f in failures] == [503, 503, 529]
    for failure in failures:
        headers = failure.response.headers
        # What the SDKs read, over the status: retry, one second from now.
        assert (headers["x-should-retry"], headers["retry-after"]) == ("true", "1")
    held.sendall(body[100:])
    assert held.recv(65536).startswith(b"HTTP/1.1 200 ")
    held.close()
