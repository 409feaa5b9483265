"""Protocol-independent behaviour: scripting, stats, control API, responder, HTTP plumbing."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sim_helpers import KEY, MESSAGES, PROMPT

from rolecall.sim import Fault, SimServer, parse_fault

CHAT = {"model": "sim-model", "messages": MESSAGES}
AUTH = {"authorization": f"Bearer {KEY}"}


_HTTP = httpx.Client(timeout=10)  # one pool: a new client per call costs ~0.1 s here


@pytest.fixture(scope="module", autouse=True)
def _close_pool() -> Iterator[None]:
    yield
    _HTTP.close()


def _chat(server: SimServer, client: httpx.Client = _HTTP, **extra: Any) -> httpx.Response:
    return client.post(f"{server.base_url}/chat/completions", json={**CHAT, **extra}, headers=AUTH)


def _text(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def test_script_is_fifo_then_normal(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("rate_limit"), Fault("server"), "overloaded")
    assert openai_sim.pending == 3
    statuses = [_chat(openai_sim).status_code for _ in range(4)]
    assert statuses == [429, 500, 503, 200]
    assert openai_sim.calls == 4 and openai_sim.pending == 0


def test_stream_and_plain_requests_share_the_queue(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("server"), Fault("auth"))
    assert _chat(openai_sim, stream=True).status_code == 500  # HTTP error, not a stream
    response = _chat(openai_sim)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"


def test_sticky_faults_until_clear_and_model_endpoints(openai_sim: SimServer) -> None:
    openai_sim.set_faults(Fault("auth"))
    assert [_chat(openai_sim).status_code for _ in range(3)] == [401] * 3
    models = _HTTP.get(f"{openai_sim.base_url}/models", headers=AUTH)
    assert models.status_code == 401  # the credential check sees the bad key too

    openai_sim.set_faults(Fault("quota"))
    assert _chat(openai_sim).status_code == 429
    # a key without credit still lists models
    assert _HTTP.get(f"{openai_sim.base_url}/models", headers=AUTH).status_code == 200

    openai_sim.script(Fault("ok"))  # the queue goes first
    assert _chat(openai_sim).status_code == 200
    openai_sim.clear()
    assert _chat(openai_sim).status_code == 200


def test_sticky_faults_rotate(openai_sim: SimServer) -> None:
    openai_sim.set_faults(Fault("server"), Fault("ok"))
    assert [_chat(openai_sim).status_code for _ in range(4)] == [500, 200, 500, 200]


def test_stats_and_reset(openai_sim: SimServer) -> None:
    _chat(openai_sim)
    openai_sim.script(Fault("reset"))
    with pytest.raises(httpx.TransportError):
        _chat(openai_sim)
    _HTTP.get(f"{openai_sim.base_url}/models", headers=AUTH)
    assert (openai_sim.calls, openai_sim.model_calls) == (2, 1)
    assert len(openai_sim.requests) == 3
    openai_sim.reset_stats()
    assert (openai_sim.calls, openai_sim.model_calls, openai_sim.requests) == (0, 0, [])


def _wait_settled(sim: SimServer) -> None:
    """Wait for the server to close its count: a client may read the answer first."""
    deadline = time.monotonic() + 5
    while sim.in_flight and time.monotonic() < deadline:
        time.sleep(0.005)


def test_peak_in_flight_counts_chat_requests_answered_at_once(openai_sim: SimServer) -> None:
    openai_sim.reset_stats()
    openai_sim.set_faults("ok:delay=0.3")
    try:
        threads = [threading.Thread(target=_chat, args=(openai_sim,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        openai_sim.clear()
    _wait_settled(openai_sim)
    assert (openai_sim.in_flight, openai_sim.peak_in_flight) == (0, 4)
    assert openai_sim.stats()["peak_in_flight"] == 4
    _chat(openai_sim)
    _wait_settled(openai_sim)
    openai_sim.reset_stats()
    assert openai_sim.peak_in_flight == 0


def test_http_control_api(anthropic_sim: SimServer) -> None:
    root = anthropic_sim.root_url
    queued = _HTTP.post(
        f"{root}/_sim/script", json=["overloaded", {"kind": "rate_limit", "retry_after": 2}]
    )
    assert queued.status_code == 200
    assert queued.json()["queued"] == [
        {"kind": "overloaded"},
        {"kind": "rate_limit", "retry_after": 2.0},
    ]

    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "sim-model", "max_tokens": 5, "messages": MESSAGES}
    first = _HTTP.post(f"{root}/v1/messages", json=body, headers=headers)
    second = _HTTP.post(f"{root}/v1/messages", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (529, 429)
    assert second.headers["retry-after"] == "2"

    stats = _HTTP.get(f"{root}/_sim/stats").json()
    assert (stats["calls"], stats["model_calls"], stats["queued"]) == (2, 0, [])

    _HTTP.post(f"{root}/_sim/script", json=["server"])
    assert _HTTP.post(f"{root}/_sim/clear").status_code == 200
    assert _HTTP.post(f"{root}/v1/messages", json=body, headers=headers).status_code == 200

    bad = _HTTP.post(f"{root}/_sim/script", json=["bogus"])
    assert bad.status_code == 400 and "unknown fault kind 'bogus'" in bad.json()["error"]
    assert anthropic_sim.calls == 3  # control requests are not chat calls


def test_responder_controls_text_usage_and_faults(openai_sim: SimServer) -> None:
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str | dict[str, Any] | Fault:
        seen.append(body)
        role_prompt = body["messages"][0]["content"]
        if role_prompt == "plan":
            return {"text": "1. do it", "input_tokens": 100, "output_tokens": 7}
        if role_prompt == "fail":
            return Fault("rate_limit", retry_after=1)
        return f"echo: {role_prompt}"

    openai_sim.responder = responder
    plan = _chat(openai_sim, messages=[{"role": "user", "content": "plan"}]).json()
    assert plan["choices"][0]["message"]["content"] == "1. do it"
    assert (plan["usage"]["prompt_tokens"], plan["usage"]["completion_tokens"]) == (100, 7)
    assert _chat(openai_sim, messages=[{"role": "user", "content": "fail"}]).status_code == 429
    assert _text(_chat(openai_sim)) == f"echo: {PROMPT}"
    assert seen[0]["model"] == "sim-model"

    streamed = _chat(openai_sim, stream=True).text
    assert "echo:" in streamed


def test_responder_fault_ok_answers_the_plain_reply_late(openai_sim: SimServer) -> None:
    openai_sim.responder = lambda body: Fault("ok", delay=0.2)
    started = time.monotonic()
    assert _text(_chat(openai_sim)) == openai_sim.reply
    assert time.monotonic() - started >= 0.2


def test_async_responder(openai_sim: SimServer) -> None:
    async def responder(body: dict[str, Any]) -> str:
        await asyncio.sleep(0.01)
        return "async answer"

    openai_sim.responder = responder
    assert _text(_chat(openai_sim)) == "async answer"


def test_responder_that_raises_gives_a_500(openai_sim: SimServer) -> None:
    def responder(body: dict[str, Any]) -> str:
        raise RuntimeError("broken test double")

    openai_sim.responder = responder
    assert _chat(openai_sim).status_code == 500


def test_latency_and_fault_delay() -> None:
    with SimServer("openai", latency=0.2) as server:
        server.script(Fault("server", delay=0.2))
        started = time.monotonic()
        assert _chat(server).status_code == 500
        assert time.monotonic() - started >= 0.4
        started = time.monotonic()
        assert _chat(server).status_code == 200
        assert 0.2 <= time.monotonic() - started < 0.4


def test_any_key_when_api_key_is_none_and_custom_models() -> None:
    with SimServer("openai", api_key=None, models=("a", "b"), reply="custom") as server:
        response = _HTTP.post(
            f"{server.base_url}/chat/completions", json={**CHAT, "model": "b"}
        )  # no key at all
        assert _text(response) == "custom"
        assert response.json()["model"] == "b"
        assert _chat(server, model="sim-model").status_code == 404
        listed = _HTTP.get(f"{server.base_url}/models").json()
        assert [m["id"] for m in listed["data"]] == ["a", "b"]


def test_key_can_be_rotated_at_runtime(openai_sim: SimServer) -> None:
    openai_sim.api_key = "new-key"
    assert _chat(openai_sim).status_code == 401


def test_invalid_json_and_unknown_paths(openai_sim: SimServer) -> None:
    bad = _HTTP.post(
        f"{openai_sim.base_url}/chat/completions",
        content=b"{not json",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert bad.status_code == 400
    assert "could not parse the JSON body" in bad.json()["error"]["message"]
    missing = _HTTP.post(
        f"{openai_sim.base_url}/chat/completions", json={"model": "sim-model"}, headers=AUTH
    )
    assert missing.json()["error"]["param"] == "messages"
    unknown = _HTTP.get(f"{openai_sim.root_url}/v2/whatever", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v2/whatever)"


def test_keep_alive_and_pipelining_on_one_connection(openai_sim: SimServer) -> None:
    body = json.dumps(CHAT).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: sim\r\nauthorization: Bearer test-key\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", openai_sim.port), timeout=5) as sock:
        sock.sendall(request * 3)  # three pipelined requests in one write
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 3 or not data.endswith(b"}}"):
            chunk = sock.recv(65536)
            assert chunk, "server closed a keep-alive connection"
            data += chunk
        sock.sendall(request)  # and the connection is still usable
        more = sock.recv(65536)
    assert more.startswith(b"HTTP/1.1 200 OK")
    assert openai_sim.calls == 4


def test_connection_close_is_honoured(openai_sim: SimServer) -> None:
    response = _HTTP.post(
        f"{openai_sim.base_url}/chat/completions",
        json=CHAT,
        headers={**AUTH, "connection": "close"},
    )
    assert response.status_code == 200
    assert response.headers["connection"] == "close"


def test_many_requests_in_flight(openai_sim: SimServer) -> None:
    body = json.dumps(CHAT).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: sim\r\nauthorization: Bearer test-key\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
    )

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", openai_sim.port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.close()
        return head

    async def burst() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(256)))

    heads = asyncio.run(burst())
    assert all(h.startswith(b"HTTP/1.1 200") for h in heads)
    assert openai_sim.calls == 256


def test_stall_mid_stream_then_read_timeout(openai_sim: SimServer) -> None:
    openai_sim.script(Fault("stall", after_chunks=2))
    received = b""
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST",
            f"{openai_sim.base_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers=AUTH,
            timeout=httpx.Timeout(5, read=0.3),
        ) as response,
    ):
        for chunk in response.iter_bytes():
            received += chunk
    assert b'"content":"Hello"' in received and b'" from"' in received
    assert b" the" not in received


def test_chunk_delay_spaces_stream_chunks() -> None:
    with SimServer("openai", chunk_delay=0.05) as server:
        started = time.monotonic()
        arrivals: list[float] = []
        with httpx.stream(
            "POST",
            f"{server.base_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers=AUTH,
        ) as response:
            for line in response.iter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    assert arrivals[-1] >= 0.2


def test_stop_ends_hanging_requests_and_restart_keeps_the_port() -> None:
    server = SimServer("openai").start()
    base_url = server.base_url
    server.script(Fault("timeout"))  # hangs for an hour unless stopped
    failures: list[BaseException] = []

    def hang() -> None:
        try:
            _chat(server, client=httpx.Client(timeout=30))
        except httpx.TransportError as exc:
            failures.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    deadline = time.monotonic() + 5
    while server.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    thread.join(5)
    assert time.monotonic() - started < 2
    assert failures, "the hanging request should fail when the server stops"
    with pytest.raises(httpx.ConnectError):
        _chat(server)  # stopped: connection refused, as an unreachable provider
    server.start()
    try:
        assert server.base_url == base_url
        assert _chat(server).status_code == 200
    finally:
        server.stop()


def test_base_urls_follow_the_sdk_conventions() -> None:
    with (
        SimServer("openai") as openai,
        SimServer("anthropic") as anthropic,
        SimServer("google") as google,
    ):
        assert openai.base_url == f"http://127.0.0.1:{openai.port}/v1"
        assert anthropic.base_url == f"http://127.0.0.1:{anthropic.port}"
        assert google.base_url == f"http://127.0.0.1:{google.port}"
        assert len({openai.port, anthropic.port, google.port}) == 3


def test_unknown_protocol_and_unstarted_server() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        SimServer("cohere")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="start"):
        _ = SimServer("openai").base_url


def test_max_recorded_bounds_memory() -> None:
    with SimServer("openai", max_recorded=4) as server:
        for _ in range(10):
            _chat(server)
        assert 1 <= len(server.requests) <= 4
        assert server.calls == 10


def test_parse_fault() -> None:
    assert parse_fault("rate_limit:retry_after=2,echo_key=true") == Fault(
        "rate_limit", retry_after=2.0, echo_key=True
    )
    assert parse_fault({"kind": "server", "status": 502}) == Fault("server", status=502)
    assert Fault("timeout").hang_seconds == 3600
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_fault("explode")
    with pytest.raises(ValueError, match="bad fault option"):
        parse_fault("rate_limit:soon")
    with pytest.raises(ValueError, match="not a valid float"):
        parse_fault("rate_limit:retry_after=later")
    with pytest.raises(ValueError, match="unknown fault field"):
        parse_fault({"kind": "server", "code": 1})
    with pytest.raises(ValueError, match="not an HTTP status"):
        Fault("server", status=999)


@pytest.mark.parametrize("stream", [False, True])
def test_a_fault_the_responder_chose_asks_it_once(openai_sim: SimServer, stream: bool) -> None:
    # A responder that plays a script of its own: its stream cut after one chunk must not
    # cost it a second turn (the plain reply is the text that is cut short).
    script: list[Any] = [Fault("stream_error", after_chunks=1), "second"]
    openai_sim.responder = lambda body: script.pop(0)
    received = b""
    url = f"{openai_sim.base_url}/chat/completions"
    body = {**CHAT, "stream": stream}
    with (
        pytest.raises(httpx.TransportError),  # the stream is cut
        _HTTP.stream("POST", url, json=body, headers=AUTH) as response,
    ):
        for part in response.iter_bytes():
            received += part
    assert script == ["second"]
    assert openai_sim.calls == 1
    assert b"second" not in received
