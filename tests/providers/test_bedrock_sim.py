"""rolecall's Bedrock adapter against the Bedrock sim: every fault kind whole and streamed,
SigV4 and API-key auth, tools, images, reasoning, JSON answers, cache points, the free
credential check and credentials refreshed mid-run."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from transport_servers import raw_server, read_request

from aws_profiles import counting_process
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._http import HTTPProvider
from rolecall.providers.bedrock import BedrockProvider
from rolecall.sim import Fault, SimServer
from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID
from rolecall.types import ChatRequest, Chunk, ImagePart, Message, TextPart, ToolCall

SECRET = "sim-bedrock-secret-key-0123456789"
REPLY = "The plan has three clear steps."
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
REQUEST = ChatRequest(
    messages=(Message("system", "Be brief."), Message("user", "Plan the work.")),
    params={"temperature": 0.2, "max_tokens": 200},
)
E = ErrorKind

# (row id, fault, kind when called whole, kind when streamed, retry_after)
ROWS: list[tuple[str, Fault, ErrorKind, ErrorKind, float | None]] = [
    ("auth", Fault("auth"), E.AUTH, E.AUTH, None),
    ("auth-signature", Fault("auth", variant="signature"), E.AUTH, E.AUTH, None),
    ("auth-expired", Fault("auth", variant="expired"), E.AUTH, E.AUTH, None),
    ("auth-api-key", Fault("auth", variant="api_key"), E.AUTH, E.AUTH, None),
    ("auth-clock-behind", Fault("auth", variant="clock_behind"), E.AUTH, E.AUTH, None),
    ("auth-clock-ahead", Fault("auth", variant="clock_ahead"), E.AUTH, E.AUTH, None),
    ("permission", Fault("permission"), E.PERMISSION, E.PERMISSION, None),
    ("permission-iam", Fault("permission", variant="iam"), E.PERMISSION, E.PERMISSION, None),
    ("region", Fault("region"), E.PERMISSION, E.PERMISSION, None),
    ("not_found", Fault("not_found"), E.NOT_FOUND, E.NOT_FOUND, None),
    ("not_found-eol", Fault("not_found", variant="end_of_life"), E.NOT_FOUND, E.NOT_FOUND, None),
    ("quota-per-day", Fault("quota"), E.QUOTA, E.QUOTA, None),
    ("quota-service", Fault("quota", variant="service_quota"), E.QUOTA, E.QUOTA, None),
    ("rate_limit", Fault("rate_limit"), E.RATE_LIMIT, E.RATE_LIMIT, None),
    ("rate_limit-hint", Fault("rate_limit", retry_after=2), E.RATE_LIMIT, E.RATE_LIMIT, 2.0),
    ("overloaded", Fault("overloaded"), E.OVERLOADED, E.OVERLOADED, None),
    ("not_ready", Fault("overloaded", variant="not_ready"), E.OVERLOADED, E.OVERLOADED, None),
    ("server-500", Fault("server"), E.SERVER, E.SERVER, None),
    ("server-502-html", Fault("server", status=502), E.SERVER, E.SERVER, None),
    ("model-timeout-408", Fault("server", status=408), E.TIMEOUT, E.TIMEOUT, None),
    ("model-error-424", Fault("server", status=424), E.SERVER, E.SERVER, None),
    ("reset", Fault("reset"), E.NETWORK, E.NETWORK, None),
    ("malformed", Fault("malformed"), E.BAD_RESPONSE, E.BAD_RESPONSE, None),
    ("empty", Fault("empty"), E.BAD_RESPONSE, E.BAD_RESPONSE, None),
    ("context_length", Fault("context_length"), E.CONTEXT_LENGTH, E.CONTEXT_LENGTH, None),
    ("content_filter", Fault("content_filter"), E.CONTENT_FILTER, E.CONTENT_FILTER, None),
    ("guardrail", Fault("content_filter", variant="guardrail"), E.CONTENT_FILTER,
     E.CONTENT_FILTER, None),
    ("bad_request", Fault("bad_request"), E.BAD_REQUEST, E.BAD_REQUEST, None),
    ("bad_request-422", Fault("bad_request", status=422), E.BAD_REQUEST, E.BAD_REQUEST, None),
    # Whole: 503 ServiceUnavailable; streamed: a modelStreamErrorException frame after 200.
    ("stream_error", Fault("stream_error"), E.OVERLOADED, E.SERVER, None),
]  # fmt: skip
HANG_ROWS: list[tuple[str, Fault, str]] = [
    ("timeout-complete", Fault("timeout", delay=5), "complete"),
    ("timeout-stream", Fault("timeout", delay=5), "stream"),
    ("stall-stream", Fault("stall", delay=5), "stream"),
    ("stall-stream-after-chunks", Fault("stall", delay=5, after_chunks=2), "stream"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer("bedrock", api_key=SECRET, reply=REPLY, models=()) as started:
        yield started


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: SimServer) -> None:
    """The sim's credentials in the environment, and nothing else of AWS's."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server.clear()
    server.reset_stats()
    server.responder = None


