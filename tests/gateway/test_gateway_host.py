"""A keyless gateway answers only requests that name it by a loopback name.

Without ``gateway.keys`` the gateway listens on loopback only, but a web page can still
reach it: it points a name of its own at 127.0.0.1 (DNS rebinding) and the browser sends
that name as the ``Host``. Any page could then spend the provider keys behind the
gateway. Tested against ``rolecall serve`` itself, whose HTTP protocol serves the front
doors without Starlette.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import FALLBACK_KEY, GATEWAY_KEY, PRIMARY_KEY, config_text

from rolecall.sim import SimServer
from serve_helpers import serving

ENV = f"PRIMARY_KEY={PRIMARY_KEY}\nFALLBACK_KEY={FALLBACK_KEY}\n"
CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {**CHAT, "max_tokens": 10}
RESPONSES = {"model": "coder", "input": "hi"}

REQUESTS = [
    pytest.param("POST", "/v1/chat/completions", CHAT, id="chat"),
    pytest.param("POST", "/v1/messages", MESSAGES, id="messages"),
    pytest.param("POST", "/v1/messages/count_tokens", MESSAGES, id="count-tokens"),
    pytest.param("POST", "/v1/responses", RESPONSES, id="responses"),
    pytest.param("GET", "/v1/models", None, id="models"),
    pytest.param("GET", "/metrics", None, id="metrics"),
    pytest.param("GET", "/api/runs", None, id="dashboard-api"),
]


@pytest.fixture
def keyless(tmp_path: Path, primary: SimServer, fallback: SimServer) -> Iterator[str]:
    (tmp_path / ".env").write_text(ENV)
    config = tmp_path / "rolecall.yaml"
    config.write_text(config_text(primary, fallback, keys="[]", tmp=tmp_path))
    with serving(config, "--offline") as (url, _):
        yield url


def _send(url: str, method: str, path: str, body: object, host: str | None) -> httpx.Response:
    headers = {} if host is None else {"host": host}
    return httpx.request(method, url + path, json=body, headers=headers, timeout=20)


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_a_keyless_gateway_refuses_a_page_under_another_name(
    keyless: str, primary: SimServer, method: str, path: str, body: object
) -> None:
    port = keyless.rsplit(":", 1)[1]
    answer = _send(keyless, method, path, body, f"attacker.example:{port}")
    assert answer.status_code == 403
    assert "is not a loopback name" in answer.text and "gateway.keys" in answer.text
    assert primary.calls == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.", "[::1]:{port}", "app.localhost"]
)
def test_a_keyless_gateway_answers_loopback_names(keyless: str, host: str) -> None:
    port = keyless.rsplit(":", 1)[1]
    answer = _send(keyless, "POST", "/v1/chat/completions", CHAT, host.format(port=port))
    assert answer.status_code == 200, answer.text


def test_a_gateway_with_keys_takes_any_name_with_a_key(
    tmp_path: Path, primary: SimServer, fallback: SimServer
) -> None:
    (tmp_path / ".env").write_text(f"{ENV}GATEWAY_KEY={GATEWAY_KEY}\n")
    config = tmp_path / "rolecall.yaml"
    config.write_text(config_text(primary, fallback, tmp=tmp_path))
    with serving(config, "--offline") as (url, _):
        answer = httpx.post(
            url + "/v1/chat/completions",
            json=CHAT,
            headers={"host": "gateway.internal", "authorization": f"Bearer {GATEWAY_KEY}"},
            timeout=20,
        )
    assert answer.status_code == 200, answer.text


def test_the_openai_sdk_on_localhost_is_answered(keyless: str) -> None:
    # An SDK sends the Host of its base_url.
    openai = pytest.importorskip("openai")
    base_url = keyless.replace("127.0.0.1", "localhost") + "/v1"
    with openai.OpenAI(base_url=base_url, api_key="unused") as client:
        reply = client.chat.completions.create(
            model="coder", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content == "answer from A"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/runs"])
def test_the_refusal_names_the_address_to_call(keyless: str, path: str) -> None:
    # An error body shows no URL (it could be an upstream's), so the fix names no scheme.
    answer = _send(keyless, "POST" if path.startswith("/v1") else "GET", path, CHAT, "evil.example")
    assert answer.status_code == 403
    message = answer.json()["error"]["message"]
    assert "<provider URL>" not in message and "127.0.0.1:PORT" in message, message
