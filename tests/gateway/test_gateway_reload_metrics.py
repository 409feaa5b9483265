"""A reload that changes where records go says they need a restart, instead of 'reloaded' alone."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from gateway_helpers import RunningGateway, config_text, wait_for

from rolecall.recording.runlog import list_runs
from rolecall.sim import SimServer

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


def test_changed_metrics_url_and_runs_dir_are_reported_as_needing_a_restart(
    gateway: RunningGateway,
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rolecall.gateway")
    moved = config_text(primary, fallback, coder="{provider: b}", tmp=tmp_path / "elsewhere")
    config_path.write_text(moved)
    with gateway.client() as client:
        wait_for(lambda: client.get("/healthz").json()["config_generation"] == 2)
        response: httpx.Response = client.post("/v1/chat/completions", json=CHAT)
        assert response.headers["x-rolecall-provider"] == "b"  # the routing change applied
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "metrics.url, metrics.runs_dir" in warnings[0]
    assert "restart" in warnings[0]
    gateway.stop()
    # What the warning says: records still go where the gateway started.
    assert len(list_runs(tmp_path / "runs")[0].tasks) == 1
    assert not (tmp_path / "elsewhere").exists()
