"""A request a provider cannot take skips it before any call; when no provider in the chain
takes it, every door answers 400 naming what it cannot take."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_helpers import FALLBACK_KEY, GATEWAY_KEY, PRIMARY_KEY, RunningGateway

from rolecall.sim import SimServer


def _config(tmp: Path, primary: SimServer, fallback: SimServer, extra: str = "") -> Path:
    (tmp / ".env").write_text(
        f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\nGATEWAY_KEY={GATEWAY_KEY}\n"
    )
    path = tmp / "rolecall.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            providers:
              a: {{type: openai, model: model-a, base_url: "{primary.base_url}",
                  api_key: "${{PRIMARY_KEY}}"}}
              b: {{type: anthropic, model: model-b, base_url: "{fallback.base_url}",
                  api_key: "${{FALLBACK_KEY}}"}}
            roles:
              coder: {{provider: a, fallback: [b]}}
              claude: {{provider: b}}
              gpt: {{provider: a}}
            retry: {{max_attempts: 1, initial_backoff: 10ms}}
            metrics: {{url: "sqlite:///{tmp}/rolecall.db", runs_dir: "{tmp}/runs"}}
            gateway: {{keys: ["${{GATEWAY_KEY}}"]}}
            """
        )
        + extra
    )
    return path


HI = [{"role": "user", "content": "hi"}]


def test_a_provider_skipped_before_any_call_is_a_400_when_the_gateway_started_offline(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> None:
    # Offline, no provider is built before its first call: the skip of one never called
    # must still be recorded, not end in a 500.
    path = _config(tmp_path, primary, fallback)
    path.write_text(
        path.read_text().replace(
            'api_key: "${FALLBACK_KEY}"}',
            'api_key: "${FALLBACK_KEY}", capabilities: {tools: false}}',
        )
    )
    gateway = start_gateway(path, offline=True)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with gateway.client() as client:
        refused = client.post(
            "/v1/chat/completions", json={"model": "claude", "messages": HI, "tools": [tool]}
        )
        answered = client.post(
            "/v1/chat/completions", json={"model": "coder", "messages": HI, "tools": [tool]}
        )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "unsupported"
    assert "needs tools" in refused.json()["error"]["message"]
    assert answered.status_code == 200, answered.text
    assert fallback.calls == 0


@pytest.mark.parametrize(
    ("door", "body", "field"),
    [
        (
            "/v1/chat/completions",
            {"model": "claude", "messages": HI, "logit_bias": {"50256": -100}},
            "logit_bias",
        ),
        (
            "/v1/chat/completions",
            {"model": "claude", "messages": HI, "service_tier": "flex", "stream": True},
            "service_tier",
        ),
        ("/v1/messages", {"model": "gpt", "max_tokens": 50, "messages": HI, "top_k": 5}, "top_k"),
        (
            "/v1/responses",
            {"model": "claude", "input": "hi", "text": {"verbosity": "low"}},
            "verbosity",
        ),
    ],
)
def test_a_field_no_provider_in_the_chain_takes_is_a_400_naming_it(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
    door: str,
    body: dict[str, object],
    field: str,
) -> None:
    gateway = start_gateway(_config(tmp_path, primary, fallback), offline=True)
    with gateway.client() as client:
        response = client.post(door, json=body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert f"'{field}'" in message and "drop_params" in message
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert primary.calls == fallback.calls == 0  # nothing was sent without the field


def test_the_provider_that_takes_the_field_answers(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> None:
    primary.set_faults("server")  # a fails: b cannot take logit_bias, so nothing answers
    gateway = start_gateway(_config(tmp_path, primary, fallback), offline=True)
    body = {"model": "coder", "messages": HI, "logit_bias": {"1": 2}}
    with gateway.client() as client:
        failed = client.post("/v1/chat/completions", json=body)
        primary.clear()
        answered = client.post("/v1/chat/completions", json=body)
    assert failed.status_code == 502, failed.text
    assert "'logit_bias'" in failed.json()["error"]["message"]
    assert fallback.calls == 0
    assert answered.status_code == 200
    assert answered.json()["choices"][0]["message"]["content"] == "answer from A"
    assert primary.requests[-1].json["logit_bias"] == {"1": 2}


def test_drop_params_lets_the_call_through_without_the_field(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> None:
    path = _config(tmp_path, primary, fallback, "drop_params: [logit_bias]\n")
    gateway = start_gateway(path, offline=True)
    body = {"model": "claude", "messages": HI, "logit_bias": {"1": 2}}
    with gateway.client() as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "answer from B"
    assert "logit_bias" not in fallback.requests[-1].json
