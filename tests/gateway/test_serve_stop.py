"""``rolecall serve`` in one process stopped by a signal: what it served stays recorded."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from gateway_helpers import FALLBACK_KEY, GATEWAY_KEY, PRIMARY_KEY, config_text, wait_for

from rolecall.recording.runlog import list_runs
from rolecall.sim import Fault, SimServer
from serve_helpers import serving_process

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_closes_the_run_with_every_request_recorded(
    config_path: Path, tmp_path: Path, primary: SimServer, signum: int
) -> None:
    # Nothing is written before the stop: only the gateway's closing flush can record it.
    text = config_path.read_text().replace("flush_interval: 50ms", "flush_interval: 1h")
    config_path.write_text(text)
    with serving_process(config_path, "--workers", "1") as (proc, url, lines):
        answer = httpx.post(
            url + "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        proc.send_signal(signum)
        code = proc.wait(30)
    assert code == 0, "".join(lines)
    runs = list_runs(tmp_path / "runs")
    assert [(run.kind, run.status, len(run.tasks)) for run in runs] == [("gateway", "ok", 1)]
    assert not list((tmp_path / "runs" / ".writers").glob("*.lock"))


# Each door's answer to a request the stop ended: (path, body, status, its error code).
DOORS = {
    "chat": (
        "/v1/chat/completions",
        CHAT,
        503,
        lambda body: body["error"]["code"] == "shutting_down",
    ),
    "messages": (
        "/v1/messages",
        {**CHAT, "max_tokens": 100},
        529,  # the gateway's 503 in Anthropic's words: retried by its SDK
        lambda body: body["error"]["type"] == "overloaded_error",
    ),
}


@pytest.mark.parametrize("door", sorted(DOORS))
def test_a_forced_stop_ends_a_request_in_flight_with_a_503_recorded_as_cancelled(
    config_path: Path, tmp_path: Path, primary: SimServer, fallback: SimServer, door: str
) -> None:
    """Ctrl-C twice (force quit) under a request still waiting for its provider: the client
    gets a 503 saying the gateway is shutting down (it was a 500, the call was recorded as
    a bad_response and handed over, and the log showed a KeyError)."""
    path, body, status, coded = DOORS[door]
    with serving_process(config_path, "--workers", "1") as (proc, url, lines):
        primary.set_faults("timeout")  # accepts the call, never answers
        answers, client = _send(url + path, body)
        wait_for(lambda: primary.in_flight == 1)
        log = _force_stop(proc, lines)
        client.join(30)
    assert [a.status_code for a in answers] == [status], log
    assert coded(answers[0].json()), answers[0].text
    assert "shutting down" in answers[0].json()["error"]["message"]
    assert answers[0].headers["x-should-retry"] == "true"
    assert "Traceback" not in log and "KeyError" not in log and "ERROR" not in log, log
    assert fallback.calls == 0  # not handed over to a provider closing too
    assert _attempts(tmp_path) == [("a", "cancelled")]


def test_a_forced_stop_ends_a_request_still_on_the_router_a_reload_replaced(
    config_path: Path, tmp_path: Path, primary: SimServer, fallback: SimServer
) -> None:
    """A request that began before a reload keeps the old router; a stop closes that one
    too (it was left open, its request cut off unanswered and unrecorded)."""
    with serving_process(config_path, "--workers", "1") as (proc, url, lines):
        primary.script("timeout")  # this call only: the reload's credential check is answered
        answers, client = _send(url + "/v1/chat/completions", CHAT)
        wait_for(lambda: primary.in_flight == 1)
        config_path.write_text(
            config_path.read_text().replace(
                "coder: {provider: a, fallback: [b]}", "coder: {provider: b}"
            )
        )
        reader = _read_on(proc, lines)
        wait_for(lambda: any("reloaded (generation 2)" in line for line in lines))
        log = _force_stop(proc, lines, reader)
        client.join(30)
    assert [a.status_code for a in answers] == [503], log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert _attempts(tmp_path) == [("a", "cancelled")]


def test_a_second_sigterm_ends_a_stream_that_never_ends(
    config_path: Path, tmp_path: Path, primary: SimServer
) -> None:
    """A service manager's stop (SIGTERM) waits for a stream that never ends; a second one
    forces it, as a second Ctrl-C does (it did nothing: the process waited until the
    manager's SIGKILL, and the request was never recorded). The stream ends with an error
    event saying the gateway is shutting down."""
    with serving_process(config_path, "--workers", "1") as (proc, url, lines):
        primary.script(Fault("stall", after_chunks=1))  # one chunk, then silence
        events: list[str] = []

        def read() -> None:
            body = {**CHAT, "stream": True}
            headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
            with httpx.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=30
            ) as response:
                events.extend(line for line in response.iter_lines() if line)

        client = threading.Thread(target=read)
        client.start()
        wait_for(lambda: len(events) >= 2)  # the role's chunk and the first text
        log = _force_stop(proc, lines, signum=signal.SIGTERM)
        client.join(30)
    assert proc.returncode == 0, log
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["code"] == "shutting_down" and "shutting down" in error["message"], events
    assert "Traceback" not in log and "ERROR" not in log, log
    assert _attempts(tmp_path) == [("a", "cancelled")]


def test_a_forced_stop_closes_a_request_still_sending_its_body_without_a_traceback(
    config_path: Path,
) -> None:
    """A request whose body has not all arrived when the stop is forced: its connection
    closes (it got a plain-text 500, and the log a traceback of the cancelled read)."""
    with serving_process(config_path, "--workers", "1") as (proc, url, lines):
        body = json.dumps(CHAT).encode()
        host, port = httpx.URL(url).host, httpx.URL(url).port
        assert port is not None
        with socket.create_connection((host, port), timeout=30) as sock:
            head = (
                "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                f"authorization: Bearer {GATEWAY_KEY}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[:10])  # the rest never comes
            wait_for(lambda: _in_flight(url) == 1)
            log = _force_stop(proc, lines)
            answer = sock.recv(1000)
    assert answer == b"", answer  # closed, not answered 500
    assert "Traceback" not in log and "ERROR" not in log, log
    assert "a request was still in flight when the gateway stopped" in log


def _in_flight(url: str) -> float:
    """The gateway's ``rolecall_gateway_in_flight`` gauge."""
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    text = httpx.get(url + "/metrics", headers=headers, timeout=10).text
    return float(
        next(
            line.split()[-1]
            for line in text.splitlines()
            if line.startswith("rolecall_gateway_in_flight")
        )
    )


def _send(url: str, body: object) -> tuple[list[httpx.Response], threading.Thread]:
    """POST ``body`` from a thread of its own: (where its answer goes, the thread)."""
    answers: list[httpx.Response] = []
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    client = threading.Thread(
        target=lambda: answers.append(httpx.post(url, json=body, headers=headers, timeout=30))
    )
    client.start()
    return answers, client


def _read_on(proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    """Keep adding the server's log lines to ``lines`` as they come, until it exits."""
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()))
    reader.start()
    return reader


