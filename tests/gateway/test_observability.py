"""/metrics, /healthz, the run log, and `rolecall serve` as a real process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from gateway_helpers import GATEWAY_KEY, RunningGateway, assert_no_secret

from rolecall.recording.runlog import list_runs
from rolecall.sim import Fault, SimServer

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


def test_metrics_count_requests_failures_handovers_latency_and_health(
    gateway: RunningGateway, primary: SimServer
) -> None:
    with gateway.client() as client:
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        primary.script(Fault("server"))
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200  # via b
        primary.script(Fault("auth"))
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200  # via b
        assert client.post("/v1/chat/completions", json={**CHAT, "model": "x"}).status_code == 404
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    expected = [
        'rolecall_gateway_requests_total{model="coder",status="200"} 3',
        'rolecall_gateway_requests_total{model="(unknown)",status="404"} 1',
        'rolecall_provider_failures_total{provider="a",role="coder",kind="server"} 1',
        'rolecall_provider_failures_total{provider="a",role="coder",kind="auth"} 1',
        'rolecall_handovers_total{provider="a",role="coder"} 2',
        'rolecall_provider_calls_total{provider="a",role="coder",outcome="ok"} 1',
        'rolecall_provider_calls_total{provider="b",role="coder",outcome="ok"} 2',
        'rolecall_tasks_total{role="coder",status="ok"} 3',
        'rolecall_provider_call_duration_seconds_count{provider="b",role="coder"} 2',
        'rolecall_gateway_request_duration_seconds_count{model="coder"} 3',
        'rolecall_provider_health{provider="a",state="unavailable"} 1',
        'rolecall_provider_health{provider="b",state="ok"} 1',
        "rolecall_gateway_in_flight 0",
    ]
    for line in expected:
        assert line in text, line
    assert re.search(
        r'rolecall_tokens_total\{provider="a",role="coder",direction="output"\} \d', text
    )


def test_healthz(gateway: RunningGateway) -> None:
    body = httpx.get(gateway.server.url + "/healthz").json()
    assert body["status"] == "ok" and body["config_generation"] == 1
    assert body["uptime_s"] >= 0


def test_every_request_is_a_task_of_one_gateway_run(
    gateway: RunningGateway, primary: SimServer, tmp_path: Path
) -> None:
    with gateway.client() as client:
        first = client.post("/v1/chat/completions", json=CHAT).json()
        primary.script(Fault("server"))
        second = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert second.status_code == 200
    gateway.stop()  # closing the gateway finishes the run and flushes the recorder
    runs = list_runs(tmp_path / "runs")
    assert len(runs) == 1
    run = runs[0]
    assert run.run_id == gateway.gateway.run_id
    assert run.kind == "gateway" and run.status == "ok"
    assert [task.provider for task in run.tasks] == ["a", "b"]
    assert run.tasks[0].task_id == first["id"].removeprefix("chatcmpl-")
    assert [a.provider for a in run.tasks[1].attempts] == ["a", "b"]


def test_a_full_run_is_finished_and_the_next_task_opens_a_new_one(
    config_path: Path, start_gateway: Callable[..., RunningGateway], tmp_path: Path
) -> None:
    running = start_gateway(config_path, run_max_tasks=2)
    with running.client() as client:
        ids = [client.post("/v1/chat/completions", json=CHAT).json()["id"] for _ in range(5)]
    running.stop()
    runs = sorted(list_runs(tmp_path / "runs"), key=lambda run: run.started_at or 0.0)
    assert [len(run.tasks) for run in runs] == [2, 2, 1]
    assert all(run.kind == "gateway" and run.status == "ok" for run in runs)
    tasks = [task.task_id for run in runs for task in run.tasks]
    assert tasks == [i.removeprefix("chatcmpl-") for i in ids]
    assert runs[-1].run_id == running.gateway.run_id


def test_serve_command_runs_until_interrupted(
    config_path: Path, tmp_path: Path, primary: SimServer
) -> None:
    exe = Path(sys.executable).with_name("rolecall")
    proc = subprocess.Popen(
        [str(exe), "serve", "-c", str(config_path), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    lines: list[str] = []
    watchdog = threading.Timer(30, proc.kill)  # never hang the suite on a stuck server
    watchdog.start()
    try:
        for line in proc.stderr:
            lines.append(line)
            if match := re.search(r"rolecall gateway on (http://\S+)/v1", line):
                url = match.group(1)
                break
        else:
            raise AssertionError("no startup line:\n" + "".join(lines))
        response = httpx.post(
            url + "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
        watchdog.cancel()
    assert proc.returncode == 0
    assert_no_secret("".join(lines) + rest)
    # One gateway run per worker (one per core by default); the one request is in one of them.
    runs = list_runs(tmp_path / "runs")
    assert {(run.kind, run.status) for run in runs} == {("gateway", "ok")}
    assert sum(len(run.tasks) for run in runs) == 1


def test_app_factory_starts_and_stops_in_the_lifespan(
    config_path: Path, primary: SimServer, tmp_path: Path
) -> None:
    from starlette.testclient import TestClient

    from rolecall.gateway.app import create_app

    app = create_app(config_path, offline=True)
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert response.status_code == 200
        assert response.headers["x-rolecall-provider"] == "a"
    # One gateway run per worker (one per core by default); the one request is in one of them.
    runs = list_runs(tmp_path / "runs")
    assert {(run.kind, run.status) for run in runs} == {("gateway", "ok")}
    assert sum(len(run.tasks) for run in runs) == 1