def make_provider(server: SimServer, **overrides: Any) -> BedrockProvider:
    values: dict[str, Any] = {
        "type": "bedrock",
        "model": MODEL,
        "region": "us-east-1",
        "base_url": server.base_url,
        "timeout": 5,
        **overrides,
    }
    return BedrockProvider("aws", BedrockConfig.model_validate(values))


@pytest.fixture
async def provider(server: SimServer) -> AsyncIterator[BedrockProvider]:
    made = make_provider(server)
    yield made
    await made.aclose()


async def _collect(provider: HTTPProvider, request: ChatRequest = REQUEST) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]  # type: ignore[attr-defined]


async def _run(provider: BedrockProvider, mode: str, request: ChatRequest = REQUEST) -> Any:
    if mode == "complete":
        return await provider.complete(request)
    return await _collect(provider, request)


def _cases() -> list[Any]:
    return [
        pytest.param(
            mode, fault, whole if mode == "complete" else streamed, wait, id=f"{mode}-{name}"
        )
        for name, fault, whole, streamed, wait in ROWS
        for mode in ("complete", "stream")
    ]


@pytest.mark.parametrize(("mode", "fault", "kind", "wait"), _cases())
async def test_fault_is_classified(
    server: SimServer,
    provider: BedrockProvider,
    mode: str,
    fault: Fault,
    kind: ErrorKind,
    wait: float | None,
) -> None:
    server.script(Fault(**{**fault.__dict__, "echo_key": True}))
    with pytest.raises(ProviderError) as info:
        await _run(provider, mode)
    error = info.value
    assert error.kind is kind, error
    assert error.retryable is kind.retryable
    assert error.retry_after == (None if wait is None else pytest.approx(wait))
    assert error.provider == "aws"
    assert SECRET not in str(error) and SECRET not in repr(error)
    assert error.message and len(error.message) < 400
    assert server.calls == 1  # adapters never retry


@pytest.mark.parametrize(("name", "fault", "mode"), HANG_ROWS, ids=[row[0] for row in HANG_ROWS])
async def test_silence_is_a_timeout(server: SimServer, name: str, fault: Fault, mode: str) -> None:
    provider = make_provider(server, timeout=1.0)
    server.script(fault)
    received: list[str] = []
    try:
        with pytest.raises(ProviderError) as info:
            if mode == "complete":
                await provider.complete(REQUEST)
            else:
                async for chunk in provider.stream(REQUEST):
                    received.append(chunk.text)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.TIMEOUT
    assert len(received) == fault.after_chunks


async def test_stream_exception_after_content_keeps_what_arrived(
    server: SimServer, provider: BedrockProvider
) -> None:
    server.script(Fault("stream_error", after_chunks=2))
    received: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream(REQUEST):
            received.append(chunk)
    assert info.value.kind is ErrorKind.SERVER
    assert "modelStreamErrorException" in info.value.message
    assert "".join(c.text for c in received) == "The plan"