def _force_stop(
    proc: subprocess.Popen[str],
    lines: list[str],
    reader: threading.Thread | None = None,
    signum: int = signal.SIGINT,
) -> str:
    """Ctrl-C, and once the server waits for its requests, Ctrl-C again (or ``signum``
    twice): its whole log."""
    reader = reader or _read_on(proc, lines)
    proc.send_signal(signum)  # graceful: waits for the requests in flight
    wait_for(lambda: any("Waiting for connections to close" in line for line in lines))
    proc.send_signal(signum)  # forced
    proc.wait(30)
    reader.join(30)
    return "".join(lines)


def _attempts(tmp_path: Path) -> list[tuple[str, str]]:
    """(provider, outcome) of every attempt the gateway's run logs hold."""
    return [
        (line["provider"], line["outcome"])
        for path in (tmp_path / "runs").rglob("*.jsonl")
        for line in map(json.loads, path.read_text().splitlines())
        if line.get("type") == "attempt"
    ]


def test_a_forced_ctrl_c_answers_every_request_in_flight_and_exits_0(
    tmp_path: Path, primary: SimServer, fallback: SimServer
) -> None:
    """Requests raced across both providers when Ctrl-C is pressed twice: each is answered
    503 and recorded, and the stop is clean (asyncio's own Ctrl-C handling cancelled the
    gateway's close half-way: connections dropped unanswered, exit 130)."""
    (tmp_path / ".env").write_text(
        f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\nGATEWAY_KEY={GATEWAY_KEY}\n"
    )
    config_path = tmp_path / "rolecall.yaml"
    config_path.write_text(
        config_text(primary, fallback, tmp=tmp_path, extra="failover_within: 200ms\n")
    )
    with serving_process(config_path, "--workers", "1") as (proc, url, lines):
        primary.set_faults("timeout")
        fallback.set_faults("timeout")
        sent = [_send(url + "/v1/chat/completions", CHAT) for _ in range(3)]
        wait_for(lambda: fallback.in_flight == 3)  # each raced: its call to b runs too
        log = _force_stop(proc, lines)
        for _, client in sent:
            client.join(30)
    assert [a.status_code for answers, _ in sent for a in answers] == [503] * 3, log
    assert proc.returncode == 0, log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert sorted(_attempts(tmp_path)) == [("a", "cancelled")] * 3 + [("b", "cancelled")] * 3
