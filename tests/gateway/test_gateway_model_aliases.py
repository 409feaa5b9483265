"""What a request may name: model aliases, the role header, x-api-key, and the dialect recorded."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway, config_text

from rolecall.config.load import load_config
from rolecall.errors import ConfigError
from rolecall.sim import SimServer

ALIASES = """\
    model_aliases: {claude-sonnet-4-5: coder, claude-haiku-4-5: reviewer, pinned-b: b}
"""


@pytest.fixture
def aliased_config(tmp_path: Path, config_path: Path) -> Path:
    config_path.write_text(config_path.read_text() + ALIASES.replace("    ", "  ", 1))
    return config_path


def ask(gateway: RunningGateway, model: str, **headers: str) -> tuple[int, dict[str, str], dict]:
    with gateway.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            headers=headers,
        )
    return response.status_code, dict(response.headers), response.json()


def test_alias_names_a_role_and_the_answer_names_the_model(
    aliased_config: Path, start_gateway: Callable[..., RunningGateway]
) -> None:
    gateway = start_gateway(aliased_config)
    status, headers, body = ask(gateway, "claude-sonnet-4-5")
    assert status == 200
    assert headers["x-rolecall-role"] == "coder" and headers["x-rolecall-provider"] == "a"
    assert body["model"] == "model-a"
    status, headers, body = ask(gateway, "claude-haiku-4-5")
    assert headers["x-rolecall-role"] == "reviewer" and body["model"] == "model-b"
    status, headers, _ = ask(gateway, "pinned-b")
    assert status == 200 and headers["x-rolecall-provider"] == "b"


def test_role_header_overrides_the_model(
    aliased_config: Path, start_gateway: Callable[..., RunningGateway]
) -> None:
    gateway = start_gateway(aliased_config)
    status, headers, body = ask(gateway, "claude-sonnet-4-5", **{"x-rolecall-role": "reviewer"})
    assert status == 200
    assert headers["x-rolecall-role"] == "reviewer" and body["model"] == "model-b"
    status, _, body = ask(gateway, "coder", **{"x-rolecall-role": "no-such-role"})
    assert status == 404 and "no-such-role" in body["error"]["message"]


def test_models_list_shows_aliases(
    aliased_config: Path, start_gateway: Callable[..., RunningGateway]
) -> None:
    gateway = start_gateway(aliased_config)
    with gateway.client() as client:
        listed = client.get("/v1/models").json()["data"]
    owners = {entry["id"]: entry["owned_by"] for entry in listed}
    assert owners["claude-sonnet-4-5"] == "rolecall-alias"
    assert owners["coder"] == "rolecall-role"


def test_x_api_key_is_accepted_and_checked(gateway: RunningGateway) -> None:
    body = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
    with gateway.client(key=None) as client:
        ok = client.post("/v1/chat/completions", json=body, headers={"x-api-key": GATEWAY_KEY})
        wrong = client.post("/v1/chat/completions", json=body, headers={"x-api-key": "nope"})
        blank = client.post("/v1/chat/completions", json=body, headers={"x-api-key": ""})
    assert ok.status_code == 200
    assert wrong.status_code == 401 and blank.status_code == 401


def test_each_task_records_the_api_it_came_in_on(gateway: RunningGateway, tmp_path: Path) -> None:
    assert ask(gateway, "coder")[0] == 200
    gateway.stop()
    with sqlite3.connect(tmp_path / "rolecall.db") as db:
        dialects = [row[0] for row in db.execute("SELECT dialect FROM tasks")]
    assert dialects == ["chat"]
    lines = [json.loads(line) for f in (tmp_path / "runs").glob("*.jsonl") for line in f.open()]
    assert [line["dialect"] for line in lines if line.get("type") == "task"] == ["chat"]


def test_alias_to_nothing_is_a_config_error(
    tmp_path: Path, primary: SimServer, fallback: SimServer
) -> None:
    path = tmp_path / "rolecall.yaml"
    extra = "gateway:\n  model_aliases: {claude-sonnet-4-5: codr}\n"
    text = config_text(primary, fallback, tmp=tmp_path).split("gateway:")[0] + extra
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "gateway.model_aliases.claude-sonnet-4-5" in message and "'coder'" in message