# Good answers ----------------------------------------------------------------------------
async def test_complete_text_usage_finish_and_the_signed_request(
    server: SimServer, provider: BedrockProvider
) -> None:
    completion = await provider.complete(REQUEST)
    assert completion.text == REPLY
    assert completion.finish_reason == "stop"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (5, 6)
    assert completion.model == MODEL
    sent = server.requests[-1]
    assert sent.path == f"/model/{MODEL}/converse"
    assert sent.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={SIM_ACCESS_KEY_ID}/"
    )
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.json == {
        "messages": [{"role": "user", "content": [{"text": "Plan the work."}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.2},
    }


async def test_stream_concatenates_and_ends_with_usage(
    server: SimServer, provider: BedrockProvider
) -> None:
    chunks = await _collect(provider)
    *pieces, last = chunks
    assert "".join(c.text for c in pieces) == REPLY and len(pieces) == 6
    assert all(c.usage is None and c.finish_reason is None for c in pieces)
    assert last.finish_reason == "stop" and last.usage is not None
    assert (last.usage.input_tokens, last.usage.output_tokens) == (5, 6)
    assert server.requests[-1].path == f"/model/{MODEL}/converse-stream"


async def test_an_answer_cut_by_the_context_window_is_length(
    server: SimServer, provider: BedrockProvider
) -> None:
    server.responder = lambda body: {"text": "Half an ans", "finish": "context_window"}
    completion = await provider.complete(REQUEST)
    last = (await _collect(provider))[-1]
    assert (completion.text, completion.finish_reason, last.finish_reason) == (
        "Half an ans",
        "length",
        "length",
    )


async def test_an_arn_model_id_is_encoded_in_the_path_and_signed(server: SimServer) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    provider = make_provider(server, model=arn)
    try:
        assert (await provider.complete(REQUEST)).text == REPLY
    finally:
        await provider.aclose()
    assert server.requests[-1].path == f"/model/{arn}/converse"


async def test_tools_whole_and_streamed(server: SimServer, provider: BedrockProvider) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    asked = ChatRequest((Message("user", "Weather in Paris?"),), {"tools": [tool]})
    server.responder = lambda body: {
        "text": "",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "tooluse_9"}],
    }
    completion = await provider.complete(asked)
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("tooluse_9", "get_weather", '{"city": "Paris"}'),)
    chunks = await _collect(provider, asked)
    deltas = [d for c in chunks for d in c.tool_calls]
    assert (deltas[0].id, deltas[0].name) == ("tooluse_9", "get_weather")
    assert json.loads("".join(d.arguments for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].finish_reason == "tool_calls"
    server.responder = None
    answered = ChatRequest(
        (
            *asked.messages,
            Message("assistant", tool_calls=completion.tool_calls),
            Message("tool", "sunny", tool_call_id="tooluse_9"),
        ),
        {"tools": [tool]},
    )
    assert (await provider.complete(answered)).text == REPLY  # the sim checks the pairing


async def test_image_and_cache_point(server: SimServer, provider: BedrockProvider) -> None:
    png = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAj"
        "CB0C8AAAAASUVORK5CYII="
    )
    parts = (
        TextPart("Describe " * 8 + "this", cache_control={"type": "ephemeral"}),
        ImagePart(png),
    )
    request = ChatRequest((Message("user", "", parts=parts),))
    first = await provider.complete(request)
    second = await provider.complete(request)
    assert first.usage.cache_creation_input_tokens == 9
    assert second.usage.cached_input_tokens == 9
    assert second.usage.input_tokens == first.usage.input_tokens
    image = server.requests[-1].json["messages"][0]["content"][2]["image"]
    assert image["format"] == "png" and png.endswith(image["source"]["bytes"])


