"""``/api/advise`` proposes only providers that can take the role: configured, key alive."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway

from factories import calls_in_the_last_hour
from rolecall.cli import main
from rolecall.dashboard.server import DashboardServer
from rolecall.recording.store import open_store
from rolecall.sim import Fault, SimServer


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """In the coder role gpt does badly, claude best of all and gemini well."""
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    with open_store(url) as store:
        store.record(
            calls_in_the_last_hour("gpt", 400, 0.70, seed=1)
            + calls_in_the_last_hour("claude", 400, 1.0, seed=2)
            + calls_in_the_last_hour("gemini", 400, 0.97, seed=3)
        )
    return url


def _pairs(findings: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(f["provider"], f["better"]) for f in findings if f["kind"] == "reassign"}


def test_the_dashboard_does_not_propose_a_provider_taken_out_of_the_config(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "rolecall.yaml"
    config.write_text(
        "providers:\n"
        "  gpt: {type: openai, model: m, api_key: k}\n"
        "  gemini: {type: google, model: m, api_key: k}\n"
        "default_provider: gpt\n",
        encoding="utf-8",
    )
    server = DashboardServer(store_url, providers=lambda: {"gpt", "gemini"}).start()
    try:
        with urllib.request.urlopen(f"{server.url}/api/advise") as response:
            advice = json.loads(response.read())
    finally:
        server.stop()
    assert _pairs(advice) == {("gpt", "gemini")}
    capsys.readouterr()
    assert main(["metrics", "advise", "--json", "--store", store_url, "-c", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == advice


@pytest.fixture
def claude_key_rejected(tmp_path: Path, store_url: str) -> Iterator[RunningGateway]:
    """A gateway over gpt, claude and gemini sims whose claude key was just refused."""
    with (
        SimServer("openai", models=("gpt-sim",)) as gpt,
        SimServer("anthropic", models=("claude-sim",)) as claude,
        SimServer("openai", models=("gemini-sim",)) as gemini,
    ):
        config = tmp_path / "rolecall.yaml"
        config.write_text(
            f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: test-key, base_url: "{gpt.base_url}"}}
  claude: {{type: anthropic, model: claude-sim, api_key: test-key, base_url: "{claude.base_url}"}}
  gemini: {{type: openai-compatible, model: gemini-sim, base_url: "{gemini.base_url}"}}
roles:
  coder: {{provider: gpt, fallback: [gemini]}}
  reviewer: {{provider: claude, fallback: [gpt]}}
gateway: {{keys: ["{GATEWAY_KEY}"]}}
metrics: {{url: "{store_url}", runs_dir: "{tmp_path / "runs"}"}}
""",
            encoding="utf-8",
        )
        gateway = RunningGateway(config, offline=True).start()
        try:
            claude.script(Fault("auth"))
            with gateway.client() as client:
                chat = {"model": "reviewer", "messages": [{"role": "user", "content": "hi"}]}
                assert client.post("/v1/chat/completions", json=chat).status_code == 200
            yield gateway
        finally:
            gateway.stop()


def test_the_gateway_dashboard_does_not_propose_a_provider_whose_key_was_refused(
    claude_key_rejected: RunningGateway,
) -> None:
    with claude_key_rejected.client() as client:
        health = client.get("/api/health").json()
        assert health["providers"]["claude"]["state"] == "unavailable"
        advice = client.get("/api/advise").json()
    assert _pairs(advice) == {("gpt", "gemini")}
