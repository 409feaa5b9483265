"""Hot reload: a provider that cannot be checked (5xx) never rejects a valid new config."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from gateway_helpers import RunningGateway, config_text, wait_for

from rolecall.sim import Fault, SimServer


def generation(client: httpx.Client) -> int:
    return int(client.get("/healthz").json()["config_generation"])


def test_unreachable_provider_at_reload_is_a_warning_and_the_config_applies(
    gateway: RunningGateway,
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rolecall")
    fallback.script_models(Fault("overloaded"), Fault("overloaded"))
    # b (the one the check cannot reach) becomes the fallback of a new primary order.
    config_path.write_text(
        config_text(primary, fallback, coder="{provider: a, fallback: [b]}", tmp=tmp_path).replace(
            "retry: {max_attempts: 1", "failover_within: 2s\nretry: {max_attempts: 1"
        )
    )
    with gateway.client() as client:
        wait_for(lambda: generation(client) == 2)
        chat = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
        response = client.post("/v1/chat/completions", json=chat)
        assert response.status_code == 200, response.text
        assert response.headers["x-rolecall-provider"] == "a"
    messages = [r.getMessage() for r in caplog.records]
    assert not any("not applied" in m for m in messages)
    assert any("'b' could not be checked" in m for m in messages)
