"""Bedrock's pure wire pieces: the Converse body, the error classifier, event-stream frames
read into chunks, and SigV4 signatures checked by the sim's independent verifier."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rolecall._secrets import redact
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._bedrock_auth import BearerAuth, SigV4Signer, bearer_token
from rolecall.providers._bedrock_body import converse_body
from rolecall.providers._bedrock_errors import classify_bedrock_error, stream_exception_error
from rolecall.providers._bedrock_stream import FrameError, StreamState, iter_frames, usage_of
from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID
from rolecall.sim._eventstream import event_frame, exception_frame
from rolecall.sim._sigv4 import check_signature
from rolecall.types import ChatRequest, ImagePart, Message, TextPart, ToolCall

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
PNG_URL = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def body(*messages: Message, model: str = CLAUDE, **params: Any) -> dict[str, Any]:
    return converse_body(model, ChatRequest(tuple(messages), params), provider="bed")


# The Converse body -----------------------------------------------------------------------
def test_system_apart_and_sampling_in_inference_config() -> None:
    sent = body(
        Message("system", "Be brief."),
        Message("user", "Plan the work."),
        temperature=1,
        top_p=0.9,
        max_tokens=200,
        stop="END",
    )
    assert sent == {
        "messages": [{"role": "user", "content": [{"text": "Plan the work."}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {
            "maxTokens": 200,
            "temperature": 1,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }


def test_a_temperature_above_converses_range_is_unsupported_not_lowered() -> None:
    with pytest.raises(ProviderError) as caught:
        body(Message("user", "Plan the work."), temperature=1.7)  # Converse takes 0..1
    assert caught.value.kind is ErrorKind.UNSUPPORTED
    assert "temperature 1.7 is above 1" in caught.value.message


def test_tool_round_trip_alternates_and_answers_in_one_user_turn() -> None:
    calls = (
        ToolCall("tooluse_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("tooluse_b", "get_weather", '{"city": "Rome"}'),
    )
    sent = body(
        Message("user", "Weather?"),
        Message("assistant", "Checking.", tool_calls=calls),
        Message("tool", "sunny", tool_call_id="tooluse_a"),
        Message("tool", "rainy", tool_call_id="tooluse_b"),
        Message("user", "And so?"),
        tools=[WEATHER],
        tool_choice="required",
    )
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_b", "name": "get_weather", "input": {"city": "Rome"}}},
    ]
    assert sent["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_a", "content": [{"text": "sunny"}]}},
        {"toolResult": {"toolUseId": "tooluse_b", "content": [{"text": "rainy"}]}},
        {"text": "And so?"},
    ]
    assert sent["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "inputSchema": {"json": WEATHER["function"]["parameters"]},  # type: ignore[index]
                }
            }
        ],
        "toolChoice": {"any": {}},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ({"type": "function", "function": {"name": "f"}}, {"tool": {"name": "f"}}),
    ],
)
def test_tool_choices(choice: Any, expected: dict[str, Any]) -> None:
    assert (
        body(Message("user", "x"), tools=[WEATHER], tool_choice=choice)["toolConfig"]["toolChoice"]
        == expected
    )


def test_tool_choice_none_leaves_tools_out_unless_the_history_has_tool_blocks() -> None:
    assert "toolConfig" not in body(Message("user", "x"), tools=[WEATHER], tool_choice="none")
    history = (
        Message("user", "x"),
        Message("assistant", tool_calls=(ToolCall("t1", "get_weather", "{}"),)),
        Message("tool", "ok", tool_call_id="t1"),
    )
    kept = body(*history, tools=[WEATHER], tool_choice="none")["toolConfig"]
    assert "toolChoice" not in kept and kept["tools"]


def test_images_as_base64_bytes_and_cache_marks_as_cache_points() -> None:
    parts = (
        TextPart("Look", cache_control={"type": "ephemeral"}),
        ImagePart(PNG_URL),
    )
    sent = body(Message("user", "Look", parts=parts))
    assert sent["messages"][0]["content"] == [
        {"text": "Look"},
        {"cachePoint": {"type": "default"}},
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
    ]


@pytest.mark.parametrize(
    ("message", "params", "kind", "words"),
    [
        (
            Message("user", "x", parts=(ImagePart("https://e.x/a.png"),)),
            {},
            "unsupported",
            "data: URL",
        ),
        (
            Message("user", "x", parts=(ImagePart("data:image/tiff;base64,AA=="),)),
            {},
            "unsupported",
            "png",
        ),
        (Message("user", "x"), {"seed": 3}, "unsupported", "'seed'"),
        (Message("user", "x"), {"n": 2}, "unsupported", "'n'"),
        (
            Message("user", "x"),
            {"parallel_tool_calls": False},
            "unsupported",
            "parallel_tool_calls",
        ),
    ],
    ids=["https-image", "tiff", "seed", "n", "parallel-false"],
)
def test_what_converse_cannot_take_is_refused_by_name(
    message: Message, params: dict[str, Any], kind: str, words: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        body(message, **params)
    assert caught.value.kind.value == kind
    assert words in caught.value.message
    assert caught.value.retryable is False


def test_reasoning_effort_is_claude_thinking_and_unsupported_elsewhere() -> None:
    sent = body(Message("user", "x"), reasoning_effort="low", top_k=5)
    assert sent["additionalModelRequestFields"] == {
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    assert sent["inferenceConfig"]["maxTokens"] == 1024 + 4096
    # A budget that does not fit under the caller's max_tokens is cut; no room: no thinking.
    sent = body(Message("user", "x"), reasoning_effort="high", max_tokens=6000)
    assert sent["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 3000
    sent = body(Message("user", "x"), reasoning_effort="high", max_tokens=100)
    assert "additionalModelRequestFields" not in sent
    assert sent["inferenceConfig"]["maxTokens"] == 100
    # OpenAI's efforts above high (Codex CLI's xhigh) are high's budget.
    sent = body(Message("user", "x"), reasoning_effort="xhigh")
    assert sent["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 16384
    with pytest.raises(ProviderError) as caught:
        body(Message("user", "x"), model="amazon.nova-pro-v1:0", reasoning_effort="low")
    assert caught.value.kind is ErrorKind.UNSUPPORTED
    assert "additionalModelRequestFields" in caught.value.message


def test_json_schema_answer_uses_output_config_and_extra_body_merges() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    request = ChatRequest(
        (Message("user", "x"),),
        {"top_k": 3, "extra_body": {"additionalModelRequestFields": {"x": 1}, "serviceTier": {}}},
        response_schema=schema,
    )
    sent = converse_body(CLAUDE, request)
    fmt = sent["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema"
    assert json.loads(fmt["structure"]["jsonSchema"]["schema"]) == schema
    assert sent["additionalModelRequestFields"] == {"top_k": 3, "x": 1}
    assert sent["serviceTier"] == {}


# Errors ----------------------------------------------------------------------------------
def _err(code: str | None, status: int, message: str, key: str = "message") -> ProviderError:
    headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return classify_bedrock_error(status, json.dumps({key: message}), headers if code else {})


ROWS: list[tuple[str | None, int, str, str]] = [
    ("UnrecognizedClientException", 403, "The security token included in the request", "auth"),
    ("InvalidSignatureException", 403, "The request signature we calculated does not", "auth"),
    ("ExpiredTokenException", 403, "The security token included in the request is", "auth"),
    (None, 403, "Authentication failed: Please make sure your API Key is valid.", "auth"),
    ("AccessDeniedException", 403, "You don't have access to the model with the", "permission"),
    (
        "ValidationException",
        400,
        "Invocation of model ID x with on-demand throughput",
        "permission",
    ),
    ("ValidationException", 400, "The provided model identifier is invalid.", "not_found"),
    (
        "ResourceNotFoundException",
        404,
        "This model version has reached the end of its life.",
        "not_found",
    ),
    ("ThrottlingException", 429, "Too many tokens per day, please wait before trying", "quota"),
    ("ServiceQuotaExceededException", 400, "Your request exceeds the service quota", "quota"),
    (
        "ThrottlingException",
        429,
        "Too many requests, please wait before trying again.",
        "rate_limit",
    ),
    ("ModelNotReadyException", 429, "Model is not ready", "overloaded"),
    (
        "ServiceUnavailableException",
        503,
        "Bedrock is unable to process your request.",
        "overloaded",
    ),
    ("ModelTimeoutException", 408, "Model has timed out", "timeout"),
    ("InternalServerException", 500, "unexpected error", "server"),
    ("ModelErrorException", 424, "The model encountered an error", "server"),
    ("ValidationException", 400, "Input is too long for requested model.", "context_length"),
    ("ValidationException", 400, "A conversation must alternate between user and", "bad_request"),
]


@pytest.mark.parametrize(("code", "status", "message", "kind"), ROWS)
def test_error_codes_and_messages_give_the_kind(
    code: str | None, status: int, message: str, kind: str
) -> None:
    error = _err(code, status, message, key="Message" if code is None else "message")
    assert error.kind.value == kind
    assert message[:20] in error.message
    assert error.retry_after is None


def test_a_retry_after_from_a_gateway_is_honoured() -> None:
    headers = {"x-amzn-ErrorType": "ThrottlingException", "retry-after": "4"}
    error = classify_bedrock_error(429, b'{"message": "slow down"}', headers)
    assert (error.kind, error.retry_after) == (ErrorKind.RATE_LIMIT, 4.0)


def test_stream_exceptions_use_the_same_table() -> None:
    error = stream_exception_error("throttlingException", b'{"message": "Too many requests"}', "b")
    assert (error.kind, error.status, error.provider) == (ErrorKind.RATE_LIMIT, None, "b")
    assert stream_exception_error("modelStreamErrorException", b"{}", "b").kind is ErrorKind.SERVER


# Event-stream frames ---------------------------------------------------------------------
async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


USAGE = {"inputTokens": 3, "outputTokens": 5, "totalTokens": 20, "cacheReadInputTokens": 12}
STREAM = b"".join(
    [
        event_frame("messageStart", {"role": "assistant"}),
        _delta(0, {"reasoningContent": {"text": "hm"}}),
        _delta(1, {"text": "Héllo"}),
        event_frame("contentBlockStop", {"contentBlockIndex": 1}),
        event_frame(
            "contentBlockStart",
            {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}},
        ),
        _delta(2, {"toolUse": {"input": '{"a":'}}),
        _delta(2, {"toolUse": {"input": "1}"}}),
        event_frame("messageStop", {"stopReason": "tool_use"}),
        event_frame("metadata", {"usage": USAGE}),
        exception_frame("throttlingException", "Too many requests"),
    ]
)


@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_frames_decode_whatever_the_chunk_boundaries(size: int) -> None:
    frames = [f async for f in iter_frames(_chunks(STREAM, size))]
    assert [f.name for f in frames][:3] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
    ]
    assert frames[-1].message_type == "exception" and frames[-1].name == "throttlingException"
    state = StreamState(structured=False)
    chunks = [state.take(f.name, json.loads(f.payload)) for f in frames[:-1]]
    got = [c for c in chunks if c is not None]
    assert "".join(c.reasoning for c in got) == "hm"
    assert "".join(c.text for c in got) == "Héllo"
    calls = [d for c in got for d in c.tool_calls]
    assert (calls[0].id, calls[0].name) == ("t1", "f")
    assert {d.index for d in calls} == {0} and "".join(d.arguments for d in calls) == '{"a":1}'
    assert state.done and state.stop_reason == "tool_use" and state.calls == 1
    assert state.usage() == usage_of(
        {"inputTokens": 3, "outputTokens": 5, "cacheReadInputTokens": 12}
    )
    assert state.usage().input_tokens == 15 and state.usage().cached_input_tokens == 12


async def test_a_corrupted_frame_is_a_frame_error() -> None:
    frame = bytearray(event_frame("messageStart", {"role": "assistant"}))
    frame[-6] ^= 0xFF  # a payload byte: the message checksum no longer matches
    with pytest.raises(FrameError):
        [f async for f in iter_frames(_chunks(bytes(frame), 64))]


# Signing ---------------------------------------------------------------------------------
URL = "http://127.0.0.1:8/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse"
SECRET = "sim-secret-for-signing-0123"


def _verify(headers: dict[str, str], body: bytes, secret: str = SECRET) -> Any:
    sent = {name.lower(): value for name, value in headers.items()}
    sent["host"] = "127.0.0.1:8"
    return check_signature(
        secret=secret,
        access_key_id=SIM_ACCESS_KEY_ID,
        service="bedrock",
        method="POST",
        target=URL[len("http://127.0.0.1:8") :],
        headers=sent,
        body=body,
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An AWS environment with nothing but what a test sets: no files, no instance metadata."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ACCESS_KEY_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


async def test_sigv4_signature_checks_out_with_the_secret_only(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    aws_env.setenv("AWS_SESSION_TOKEN", "session-token-abcdef")
    signer = SigV4Signer("us-east-1", None, "bed")
    payload = b'{"messages":[]}'
    headers = dict(await signer.headers("POST", URL, payload))
    assert set(headers) == {"Authorization", "X-Amz-Date", "X-Amz-Security-Token"}
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token" in headers["Authorization"]
    assert _verify(headers, payload) is None
    assert _verify(headers, payload, secret="another-secret").code == "InvalidSignatureException"
    assert _verify(headers, b'{"messages":[1]}') is not None  # the body is signed
    assert SECRET not in redact(f"echo {SECRET} and session-token-abcdef")
    assert "session-token-abcdef" not in redact("token session-token-abcdef")


async def test_refreshable_credentials_are_refreshed_before_they_expire(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # credential_process credentials that expire within botocore's refresh window: every
    # request finds them stale, so each is signed with freshly fetched ones.
    counter = tmp_path / "count"
    script = tmp_path / "creds.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, datetime, pathlib
            path = pathlib.Path({str(counter)!r})
            n = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(n))
            soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
            print(json.dumps({{"Version": 1, "AccessKeyId": {SIM_ACCESS_KEY_ID!r},
                "SecretAccessKey": {SECRET!r}, "SessionToken": f"token-number-{{n}}",
                "Expiration": soon.isoformat()}}))
            """
        )
    )
    (tmp_path / "config").write_text(
        f"[profile rotating]\ncredential_process = {sys.executable} {script}\n"
    )
    signer = SigV4Signer("eu-west-1", "rotating", "bed")
    first = dict(await signer.headers("POST", URL, b"{}"))
    second = dict(await signer.headers("POST", URL, b"{}"))
    assert first["X-Amz-Security-Token"] != second["X-Amz-Security-Token"]
    assert _verify(second, b"{}") is None
    assert int(counter.read_text()) >= 2


