"""A keyless gateway answers no request a web page of another site sends from the browser.

A page on any site can make the browser POST to http://127.0.0.1:4141 without asking
first: a form, or ``fetch`` with a ``text/plain`` body, which the gateway reads as JSON
all the same. The Host is then a loopback name, so the Host check does not stop it, and
the page spends the provider credits behind the gateway (it cannot read the answer, but
it need not). The browser names the page in ``Origin``; without keys, a foreign one is
refused before any work. With keys the page has none to send (a custom header is asked
for first, and the gateway grants no cross-origin request), so the key alone decides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gateway_helpers import GATEWAY_KEY, RunningGateway, config_text

from rolecall.sim import SimServer

CHAT = '{"model":"coder","messages":[{"role":"user","content":"hi"}]}'
MESSAGES = '{"model":"coder","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}'
RESPONSES = '{"model":"coder","input":"hi"}'

DOORS = [
    pytest.param("/v1/chat/completions", CHAT, id="chat"),
    pytest.param("/v1/messages", MESSAGES, id="messages"),
    pytest.param("/v1/responses", RESPONSES, id="responses"),
    pytest.param("/v1/messages/count_tokens", MESSAGES, id="count-tokens"),
]


@pytest.fixture
def keyless(
    tmp_path: Path,
    config_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
) -> RunningGateway:
    config_path.write_text(config_text(primary, fallback, keys="[]", tmp=tmp_path))
    return start_gateway(config_path, offline=True)


def _page_post(url: str, body: str, origin: str) -> httpx.Response:
    # What a form or a no-preflight fetch sends: a simple content type, the page's Origin.
    headers = {"content-type": "text/plain;charset=UTF-8", "origin": origin}
    return httpx.post(url, content=body, headers=headers, timeout=20)


@pytest.mark.parametrize(("path", "body"), DOORS)
@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example:8443", "null"])
def test_a_keyless_gateway_refuses_a_page_of_another_site(
    keyless: RunningGateway, primary: SimServer, path: str, body: str, origin: str
) -> None:
    answer = _page_post(keyless.server.url + path, body, origin)
    assert answer.status_code == 403, answer.text
    assert "gateway.keys" in answer.text and "<provider URL>" not in answer.text
    assert primary.calls == 0


def test_a_keyless_gateway_refuses_a_page_reading_the_dashboard_data(
    keyless: RunningGateway,
) -> None:
    answer = httpx.get(
        keyless.server.url + "/api/runs", headers={"origin": "http://evil.example"}, timeout=20
    )
    assert answer.status_code == 403, answer.text


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:{port}", "http://localhost:3000", "http://[::1]:8080"]
)
def test_a_keyless_gateway_answers_a_page_on_this_machine(
    keyless: RunningGateway, origin: str
) -> None:
    port = keyless.server.url.rsplit(":", 1)[1]
    url = keyless.server.url + "/v1/chat/completions"
    answer = _page_post(url, CHAT, origin.format(port=port))
    assert answer.status_code == 200, answer.text


def test_a_gateway_with_keys_lets_the_key_decide(
    config_path: Path, start_gateway: Callable[..., RunningGateway]
) -> None:
    running = start_gateway(config_path, offline=True)
    headers = {"origin": "https://app.example", "authorization": f"Bearer {GATEWAY_KEY}"}
    answer = httpx.post(
        running.server.url + "/v1/chat/completions", content=CHAT, headers=headers, timeout=20
    )
    assert answer.status_code == 200, answer.text
