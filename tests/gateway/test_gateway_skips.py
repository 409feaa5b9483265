"""A request a provider cannot take skips it before any call; when no provider in the chain
takes it, every door answers 400 naming what it cannot take."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

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
