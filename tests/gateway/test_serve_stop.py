"""``rolecall serve`` in one process stopped by a signal: what it served stays recorded."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from gateway_helpers import GATEWAY_KEY

from rolecall.recording.runlog import list_runs
from rolecall.sim import SimServer
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
