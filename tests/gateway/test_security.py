"""Gateway keys, body limits, loopback-only without keys, and no secret in any output."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gateway_helpers import (
    GATEWAY_KEY,
    PRIMARY_KEY,
    RunningGateway,
    assert_no_secret,
    config_text,
)

from rolecall.cli import main
from rolecall.config.load import load_config
from rolecall.errors import ConfigError
from rolecall.gateway.app import Gateway
from rolecall.sim import Fault, SimServer

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("route", ["/v1/models", "/v1/models/coder", "/metrics"])
def test_every_route_but_healthz_needs_a_key(gateway: RunningGateway, route: str) -> None:
    with gateway.client(key=None) as client:
        missing = client.get(route)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        assert client.get(route, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(route, headers={"Authorization": GATEWAY_KEY}).status_code == 401
        ok = client.get(route, headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
        assert ok.status_code == 200
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"


def test_chat_with_bad_key_is_401_and_never_reaches_a_provider(
    gateway: RunningGateway, primary: SimServer
) -> None:
    with gateway.client(key="gw-wrong-key") as client:
        response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert primary.calls == 0


def test_oversized_body_is_413(gateway: RunningGateway, primary: SimServer) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}  # limit is 4096
    with gateway.client() as client:
        declared = client.post("/v1/chat/completions", json=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "request_too_large"
        assert "gateway.max_body_bytes" in declared.json()["error"]["message"]

        # No Content-Length (chunked upload): the gateway counts what arrives.
        payload = json.dumps(big).encode()

        def pieces() -> object:
            for start in range(0, len(payload), 1000):
                yield payload[start : start + 1000]

        chunked = client.post(
            "/v1/chat/completions",
            content=pieces(),  # type: ignore[arg-type]
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413
        assert "content-length" not in chunked.request.headers
    assert primary.calls == 0


def test_malformed_requests_are_400(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        bad_json = client.post(
            "/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert bad_json.status_code == 400
        assert "not valid JSON" in bad_json.json()["error"]["message"]
        no_messages = client.post("/v1/chat/completions", json={"model": "coder"})
        assert no_messages.status_code == 400
        assert no_messages.json()["error"]["param"] == "messages"
        bad_temp = client.post("/v1/chat/completions", json={**CHAT, "temperature": 9})
        assert bad_temp.status_code == 400
        assert bad_temp.json()["error"]["param"] == "temperature"
        assert client.get("/v1/nothing").status_code == 404
        assert client.get("/v1/chat/completions").status_code == 405


def test_provider_key_echoed_by_a_server_never_leaves_the_gateway(
    gateway: RunningGateway,
    primary: SimServer,
    fallback: SimServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    primary.script(Fault("auth", echo_key=True))
    fallback.script(Fault("bad_request", echo_key=True))
    outputs: list[str] = []
    with gateway.client() as client:
        failed = client.post("/v1/chat/completions", json=CHAT)
        assert failed.status_code == 502
        outputs += [failed.text, json.dumps(dict(failed.headers))]
        primary.script(Fault("stream_error", after_chunks=1, echo_key=True))
        streamed = client.post("/v1/chat/completions", json={**CHAT, "model": "a", "stream": True})
        outputs += [streamed.text, json.dumps(dict(streamed.headers))]
        for route in ("/v1/models", "/metrics", "/healthz"):
            outputs.append(client.get(route).text)
    # The sims really echoed the keys; the gateway masked them.
    assert "***" in failed.json()["error"]["message"]
    assert_no_secret(*outputs)
    assert_no_secret(*(record.getMessage() for record in caplog.records))
    assert_no_secret(*(r.exc_text or "" for r in caplog.records))


def test_non_loopback_bind_without_keys_is_refused(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / ".env").write_text(f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY=sk-unused-000000\n")
    path = tmp_path / "open.yaml"
    path.write_text(config_text(primary, fallback, keys="[]", tmp=tmp_path))
    code = main(["serve", "--host", "0.0.0.0", "--port", "0", "-c", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "gateway.keys" in err and "0.0.0.0" in err
    assert len(err.strip().splitlines()) == 1
    # The library refuses too, not just the command.
    gateway = Gateway(load_config(path), host="0.0.0.0", offline=True)
    with pytest.raises(ConfigError, match=r"gateway\.keys"):
        import asyncio

        asyncio.run(gateway.start())


def test_loopback_without_keys_is_open(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> None:
    (tmp_path / ".env").write_text(f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY=sk-unused-000000\n")
    path = tmp_path / "open.yaml"
    path.write_text(config_text(primary, fallback, keys="[]", tmp=tmp_path))
    running = start_gateway(path, offline=True)
    with httpx.Client(base_url=running.server.url) as client:
        response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "answer from A"


def test_a_key_the_vendor_showed_partly_masked_is_not_passed_on(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    # OpenAI's 401 shows the key it was sent as "sk-" + stars + its last four characters;
    # those four are still the provider's key, and the gateway's clients do not hold it.
    primary.set_faults(Fault("auth"))
    fallback.set_faults(Fault("auth"))
    with gateway.client() as client:
        answer = client.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code >= 400
    assert "Incorrect API key provided: ***" in answer.text
    assert PRIMARY_KEY[-4:] not in answer.text and "sk-***" not in answer.text