async def test_reasoning_effort_brings_reasoning_whole_and_streamed(
    server: SimServer, provider: BedrockProvider
) -> None:
    request = ChatRequest((Message("user", "Think first."),), {"reasoning_effort": "low"})
    completion = await provider.complete(request)
    assert completion.reasoning and completion.text == REPLY
    chunks = await _collect(provider, request)
    assert "".join(c.reasoning for c in chunks) == completion.reasoning
    sent = server.requests[-1].json
    assert sent["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_json_answers(server: SimServer, provider: BedrockProvider, mode: str) -> None:
    schema = {"type": "object", "properties": {"steps": {"type": "array"}}, "required": ["steps"]}
    request = ChatRequest(REQUEST.messages, response_schema=schema)
    result = await _run(provider, mode, request)
    text = result.text if mode == "complete" else "".join(c.text for c in result)
    assert json.loads(text) == {"steps": []}
    server.responder = lambda body: "Sure! Steps: 1, 2, 3."
    with pytest.raises(ProviderError) as info:
        await _run(provider, mode, request)
    assert info.value.kind is ErrorKind.BAD_RESPONSE


# Authentication ----------------------------------------------------------------------------
async def test_wrong_secret_is_an_auth_error_sent_once(
    server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-sim-secret-000")
    provider = make_provider(server)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH and info.value.status == 403
    assert "InvalidSignatureException" in info.value.message
    assert "not-the-sim-secret-000" not in str(info.value)
    assert server.calls == 1


async def test_bedrock_api_key_as_bearer(
    server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider(server, api_key=SECRET)
    try:
        assert (await provider.complete(REQUEST)).text == REPLY
        assert server.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    finally:
        await provider.aclose()
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-wrong-0000")
    wrong = make_provider(server)
    server.script(Fault("ok"), Fault("auth", variant="api_key", echo_key=True))
    try:
        with pytest.raises(ProviderError) as info:
            await wrong.complete(REQUEST)
        with pytest.raises(ProviderError) as echoed:
            await _collect(wrong)
    finally:
        await wrong.aclose()
    assert info.value.kind is ErrorKind.AUTH and "API Key" in info.value.message
    assert echoed.value.kind is ErrorKind.AUTH
    assert "bedrock-api-key-wrong-0000" not in str(echoed.value)


async def test_credentials_refreshed_mid_run(
    server: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # credential_process credentials that expire within botocore's refresh window: each
    # call is signed with freshly fetched ones, and every call goes through.
    script = tmp_path / "creds.py"
    counter = tmp_path / "count"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, datetime, pathlib
            path = pathlib.Path({str(counter)!r})
            n = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(n))
            soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
            print(json.dumps({{"Version": 1, "AccessKeyId": {SIM_ACCESS_KEY_ID!r},
                "SecretAccessKey": {SECRET!r}, "SessionToken": f"session-{{n}}-token",
                "Expiration": soon.isoformat()}}))
            """
        )
    )
    (tmp_path / "config").write_text(
        f"[profile temp]\ncredential_process = {sys.executable} {script}\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = make_provider(server, profile="temp")
    try:
        for _ in range(3):
            assert (await provider.complete(REQUEST)).text == REPLY
    finally:
        await provider.aclose()
    tokens = [r.headers["x-amz-security-token"] for r in server.requests]
    assert len(set(tokens)) == 3


def _process_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    (tmp_path / "config").write_text(f"[profile temp]\ncredential_process = {command}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("/nonexistent/aws-credential-helper", id="process-missing"),
        pytest.param(f"{sys.executable} -c \"print('not json')\"", id="process-prints-no-json"),
    ],
)
async def test_a_broken_credential_process_is_an_auth_error_naming_it(
    server: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    _process_profile(tmp_path, monkeypatch, command)
    provider = make_provider(server, profile="temp")
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert "AWS credentials from profile 'temp' cannot be loaded" in info.value.message
    assert server.requests == []


def _sts(answer: bytes, calls: list[bytes]) -> AbstractAsyncContextManager[str]:
    """A fake STS answering every AssumeRole with ``answer`` (a whole HTTP response)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        calls.append(await read_request(reader))
        writer.write(answer)
        await writer.drain()
        writer.close()

    return raw_server(serve)


def _sts_error(status: int, code: str) -> bytes:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{code} from STS</Message></Error></ErrorResponse>"
    ).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        pytest.param(_sts_error(403, "AccessDenied"), ErrorKind.AUTH, id="refused"),
        pytest.param(_sts_error(500, "InternalFailure"), ErrorKind.SERVER, id="failing"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n<AssumeRoleResponse/>",
                     ErrorKind.AUTH, id="no-credentials-in-the-answer"),
    ],
)  # fmt: skip
async def test_an_assumed_role_sts_will_not_give_is_classified(
    server: SimServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: bytes,
    kind: ErrorKind,
) -> None:
    (tmp_path / "config").write_text(
        "[profile base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret-0\n"
        "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\n"
    )
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    calls: list[bytes] = []
    async with _sts(answer, calls) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts)
        provider = make_provider(server, profile="role")
        try:
            with pytest.raises(ProviderError) as info:
                await provider.complete(REQUEST)
        finally:
            await provider.aclose()
    assert len(calls) == 1  # botocore asked STS, once
    assert info.value.kind is kind, info.value.message
    assert "AWS credentials from profile 'role' cannot be" in info.value.message
    assert server.requests == []


