"""The Bedrock sim, driven by boto3's own ``bedrock-runtime`` client: Converse, ConverseStream,
SigV4 signatures checked, every fault, tools, images, reasoning and the prompt cache."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EventStreamError,
    ReadTimeoutError,
)
from sim_helpers import KEY, PROMPT, REPLY, bedrock_client

from rolecall.sim import Fault, SimServer
from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID
from rolecall.sim._sigv4 import check_signature

MODEL = "sim-model"
MESSAGES: list[Any] = [{"role": "user", "content": [{"text": PROMPT}]}]
WEATHER: dict[str, Any] = {
    "toolSpec": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
}
# The smallest PNG: one transparent pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _converse(client: Any, **extra: Any) -> Any:
    return client.converse(modelId=extra.pop("modelId", MODEL), messages=MESSAGES, **extra)


def _stream_events(client: Any, **extra: Any) -> list[dict[str, Any]]:
    reply = client.converse_stream(modelId=extra.pop("modelId", MODEL), messages=MESSAGES, **extra)
    return list(reply["stream"])


def _text_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
    )


# Answers ---------------------------------------------------------------------------------
def test_converse_answer_usage_and_stop_reason(bedrock_sim: SimServer) -> None:
    reply = _converse(bedrock_client(bedrock_sim), system=[{"text": "Be brief now"}])
    assert reply["output"]["message"] == {"role": "assistant", "content": [{"text": REPLY}]}
    assert reply["stopReason"] == "end_turn"
    # the system prompt counts as input: 3 + 6 words
    assert reply["usage"] == {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}
    assert reply["metrics"]["latencyMs"] >= 0
    sent = bedrock_sim.requests[-1]
    assert sent.path == f"/model/{MODEL}/converse"
    assert sent.api_key == SIM_ACCESS_KEY_ID  # the id the signature names; no secret travels
    assert KEY not in str(sent.headers)


def test_converse_stream_events_in_order(bedrock_sim: SimServer) -> None:
    events = _stream_events(bedrock_client(bedrock_sim))
    names = [next(iter(event)) for event in events]
    assert names == [
        "messageStart",
        *["contentBlockDelta"] * 4,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[0]["messageStart"] == {"role": "assistant"}
    assert _text_of(events) == REPLY
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": 6,
        "outputTokens": 4,
        "totalTokens": 10,
    }
    sent = bedrock_sim.requests[-1]
    assert sent.headers["content-type"] == "application/json"


def test_stream_is_binary_event_stream(bedrock_sim: SimServer) -> None:
    client = bedrock_client(bedrock_sim)
    reply = client.converse_stream(modelId=MODEL, messages=MESSAGES)
    headers = reply["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    list(reply["stream"])


def test_arn_model_id_travels_url_encoded_and_is_signed(bedrock_sim: SimServer) -> None:
    bedrock_sim.models = ()
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"
    reply = _converse(bedrock_client(bedrock_sim), modelId=arn)
    assert reply["output"]["message"]["content"] == [{"text": REPLY}]
    sent = bedrock_sim.requests[-1]
    assert sent.path == f"/model/{arn}/converse"  # decoded: ':' and '/' were sent as %3A, %2F


# Signatures ------------------------------------------------------------------------------
def test_wrong_secret_is_403_invalid_signature(bedrock_sim: SimServer) -> None:
    with pytest.raises(ClientError) as caught:
        _converse(bedrock_client(bedrock_sim, secret="not-the-secret"))
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in error["Error"]["Message"]
    assert bedrock_sim.calls == 1


def test_unknown_access_key_is_unrecognized_client(bedrock_sim: SimServer) -> None:
    client = bedrock_client(bedrock_sim, access_key_id="AKIAUNKNOWNKEY000000")
    with pytest.raises(ClientError) as caught:
        _converse(client)
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_unsigned_request_is_missing_authentication_token(bedrock_sim: SimServer) -> None:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=bedrock_sim.base_url,
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as caught:
        _converse(client)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


def test_a_stale_signature_is_refused_and_a_fresh_one_accepted() -> None:
    url = "http://127.0.0.1:1/model/m.x%3A0/converse"
    body = b'{"messages":[]}'
    request = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(SIM_ACCESS_KEY_ID, KEY), "bedrock", "eu-west-1").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = "127.0.0.1:1"
    signed_at = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    def check(now: float, target: str = url[len("http://127.0.0.1:1") :]) -> Any:
        return check_signature(
            secret=KEY,
            access_key_id=SIM_ACCESS_KEY_ID,
            service="bedrock",
            method="POST",
            target=target,
            headers=headers,
            body=body,
            now=now,
        )

    assert check(signed_at.timestamp() + 60) is None
    stale = check(signed_at.timestamp() + 600)
    assert stale is not None and stale.message.startswith("Signature expired")
    early = check(signed_at.timestamp() - 600)  # the signer's clock runs ahead
    assert early is not None and early.message.startswith("Signature not yet current")
    # the path is signed as sent: decoding it on the way breaks the signature
    tampered = check(signed_at.timestamp(), "/model/m.x:0/converse")
    assert tampered is not None and tampered.code == "InvalidSignatureException"
    assert hashlib.sha256(body).hexdigest() not in str(stale)


# Faults ----------------------------------------------------------------------------------
ERRORS: list[tuple[Fault, int, str, str]] = [
    (Fault("auth"), 403, "UnrecognizedClientException", "security token"),
    (Fault("auth", variant="signature"), 403, "InvalidSignatureException", "signature"),
    (Fault("auth", variant="expired"), 403, "ExpiredTokenException", "expired"),
    (Fault("auth", variant="clock_behind"), 403, "InvalidSignatureException", "Signature expired"),
    (Fault("auth", variant="clock_ahead"), 403, "InvalidSignatureException", "not yet current"),
    (Fault("permission"), 403, "AccessDeniedException", "access to the model"),
    (Fault("permission", variant="iam"), 403, "AccessDeniedException", "not authorized"),
    (Fault("region"), 400, "ValidationException", "on-demand throughput"),
    (Fault("not_found"), 400, "ValidationException", "model identifier is invalid"),
    (Fault("not_found", variant="end_of_life"), 404, "ResourceNotFoundException", "end of its"),
    (Fault("quota"), 429, "ThrottlingException", "per day"),
    (Fault("quota", variant="service_quota"), 400, "ServiceQuotaExceededException", "quota"),
    (Fault("rate_limit"), 429, "ThrottlingException", "Too many requests"),
    (Fault("overloaded"), 503, "ServiceUnavailableException", "unable to process"),
    (Fault("overloaded", variant="not_ready"), 429, "ModelNotReadyException", "not ready"),
    (Fault("server"), 500, "InternalServerException", "unexpected error"),
    (Fault("server", status=408), 408, "ModelTimeoutException", "timed out"),
    (Fault("server", status=424), 424, "ModelErrorException", "model encountered"),
    (Fault("context_length"), 400, "ValidationException", "too long"),
    (Fault("bad_request"), 400, "ValidationException", "alternate"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "stream"])
@pytest.mark.parametrize(
    ("fault", "status", "code", "text"),
    ERRORS,
    ids=[f"{f.kind}-{f.variant or f.status or ''}" for f, *_ in ERRORS],
)
def test_error_faults_raise_the_sdk_error(
    bedrock_sim: SimServer, fault: Fault, status: int, code: str, text: str, stream: bool
) -> None:
    bedrock_sim.script(fault)
    client = bedrock_client(bedrock_sim)
    with pytest.raises(ClientError) as caught:
        _stream_events(client) if stream else _converse(client)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["Error"]["Code"] == code
    assert text in error["Error"]["Message"]


def test_throttling_has_no_retry_hint_unless_scripted(bedrock_sim: SimServer) -> None:
    bedrock_sim.script(Fault("rate_limit"), Fault("rate_limit", retry_after=3))
    client = bedrock_client(bedrock_sim)
    with pytest.raises(ClientError) as plain:
        _converse(client)
    assert "retry-after" not in plain.value.response["ResponseMetadata"]["HTTPHeaders"]
    with pytest.raises(ClientError) as hinted:
        _converse(client)
    assert hinted.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "3"


def test_exception_event_after_200_surfaces_in_the_sdk_stream(bedrock_sim: SimServer) -> None:
    bedrock_sim.script(Fault("stream_error", after_chunks=2))
    reply = bedrock_client(bedrock_sim).converse_stream(modelId=MODEL, messages=MESSAGES)
    received: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as caught:
        for event in reply["stream"]:
            received.append(event)
    assert _text_of(received) == "Hello from"
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"


@pytest.mark.parametrize(
    ("fault", "stop", "text"),
    [
        (Fault("content_filter"), "content_filtered", []),
        (
            Fault("content_filter", variant="guardrail"),
            "guardrail_intervened",
            [{"text": "Sorry, the model cannot answer this question."}],
        ),
    ],
    ids=["content_filtered", "guardrail"],
)
def test_filtered_answers_say_so_in_stop_reason(
    bedrock_sim: SimServer, fault: Fault, stop: str, text: list[Any]
) -> None:
    bedrock_sim.script(fault, fault)
    client = bedrock_client(bedrock_sim)
    reply = _converse(client)
    assert reply["stopReason"] == stop
    assert reply["output"]["message"]["content"] == text
    events = _stream_events(client)
    assert _text_of(events) == ""
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == [stop]


def test_empty_malformed_reset_and_timeout(bedrock_sim: SimServer) -> None:
    bedrock_sim.script(Fault("empty"), Fault("malformed"), Fault("malformed"))
    client = bedrock_client(bedrock_sim, timeout=0.5)
    assert _converse(client)["output"]["message"]["content"] == [{"text": ""}]
    # botocore swallows JSON it cannot parse: the answer has no output, the event no delta
    assert "output" not in _converse(client)
    assert _stream_events(client) == [{"contentBlockDelta": {}}]
    bedrock_sim.script(Fault("reset"), Fault("timeout"))
    with pytest.raises(ConnectionClosedError):
        _converse(client)
    with pytest.raises(ReadTimeoutError):
        _converse(client)
    assert _converse(client)["output"]["message"]["content"] == [{"text": REPLY}]


# Tools, images, reasoning, cache ---------------------------------------------------------
def test_tool_use_then_answer(bedrock_sim: SimServer) -> None:
    client = bedrock_client(bedrock_sim)
    asked = _converse(client, toolConfig={"tools": [WEATHER]})
    assert asked["stopReason"] == "tool_use"
    [block] = asked["output"]["message"]["content"]
    use = block["toolUse"]
    assert use["name"] == "get_weather" and use["input"] == {"city": "sim"}
    assert use["toolUseId"].startswith("tooluse_")
    result = {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "sunny"}]}}
    turns = [*MESSAGES, asked["output"]["message"], {"role": "user", "content": [result]}]
    answered = client.converse(modelId=MODEL, messages=turns, toolConfig={"tools": [WEATHER]})
    assert answered["stopReason"] == "end_turn"
    assert answered["output"]["message"]["content"] == [{"text": REPLY}]


def test_streamed_tool_use_comes_in_fragments(bedrock_sim: SimServer) -> None:
    bedrock_sim.responder = lambda body: {
        "text": "Let me check.",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "tooluse_1"}],
    }
    events = _stream_events(bedrock_client(bedrock_sim), toolConfig={"tools": [WEATHER]})
    assert _text_of(events) == "Let me check."
    [start] = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert start == {
        "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}},
        "contentBlockIndex": 1,
    }
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    ]
    assert len(pieces) == 2 and "".join(pieces) == '{"city": "Paris"}'
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["tool_use"]


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([{"role": "assistant", "content": [{"text": "hi"}]}], "must start with a user message"),
        ([*MESSAGES, *MESSAGES], "must alternate between user and assistant"),
        ([{"role": "user", "content": [{"text": "  "}]}], "is blank"),
        (
            [
                *MESSAGES,
                {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}
                    ],
                },
                {"role": "user", "content": [{"text": "next"}]},
            ],
            "Expected toolResult blocks at messages.2.content for the following Ids: t1",
        ),
    ],
    ids=["assistant-first", "not-alternating", "blank-text", "unanswered-tool-use"],
)
def test_invalid_conversations_are_validation_errors(
    bedrock_sim: SimServer, turns: list[Any], message: str
) -> None:
    with pytest.raises(ClientError) as caught:
        bedrock_client(bedrock_sim).converse(
            modelId=MODEL, messages=turns, toolConfig={"tools": [WEATHER]}
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert message in caught.value.response["Error"]["Message"]


def test_image_bytes_are_accepted_and_a_bad_format_refused(bedrock_sim: SimServer) -> None:
    client = bedrock_client(bedrock_sim)
    image = {"image": {"format": "png", "source": {"bytes": PNG}}}
    turns = [{"role": "user", "content": [{"text": PROMPT}, image]}]
    reply = client.converse(modelId=MODEL, messages=turns)
    assert reply["output"]["message"]["content"] == [{"text": REPLY}]
    sent = bedrock_sim.requests[-1].json["messages"][0]["content"][1]["image"]
    assert base64.b64decode(sent["source"]["bytes"]) == PNG  # boto3 sends bytes as base64
    bad = {"image": {"format": "tiff", "source": {"bytes": PNG}}}
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=MODEL, messages=[{"role": "user", "content": [bad]}])
    assert "image.format" in caught.value.response["Error"]["Message"]


def test_reasoning_blocks_whole_and_streamed(bedrock_sim: SimServer) -> None:
    client = bedrock_client(bedrock_sim)
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    reply = _converse(client, additionalModelRequestFields=thinking)
    blocks = reply["output"]["message"]["content"]
    assert blocks[0]["reasoningContent"]["reasoningText"]["text"]
    assert blocks[1] == {"text": REPLY}
    events = _stream_events(client, additionalModelRequestFields=thinking)
    reasoning = [
        e["contentBlockDelta"]["delta"]["reasoningContent"]
        for e in events
        if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})
    ]
    signed = blocks[0]["reasoningContent"]["reasoningText"]
    assert signed["signature"]  # the sim signs the reasoning it gives, whole and streamed
    assert reasoning == [{"text": signed["text"]}, {"signature": signed["signature"]}]
    assert _text_of(events) == REPLY


THINKING: Any = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def _thinking_tool_loop(sim: SimServer, reasoning: str) -> tuple[Any, list[Any]]:
    """Turn one (reasoning and a tool use, as boto3 returns it) and its tool result."""
    sim.responder = lambda body: {
        "text": "",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        "reasoning": reasoning,
    }
    client = bedrock_client(sim)
    extra = {"toolConfig": {"tools": [WEATHER]}, "additionalModelRequestFields": THINKING}
    asked = _converse(client, **extra)
    sim.responder = None
    assistant = asked["output"]["message"]
    use = assistant["content"][-1]["toolUse"]
    result = {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "sunny"}]}}
    return client, [*MESSAGES, assistant, {"role": "user", "content": [result]}]


@pytest.mark.parametrize("reasoning", ["I need the weather.", "[redacted] I need the weather."])
def test_a_tool_loop_with_thinking_needs_its_signed_reasoning_back(
    bedrock_sim: SimServer, reasoning: str
) -> None:
    client, turns = _thinking_tool_loop(bedrock_sim, reasoning)
    first = turns[1]["content"][0]["reasoningContent"]
    assert ("redactedContent" in first) == reasoning.startswith("[redacted]")
    extra = {"toolConfig": {"tools": [WEATHER]}, "additionalModelRequestFields": THINKING}
    answered = client.converse(modelId=MODEL, messages=turns, **extra)
    assert answered["output"]["message"]["content"][-1] == {"text": REPLY}
    # The reasoning dropped, or rewritten: Claude's error, as Bedrock relays it.
    dropped = [turns[0], {**turns[1], "content": turns[1]["content"][1:]}, turns[2]]
    with pytest.raises(ClientError, match="Expected `thinking` or `redacted_thinking`"):
        client.converse(modelId=MODEL, messages=dropped, **extra)
    if "reasoningText" in first:
        forged = {"reasoningText": {**first["reasoningText"], "text": "Something else."}}
    else:
        forged = {"redactedContent": b"REDACTED:forged"}
    rewritten = {**turns[1], "content": [{"reasoningContent": forged}, turns[1]["content"][1]]}
    with pytest.raises(ClientError, match="Invalid `signature`"):
        client.converse(modelId=MODEL, messages=[turns[0], rewritten, turns[2]], **extra)
    # Without thinking, a turn without reasoning is fine.
    plain = client.converse(modelId=MODEL, messages=dropped, toolConfig={"tools": [WEATHER]})
    assert plain["stopReason"] == "end_turn"


def test_cache_point_writes_then_reads(bedrock_sim: SimServer) -> None:
    system = [{"text": "Cache me " * 10 + "now"}, {"cachePoint": {"type": "default"}}]
    client = bedrock_client(bedrock_sim)
    first = _converse(client, system=system)["usage"]
    second = _converse(client, system=system)["usage"]
    assert (first["cacheWriteInputTokens"], first["cacheReadInputTokens"]) == (21, 0)
    assert (second["cacheWriteInputTokens"], second["cacheReadInputTokens"]) == (0, 21)
    assert second["inputTokens"] == 6  # the uncached rest, apart from cache reads and writes
    assert second["totalTokens"] == 6 + 21 + 4


def test_inference_config_is_range_checked(bedrock_sim: SimServer) -> None:
    client = bedrock_client(bedrock_sim)
    reply = _converse(
        client,
        inferenceConfig={"maxTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["x"]},
    )
    assert reply["stopReason"] == "end_turn"
    with pytest.raises(ClientError) as caught:
        _converse(client, inferenceConfig={"temperature": 1.5})
    assert "inferenceConfig.temperature" in caught.value.response["Error"]["Message"]


# Control plane: the credential check -------------------------------------------------------
def test_control_plane_model_lookups(bedrock_sim: SimServer) -> None:
    bedrock_sim.models = (MODEL, "us.anthropic.claude-v1:0")
    control = bedrock_client(bedrock_sim, service="bedrock")
    details = control.get_foundation_model(modelIdentifier=MODEL)["modelDetails"]
    assert details["modelId"] == MODEL and details["responseStreamingSupported"] is True
    profile = control.get_inference_profile(inferenceProfileIdentifier="us.anthropic.claude-v1:0")
    assert profile["inferenceProfileId"] == "us.anthropic.claude-v1:0"
    listed = control.list_foundation_models()["modelSummaries"]
    assert [m["modelId"] for m in listed] == [MODEL]
    with pytest.raises(ClientError) as caught:
        control.get_foundation_model(modelIdentifier="sim-modle")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert bedrock_sim.model_calls == 4 and bedrock_sim.calls == 0
    wrong = bedrock_client(bedrock_sim, secret="wrong", service="bedrock")
    with pytest.raises(ClientError) as refused:
        wrong.get_foundation_model(modelIdentifier=MODEL)
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