async def test_no_credentials_is_an_auth_error_that_says_what_to_do(
    aws_env: pytest.MonkeyPatch,
) -> None:
    aws_env.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ProviderError) as caught:
        await SigV4Signer("us-east-1", None, "bed").headers("POST", URL, b"{}")
    assert caught.value.kind is ErrorKind.AUTH
    assert "aws configure" in caught.value.message
    with pytest.raises(ProviderError) as missing:
        await SigV4Signer("us-east-1", "no-such-profile", "bed").headers("POST", URL, b"{}")
    assert missing.value.kind is ErrorKind.AUTH and "no-such-profile" in missing.value.message


async def test_bedrock_api_key_from_config_or_environment(aws_env: pytest.MonkeyPatch) -> None:
    assert bearer_token(None) is None
    aws_env.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-from-env")
    assert bearer_token(None) == "bedrock-api-key-from-env"
    assert bearer_token("configured-api-key") == "configured-api-key"
    headers = await BearerAuth("configured-api-key").headers("POST", URL, b"{}")
    assert headers == {"Authorization": "Bearer configured-api-key"}
    assert "bedrock-api-key-from-env" not in redact("key bedrock-api-key-from-env")


@pytest.mark.parametrize("bad", [-5, 10**30])
def test_negative_or_absurd_token_counts_are_not_reported(bad: int) -> None:
    usage = usage_of({"inputTokens": bad, "outputTokens": 7, "cacheReadInputTokens": bad})
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (0, 7, 0)
