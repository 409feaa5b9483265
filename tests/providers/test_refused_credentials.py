"""A cloud credential the server refuses before its known expiry (a session token expired
early, a token revoked, a rotated ``~/.aws/credentials``) is renewed and the call sent once
more, whole or streamed, so a long-running gateway does not lose the provider for good;
calls refused together share one renewal, and a credential that cannot change is sent once.
Each adapter runs against its sim on 127.0.0.1 with fake credential sources."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from aws_profiles import counting_process, isolated_aws
from google_credentials import FakeCredentials
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.config.schema import ProviderConfig, RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers.azure_openai import AzureOpenAIProvider
from rolecall.providers.bedrock import BedrockProvider
from rolecall.providers.vertex import VertexProvider
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer
from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID
from rolecall.types import ChatRequest, Message

REPLY = "The plan has three clear steps."
REQUEST = ChatRequest(messages=(Message("user", "Plan the work."),))
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


async def _text(provider: Any, mode: str) -> str:
    if mode == "complete":
        return str((await provider.complete(REQUEST)).text)
    return "".join([chunk.text async for chunk in provider.stream(REQUEST)])


# ------------------------------------------------------------------------------ Bedrock


@pytest.fixture(scope="module")
def bedrock() -> Iterator[SimServer]:
    with SimServer("bedrock", api_key="secret-one", reply=REPLY, models=()) as server:
        yield server


@pytest.fixture
def aws(bedrock: SimServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimServer:
    """The sim, and an AWS environment holding nothing but the files under ``tmp_path``."""
    isolated_aws(monkeypatch, tmp_path)
    bedrock.clear()
    bedrock.reset_stats()
    bedrock.api_key = "secret-one"
    return bedrock


def _bedrock(server: SimServer, **overrides: Any) -> BedrockProvider:
    values = {"type": "bedrock", "model": MODEL, "region": "us-east-1", "timeout": 5}
    config = BedrockConfig.model_validate({**values, "base_url": server.base_url, **overrides})
    return BedrockProvider("aws", config)


def _write_credentials(tmp_path: Path, secret: str, token: str) -> None:
    (tmp_path / "credentials").write_text(
        f"[default]\naws_access_key_id = {SIM_ACCESS_KEY_ID}\n"
        f"aws_secret_access_key = {secret}\naws_session_token = {token}\n"
    )


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_bedrock_reads_a_rotated_credentials_file_when_its_token_is_refused(
    aws: SimServer, tmp_path: Path, mode: str
) -> None:
    _write_credentials(tmp_path, "secret-one", "session-token-one")
    provider = _bedrock(aws)
    try:
        assert await _text(provider, mode) == REPLY
        # The session ends early and the file is rotated (aws sso login, a sidecar...).
        _write_credentials(tmp_path, "secret-two", "session-token-two")
        aws.api_key = "secret-two"
        aws.script(Fault("auth", variant="expired"))
        assert await _text(provider, mode) == REPLY
    finally:
        await provider.aclose()
    tokens = [request.headers["x-amz-security-token"] for request in aws.requests]
    assert tokens == ["session-token-one"] * 2 + ["session-token-two"]


async def test_bedrock_calls_refused_together_resolve_the_credentials_once(
    aws: SimServer, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("secret-one")
    runs = counting_process(
        tmp_path,
        f"""
        import json, datetime, pathlib
        n = len(pathlib.Path({str(tmp_path / "runs")!r}).read_text().split())
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        print(json.dumps({{"Version": 1, "AccessKeyId": {SIM_ACCESS_KEY_ID!r},
            "SecretAccessKey": pathlib.Path({str(secret)!r}).read_text(),
            "SessionToken": f"session-{{n}}", "Expiration": later.isoformat()}}))
        """,
    )
    provider = _bedrock(aws, profile="temp")
    try:
        assert await _text(provider, "complete") == REPLY
        secret.write_text("secret-two")  # the role's session was revoked: the old one fails
        aws.api_key = "secret-two"
        answers = await asyncio.gather(*(_text(provider, "complete") for _ in range(6)))
    finally:
        await provider.aclose()
    assert answers == [REPLY] * 6
    assert runs.read_text().split() == ["run", "run"]


async def test_bedrock_credentials_gone_when_renewed_name_the_fix(
    aws: SimServer, tmp_path: Path
) -> None:
    _write_credentials(tmp_path, "secret-one", "session-token-one")
    provider = _bedrock(aws)
    try:
        assert await _text(provider, "complete") == REPLY
        (tmp_path / "credentials").unlink()
        aws.script(Fault("auth", variant="expired"))
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert "no AWS credentials found in the default AWS chain" in info.value.message
    assert "aws sso login" in info.value.message
    assert "secret-one" not in str(info.value) and "session-token-one" not in str(info.value)
    assert aws.calls == 2


async def test_a_router_keeps_bedrock_after_its_rotated_token_is_refused(
    aws: SimServer, tmp_path: Path
) -> None:
    _write_credentials(tmp_path, "secret-one", "session-token-one")
    config = RolecallConfig.model_validate(
        {
            "providers": {
                "aws": {
                    "type": "bedrock",
                    "model": MODEL,
                    "region": "us-east-1",
                    "endpoint": aws.base_url,
                    "timeout": 5,
                }
            },
            "roles": {"coder": {"provider": "aws"}},
        }
    )
    async with Router(config) as router:
        assert (await router.complete("coder", "plan")).text == REPLY
        _write_credentials(tmp_path, "secret-two", "session-token-two")
        aws.api_key = "secret-two"
        aws.script(Fault("auth", variant="expired"))
        reply = await router.complete("coder", "code")
        assert (await router.complete("coder", "review")).text == REPLY
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("aws", "ok")]


# ------------------------------------------------------------------------------- Vertex


@pytest.fixture(scope="module")
def vertex_server() -> Iterator[SimServer]:
    with SimServer("vertex", api_key="ya29.new", reply=REPLY) as server:
        yield server


@pytest.fixture
def vertex(vertex_server: SimServer) -> SimServer:
    vertex_server.clear()
    vertex_server.reset_stats()
    vertex_server.api_key = "ya29.new"
    return vertex_server


def _vertex(server: SimServer, credentials: FakeCredentials) -> VertexProvider:
    config = ProviderConfig.model_validate(
        {
            "type": "vertex",
            "model": "sim-model",
            "project": "sim-project",
            "location": "europe-west4",
            "endpoint": server.base_url,
            "timeout": 5,
        }
    )
    return VertexProvider("vx", config, credentials=credentials)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_vertex_renews_a_token_refused_before_its_expiry_and_sends_again(
    vertex: SimServer, mode: str
) -> None:
    credentials = FakeCredentials(["ya29.revoked", "ya29.new"])
    provider = _vertex(vertex, credentials)
    try:
        assert await _text(provider, mode) == REPLY
    finally:
        await provider.aclose()
    assert [request.api_key for request in vertex.requests] == ["ya29.revoked", "ya29.new"]
    assert credentials.refreshes == 2


async def test_vertex_calls_refused_together_refresh_once(vertex: SimServer) -> None:
    credentials = FakeCredentials(["ya29.revoked", "ya29.new", "ya29.spare"])
    provider = _vertex(vertex, credentials)
    try:
        answers = await asyncio.gather(*(_text(provider, "complete") for _ in range(6)))
    finally:
        await provider.aclose()
    assert answers == [REPLY] * 6
    assert credentials.refreshes == 2


async def test_vertex_a_token_that_stays_refused_is_sent_once(vertex: SimServer) -> None:
    credentials = FakeCredentials(["ya29.revoked"])  # the refresh gives the same token back
    provider = _vertex(vertex, credentials)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert vertex.calls == 1


# -------------------------------------------------------------------------------- Azure


class AccessToken(NamedTuple):
    token: str
    expires_on: int


class Credential:
    """Issues entra-token-1, entra-token-2, ... each valid for an hour."""

    def __init__(self) -> None:
        self.issued = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.issued += 1
        await asyncio.sleep(0)
        return AccessToken(f"entra-token-{self.issued}", 4_000_000_000)


@pytest.fixture(scope="module")
def azure_server() -> Iterator[SimServer]:
    with SimServer("azure-openai", api_key="entra-token-2", reply=REPLY) as server:
        yield server


@pytest.fixture
def azure(azure_server: SimServer) -> SimServer:
    azure_server.clear()
    azure_server.reset_stats()
    azure_server.api_key = "entra-token-2"
    return azure_server


def _azure(server: SimServer, credential: Any, **overrides: Any) -> AzureOpenAIProvider:
    values = {"type": "azure-openai", "deployment": "sim-model", "timeout": 5, **overrides}
    config = ProviderConfig.model_validate({**values, "endpoint": server.base_url})
    return AzureOpenAIProvider("az", config, credential=credential)


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_azure_renews_an_entra_token_refused_before_its_expiry(
    azure: SimServer, mode: str
) -> None:
    credential = Credential()
    provider = _azure(azure, credential, auth="entra")
    try:
        assert await _text(provider, mode) == REPLY
    finally:
        await provider.aclose()
    sent = [request.headers["authorization"] for request in azure.requests]
    assert sent == ["Bearer entra-token-1", "Bearer entra-token-2"]
    assert credential.issued == 2


async def test_azure_calls_refused_together_fetch_one_token(azure: SimServer) -> None:
    credential = Credential()
    provider = _azure(azure, credential, auth="entra")
    try:
        answers = await asyncio.gather(*(_text(provider, "complete") for _ in range(6)))
    finally:
        await provider.aclose()
    assert answers == [REPLY] * 6
    assert credential.issued == 2


async def test_azure_a_refused_api_key_is_sent_once(azure: SimServer) -> None:
    provider = _azure(azure, None, api_key="azure-wrong-key-000000")
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert azure.calls == 1
