"""A client that goes away frees its provider call, and is counted as 499, not as 200."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_helpers import (
    FALLBACK_KEY,
    GATEWAY_KEY,
    PRIMARY_KEY,
    RunningGateway,
    config_text,
    wait_for,
)

from rolecall.config.load import load_config
from rolecall.gateway.app import Gateway
from rolecall.recording.runlog import list_runs
from rolecall.recording.store import open_store
from rolecall.sim import Fault, SimServer

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
HANG = 30.0  # far past the test's bounds: a call still running at the end ran for nobody


def metrics(gateway: RunningGateway) -> str:
    with gateway.client() as client:
        return client.get("/metrics").text


def in_flight(gateway: RunningGateway) -> int:
    match = re.search(r"^rolecall_gateway_in_flight (\d+)", metrics(gateway), re.M)
    assert match is not None
    return int(match.group(1))


def leave_whole_request(gateway: RunningGateway) -> None:
    """Send a chat request and hang up before the (stalled) provider answers."""
    with gateway.client() as client, pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=CHAT, timeout=httpx.Timeout(5, read=0.5))


def leave_stream(gateway: RunningGateway) -> None:
    """Read a stream's first text, then hang up while the provider stalls."""
    with (
        gateway.client() as client,
        client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as reply,
    ):
        assert reply.status_code == 200
        next(reply.iter_lines())


def test_a_client_that_leaves_cancels_its_provider_call(
    gateway: RunningGateway, primary: SimServer
) -> None:
    primary.script(Fault("timeout", delay=HANG))
    leave_whole_request(gateway)
    wait_for(lambda: in_flight(gateway) == 0, timeout=5)
    text = metrics(gateway)
    assert 'rolecall_gateway_requests_total{model="coder",status="499"} 1' in text
    assert 'status="200"' not in text


def test_an_abandoned_stream_is_499_not_200(gateway: RunningGateway, primary: SimServer) -> None:
    primary.script(Fault("stall", after_chunks=1, delay=HANG))
    leave_stream(gateway)
    wait_for(lambda: in_flight(gateway) == 0, timeout=5)
    text = metrics(gateway)
    assert 'rolecall_gateway_requests_total{model="coder",status="499"} 1' in text
    assert 'status="200"' not in text


def test_abandoned_requests_are_recorded_as_cancelled(
    gateway: RunningGateway, primary: SimServer, tmp_path: Path
) -> None:
    primary.script(Fault("timeout", delay=HANG))
    leave_whole_request(gateway)
    primary.script(Fault("stall", after_chunks=1, delay=HANG))
    leave_stream(gateway)
    wait_for(lambda: in_flight(gateway) == 0, timeout=5)
    gateway.stop()  # finishes the run and flushes the recorder
    tasks = list_runs(tmp_path / "runs")[0].tasks
    assert len(tasks) == 2
    for task in tasks:
        assert [(a.provider, a.outcome) for a in task.attempts] == [("a", "cancelled")]
        assert task.status == "cancelled"  # ended: it was "incomplete", with no end


def _run_page(gateway: RunningGateway) -> dict[str, Any]:
    """The dashboard's page of the gateway's own run, read from the store while it runs."""
    with gateway.client() as client:
        [run] = client.get("/api/runs").json()
        page: dict[str, Any] = client.get(f"/api/runs/{run['run_id']}").json()
        return page


def test_a_task_whose_client_left_ends_cancelled_while_the_gateway_runs(
    gateway: RunningGateway, primary: SimServer, tmp_path: Path
) -> None:
    # Its call was recorded as cancelled, but the task never ended: the run page and
    # `runs show` listed it as running for as long as the gateway's run was open.
    primary.script(Fault("timeout", delay=HANG))
    leave_whole_request(gateway)
    primary.script(Fault("stall", after_chunks=1, delay=HANG))
    leave_stream(gateway)
    wait_for(lambda: in_flight(gateway) == 0, timeout=5)

    def statuses() -> list[str]:
        return [task["status"] for task in _run_page(gateway)["tasks"]]

    wait_for(lambda: len(statuses()) == 2 and "running" not in statuses())
    assert statuses() == ["cancelled", "cancelled"]
    assert _run_page(gateway)["status"] == "running"  # the gateway's run goes on
    text = metrics(gateway)
    assert 'rolecall_tasks_total{role="coder",status="cancelled"} 2' in text
    gateway.stop()
    store = open_store(f"sqlite:///{tmp_path}/rolecall.db", create=False)
    try:
        [summary] = store.runs(5)
        run = store.run(summary.run_id)
    finally:
        store.close()
    assert run is not None
    assert [(t.status, t.provider, len(t.attempts)) for t in run.tasks] == [
        ("cancelled", "a", 1)
    ] * 2
    assert (summary.tasks, summary.tasks_failed) == (2, 0)  # cancelled: not failed


async def test_a_server_that_never_reports_disconnects_is_still_answered(
    config_path: Path,
) -> None:
    # Some ASGI servers and harnesses answer every receive() with the body again.
    gateway = Gateway(load_config(config_path), offline=True, record=False)
    await gateway.start()
    body = json.dumps(CHAT).encode()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {GATEWAY_KEY}".encode())],
    }
    try:
        await asyncio.wait_for(gateway.app(scope, receive, send), 10)
    finally:
        await gateway.aclose()
    assert sent[0]["status"] == 200


@pytest.mark.parametrize(
    ("door", "body"),
    [
        ("/v1/chat/completions", {**CHAT, "stream": True}),
        ("/v1/messages", {**CHAT, "stream": True, "max_tokens": 100}),
        ("/v1/responses", {"model": "coder", "input": "hi", "stream": True}),
    ],
)
def test_a_client_that_reads_nothing_frees_the_provider_after_its_timeout(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
    door: str,
    body: dict[str, Any],
) -> None:
    # The provider streams a long answer; the client keeps its connection but reads none of
    # it. Its stream used to hold the provider's one slot until it hung up: every other
    # request to that provider waited behind it, however long.
    primary.reply = " ".join(f"w{i}" for i in range(100_000))
    (tmp_path / ".env").write_text(
        f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\nGATEWAY_KEY={GATEWAY_KEY}\n"
    )
    config = tmp_path / "rolecall.yaml"
    text = config_text(primary, fallback, coder="{provider: a}", tmp=tmp_path)
    # 2 s, not less: the fake provider shares this process, and on a loaded machine a
    # shorter timeout expired on its own slow chunks first (a 500, not the client's 499).
    # The sim writes a long stream as it builds it: built whole first (28 MB here), its
    # head came after the 2 s on a loaded machine.
    text = text.replace(
        "model: model-a\n", "model: model-a\n    timeout: 2s\n    max_concurrency: 1\n"
    )
    config.write_text(text.replace("max_body_bytes: 4096", "max_body_bytes: 65536"))
    gateway = start_gateway(config)
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", gateway.server.port)) as stuck:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(
            f"POST {door} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {GATEWAY_KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        wait_for(lambda: primary.calls == 1)
        with gateway.client() as client:
            reply = client.post("/v1/chat/completions", json=CHAT, timeout=10)
        assert reply.status_code == 200
        assert reply.headers["x-rolecall-provider"] == "a"
        wait_for(lambda: in_flight(gateway) == 0)
    # The stalled request is counted when its stream's end is settled, just after it
    # leaves the in-flight gauge.
    stalled = 'rolecall_gateway_requests_total{model="coder",status="499"} 1'
    wait_for(lambda: stalled in metrics(gateway))
