"""A client's bad request is the client's error: a 400 in the vendor's shape, never a 500,
a 5xx to retry, a header it can split, or a metrics series of its own."""

from __future__ import annotations

import gzip
import json

import pytest
from gateway_helpers import RunningGateway

from rolecall.sim import SimServer

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "coder", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("fault", "code"),
    [("bad_request", "bad_request"), ("context_length", "context_length_exceeded")],
)
def test_a_request_every_provider_refuses_is_a_400_not_a_5xx(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer, fault: str, code: str
) -> None:
    primary.set_faults(fault)
    fallback.set_faults(fault)
    with gateway.client() as client:
        chat = client.post("/v1/chat/completions", json=CHAT)
        responses = client.post("/v1/responses", json={"model": "coder", "input": "hi"})
        messages = client.post("/v1/messages", json=MESSAGES)
    assert chat.status_code == responses.status_code == 400, (chat.text, responses.text)
    assert chat.json()["error"]["code"] == code
    assert chat.json()["error"]["type"] == "invalid_request_error"
    assert messages.status_code == 400, messages.text
    assert messages.json()["error"]["type"] == "invalid_request_error"


def test_client_text_in_a_response_header_is_escaped_not_a_500(gateway: RunningGateway) -> None:
    tools = [{"type": "工具"}, {"type": "a\r\nx-injected: 1"}]
    body = {"model": "coder", "input": "hi", "tools": tools}
    with gateway.client() as client:
        whole = client.post("/v1/responses", json=body)
        with client.stream("POST", "/v1/responses", json={**body, "stream": True}) as streamed:
            streamed.read()
    for response in (whole, streamed):
        assert response.status_code == 200
        assert "x-injected" not in response.headers
        omitted = response.headers["x-rolecall-omitted-tools"]
        assert omitted == "a%0D%0Ax-injected: 1, %E5%B7%A5%E5%85%B7"


def test_a_routing_failure_names_the_role_not_the_model_in_its_headers(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    primary.set_faults("bad_request")  # every provider refuses the request
    fallback.set_faults("bad_request")
    body = {**CHAT, "model": "模型\r\nx-injected: 1"}
    with gateway.client() as client:
        refused = client.post(
            "/v1/chat/completions", json=body, headers={"x-rolecall-role": "coder"}
        )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "bad_request"
    assert refused.headers["x-rolecall-role"] == "coder"
    assert "x-injected" not in refused.headers


def test_model_names_sent_with_a_role_header_make_no_metrics_series(
    gateway: RunningGateway,
) -> None:
    with gateway.client() as client:
        for n in range(5):
            answered = client.post(
                "/v1/chat/completions",
                json={**CHAT, "model": f"junk-{n}"},
                headers={"x-rolecall-role": "coder"},
            )
            assert answered.status_code == 200
        text = client.get("/metrics").text
    assert "junk-" not in text
    assert 'rolecall_gateway_requests_total{model="coder",status="200"} 5' in text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat/completions", {**CHAT, "messages": [{"role": {}, "content": "hi"}]}, "role"),
        ("/v1/chat/completions", {**CHAT, "messages": [{"role": [], "content": "hi"}]}, "role"),
        ("/v1/responses", {"model": "coder", "input": "hi", "include": [{}]}, "include"),
        ("/v1/messages", {**MESSAGES, "output_config": {"effort": {}}}, "effort"),
    ],
)
def test_objects_where_names_belong_are_400(
    gateway: RunningGateway, path: str, body: dict[str, object], field: str
) -> None:
    with gateway.client() as client:
        refused = client.post(path, json=body)
    assert refused.status_code == 400, refused.text
    assert field in refused.json()["error"]["message"]


def test_every_circuit_open_is_a_503_with_retry_after(
    gateway: RunningGateway, primary: SimServer, fallback: SimServer
) -> None:
    # Not a request fault, the contrast to the above: the providers failing is worth a 5xx,
    # and when their circuits say when they are tried again, the client is told to wait.
    primary.set_faults("server")
    fallback.set_faults("server")
    with gateway.client() as client:
        for _ in range(5):  # the breaker's threshold: both circuits open
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 502
        skipped = client.post("/v1/chat/completions", json=CHAT)
    assert skipped.status_code == 503, skipped.text
    assert 1 <= int(skipped.headers["retry-after"]) <= 30
    assert "failures in a row" in skipped.json()["error"]["message"]


def test_a_path_with_a_trailing_slash_is_a_404_not_a_redirect(gateway: RunningGateway) -> None:
    with gateway.client(key=None) as client:
        got = client.post("/v1/chat/completions/", json=CHAT, headers={"host": "evil.example"})
    assert got.status_code == 404
    assert "location" not in got.headers
    assert got.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
def test_a_compressed_body_is_refused_by_its_encoding(
    gateway: RunningGateway, primary: SimServer, path: str
) -> None:
    # The gateway reads bodies as sent (no decompression, so no bomb to inflate); a client
    # that compresses is told that, not that some byte is no UTF-8.
    body = gzip.compress(json.dumps({**MESSAGES, "input": "hi"}).encode())
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    with gateway.client() as client:
        answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert "Content-Encoding" in answer.text and "gzip" in answer.text
    assert primary.calls == 0