async def test_concurrent_first_calls_run_the_credential_process_once(
    server: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = counting_process(
        tmp_path,
        f"""
        import json, datetime, time
        time.sleep(0.2)  # an SSO or STS round trip: long enough for the others to ask
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        print(json.dumps({{"Version": 1, "AccessKeyId": {SIM_ACCESS_KEY_ID!r},
            "SecretAccessKey": {SECRET!r}, "Expiration": later.isoformat()}}))
        """,
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = make_provider(server, profile="temp")
    try:
        answers = await asyncio.gather(*(provider.complete(REQUEST) for _ in range(8)))
    finally:
        await provider.aclose()
    assert [answer.text for answer in answers] == [REPLY] * 8
    assert runs.read_text().splitlines() == ["run"]


# The credential check ----------------------------------------------------------------------
async def test_check_credentials_spends_no_tokens(
    server: SimServer, provider: BedrockProvider
) -> None:
    await provider.check_credentials()
    assert (server.calls, server.model_calls) == (0, 1)
    assert server.requests[-1].path == f"/foundation-models/{MODEL}"
    profile = make_provider(server, model="us.anthropic.claude-3-haiku-20240307-v1:0")
    try:
        await profile.check_credentials()
    finally:
        await profile.aclose()
    assert (
        server.requests[-1].path == "/inference-profiles/us.anthropic.claude-3-haiku-20240307-v1:0"
    )


async def test_check_credentials_failures(
    server: SimServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server.models = ("other-model",)
    unknown = make_provider(server)
    try:
        with pytest.raises(ProviderError) as missing:
            await unknown.check_credentials()
        server.script_models(Fault("permission"))
        with caplog.at_level(logging.WARNING, logger="rolecall.providers"):
            await unknown.check_credentials()  # valid keys that may not read the model: a warning
    finally:
        server.models = ()
        await unknown.aclose()
    assert missing.value.kind is ErrorKind.NOT_FOUND
    assert "may not read model" in caplog.text
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-for-the-check")
    wrong = make_provider(server)
    try:
        with pytest.raises(ProviderError) as refused:
            await wrong.check_credentials()
    finally:
        await wrong.aclose()
    assert refused.value.kind is ErrorKind.AUTH
    assert server.calls == 0


# Configuration -----------------------------------------------------------------------------
def test_missing_botocore_names_the_extra(
    server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolecall.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "botocore", None)
    monkeypatch.setitem(sys.modules, "botocore.eventstream", None)
    with pytest.raises(MissingExtra) as caught:
        make_provider(server)
    assert "pip install 'rolecall[bedrock]'" in str(caught.value)


def test_region_from_the_environment_or_a_clear_config_error(
    server: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolecall.config.schema import ProviderConfig
    from rolecall.errors import ConfigError
    from rolecall.providers import build_provider

    values = {"type": "bedrock", "model": MODEL, "profile": "nowhere"}
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    built = build_provider("aws", ProviderConfig.model_validate(values))
    assert isinstance(built, BedrockProvider) and built.region == "eu-central-1"
    assert built.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError) as missing:
        build_provider("aws", ProviderConfig.model_validate(values))
    assert "providers.aws.region" in str(missing.value) and "AWS_REGION" in str(missing.value)
    monkeypatch.setenv("AWS_REGION", "evil.example.com/x")
    with pytest.raises(ConfigError) as bad:
        build_provider("aws", ProviderConfig.model_validate(values))
    assert "is not an AWS region" in str(bad.value)


async def test_a_strict_tool_reaches_bedrock_strict(
    server: SimServer, provider: BedrockProvider
) -> None:
    # Converse's toolSpec takes `strict` (structured output enforced on the tool's input).
    tool = {"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}
    await provider.complete(ChatRequest((Message("user", "hi"),), {"tools": [tool]}))
    [spec] = server.requests[-1].json["toolConfig"]["tools"]
    assert spec["toolSpec"]["strict"] is True
