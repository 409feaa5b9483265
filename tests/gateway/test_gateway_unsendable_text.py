"""Requests that fail by their own content never open a provider's circuit for everyone."""

from __future__ import annotations

from gateway_helpers import RunningGateway

from rolecall.sim import SimServer

# JSON's escape for a lone surrogate: valid JSON, but no UTF-8 encoder can send it on.
LONE_SURROGATE = b'{"model": "coder", "messages": [{"role": "user", "content": "bad \\ud800"}]}'
CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


def test_lone_surrogates_are_400_and_the_primary_still_answers(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    with gateway.client() as client:
        for _ in range(6):
            refused = client.post(
                "/v1/chat/completions",
                content=LONE_SURROGATE,
                headers={"content-type": "application/json"},
            )
            assert refused.status_code == 400
            assert "lone surrogate" in refused.json()["error"]["message"]
        answered = client.post("/v1/chat/completions", json=CHAT)
    assert answered.status_code == 200
    assert answered.headers["x-rolecall-provider"] == "a"  # no open circuit on the primary
    assert primary.calls == 1 and fallback.calls == 0  # the bad requests reached no provider
