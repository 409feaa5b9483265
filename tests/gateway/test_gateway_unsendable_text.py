"""Requests that fail by their own content never open a provider's circuit for everyone."""

from __future__ import annotations

import pytest
from gateway_helpers import RunningGateway

from rolecall.sim import SimServer

# JSON's escape for a lone surrogate: valid JSON, but no UTF-8 encoder can send it on.
LONE_SURROGATE = b'{"model": "coder", "messages": [{"role": "user", "content": "bad \\ud800"}]}'
CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}


# The same surrogate where the gateway passes it on rather than reading it: a tool's
# description (both providers' encoders refuse it).
SURROGATE_IN_TOOL = (
    b'{"model": "coder", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": '
    b'"function", "function": {"name": "f", "description": "bad \\ud800", "parameters": '
    b'{"type": "object", "properties": {}}}}]}'
)


@pytest.mark.parametrize(
    "body",
    [LONE_SURROGATE, SURROGATE_IN_TOOL],
    ids=["in the messages (refused before any call)", "in a tool (refused by the encoders)"],
)
def test_lone_surrogates_are_400_and_open_no_circuit(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer, body: bytes
) -> None:
    with gateway.client() as client:
        for _ in range(6):  # more than the breaker's threshold of failures in a row
            refused = client.post(
                "/v1/chat/completions",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert refused.status_code == 400
            assert "lone surrogate" in refused.json()["error"]["message"]
        answered = client.post("/v1/chat/completions", json=CHAT)
    assert answered.status_code == 200
    assert answered.headers["x-rolecall-provider"] == "a"  # no open circuit on the primary
    assert primary.calls == 1 and fallback.calls == 0  # nothing unsendable was sent


def test_a_lone_surrogate_echoed_in_an_error_is_still_a_json_error(
    gateway: RunningGateway,
) -> None:
    unknown_model = b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'
    unknown_field = (
        b'{"model": "coder", "\\ud800": 1, "messages": [{"role": "user", "content": "hi"}]}'
    )
    with gateway.client() as client:
        for path in ("/v1/chat/completions", "/v1/responses", "/v1/messages"):
            for body, status in ((unknown_model, 404), (unknown_field, 400)):
                if path == "/v1/responses":
                    body = body.replace(
                        b'"messages": [{"role": "user", "content": "hi"}]', b'"input": "hi"'
                    )
                if path == "/v1/messages":
                    body = body.replace(b'"messages"', b'"max_tokens": 5, "messages"')
                got = client.post(path, content=body, headers={"content-type": "application/json"})
                assert got.status_code == status, (path, got.text)
                assert "\ud800" in got.json()["error"]["message"]  # sent as its JSON escape
