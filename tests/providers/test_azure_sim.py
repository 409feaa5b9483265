"""rolecall's Azure OpenAI adapter against the Azure sim: every fault Azure sends, whole and
streamed, keys and Entra ID tokens (one refreshed mid-run on a fake clock), tools, images,
the credential check, and the config's checks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

import pytest
from pydantic import ValidationError

from rolecall._secrets import redact
from rolecall.config._azure_config import AzureOpenAIConfig
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers import build_provider
from rolecall.providers.azure_openai import AzureOpenAIProvider
from rolecall.sim import Fault, SimServer
from rolecall.types import ChatRequest, Chunk, ImagePart, Message, TextPart, ToolCall

KEY = "azure-sim-adapter-secret-0123456789"
REPLY = "The plan has three clear steps."
REQUEST = ChatRequest(
    messages=(Message("system", "Be brief."), Message("user", "Plan the work.")),
    params={"temperature": 0.2, "max_tokens": 200},
)
E = ErrorKind

# (row id, fault, kind, retry_after): every condition PROVIDERS.md lists for Azure.
ROWS: list[tuple[str, Fault, ErrorKind, float | None]] = [
    ("auth", Fault("auth"), E.AUTH, None),
    ("permission", Fault("permission"), E.PERMISSION, None),
    ("region", Fault("region"), E.PERMISSION, None),
    ("not_found", Fault("not_found"), E.NOT_FOUND, None),
    ("quota", Fault("quota"), E.QUOTA, None),
    ("quota-with-retry-hint", Fault("quota", retry_after=30), E.QUOTA, None),
    ("rate_limit", Fault("rate_limit", retry_after=2), E.RATE_LIMIT, 2.0),
    ("rate_limit-fraction", Fault("rate_limit", retry_after=1.5), E.RATE_LIMIT, 1.5),
    ("overloaded", Fault("overloaded"), E.OVERLOADED, None),
    ("server-500", Fault("server"), E.SERVER, None),
    ("server-502-html", Fault("server", status=502), E.SERVER, None),
    ("server-504", Fault("server", status=504), E.SERVER, None),
    ("reset", Fault("reset"), E.NETWORK, None),
    ("malformed", Fault("malformed"), E.BAD_RESPONSE, None),
    ("empty", Fault("empty"), E.BAD_RESPONSE, None),
    ("context_length", Fault("context_length"), E.CONTEXT_LENGTH, None),
    ("content_filter-answer", Fault("content_filter"), E.CONTENT_FILTER, None),
    ("content_filter-prompt", Fault("content_filter", variant="prompt"), E.CONTENT_FILTER, None),
    ("bad_request", Fault("bad_request"), E.BAD_REQUEST, None),
    ("bad_request-422", Fault("bad_request", status=422), E.BAD_REQUEST, None),
    ("stream_error", Fault("stream_error"), E.NETWORK, None),
]
HANG_ROWS: list[tuple[str, Fault, str]] = [
    ("timeout-complete", Fault("timeout", delay=5), "complete"),
    ("timeout-stream", Fault("timeout", delay=5), "stream"),
    ("stall-stream", Fault("stall", delay=5), "stream"),
    ("stall-stream-after-chunks", Fault("stall", delay=5, after_chunks=2), "stream"),
]


class AccessToken(NamedTuple):
    token: str
    expires_on: int


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeCredential:
    """Issues token-1, token-2, ... valid an hour from the fake clock's now."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.issued = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.issued += 1
        return AccessToken(f"entra-token-{self.issued}", int(self.clock() + 3600))


@pytest.fixture(scope="module")
def _server() -> Iterator[SimServer]:
    with SimServer("azure-openai", api_key=KEY, reply=REPLY) as server:
        yield server


@pytest.fixture
def sim(_server: SimServer) -> SimServer:
    _server.clear()
    _server.reset_stats()
    _server.responder = None
    _server.api_key = KEY
    return _server


def _config(server: SimServer, **overrides: Any) -> ProviderConfig:
    values: dict[str, Any] = {
        "type": "azure-openai",
        "endpoint": server.base_url,
        "deployment": "sim-model",
        "api_key": KEY,
        "timeout": 5,
    }
    values.update(overrides)
    return ProviderConfig.model_validate({k: v for k, v in values.items() if v is not None})


def _entra(server: SimServer, credential: Any, clock: Clock | None = None) -> AzureOpenAIProvider:
    config = _config(server, api_key=None, auth="entra")
    return AzureOpenAIProvider("az", config, credential=credential, clock=clock or Clock())


@pytest.fixture
async def adapter(sim: SimServer) -> AsyncIterator[AzureOpenAIProvider]:
    provider = build_provider("az", _config(sim))
    assert isinstance(provider, AzureOpenAIProvider)
    yield provider
    await provider.aclose()


async def _run(provider: AzureOpenAIProvider, mode: str, request: ChatRequest = REQUEST) -> Any:
    if mode == "complete":
        return await provider.complete(request)
    return [chunk async for chunk in provider.stream(request)]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("name", "fault", "kind", "wait"), ROWS, ids=[r[0] for r in ROWS])
async def test_fault_is_classified(
    sim: SimServer,
    adapter: AzureOpenAIProvider,
    mode: str,
    name: str,
    fault: Fault,
    kind: ErrorKind,
    wait: float | None,
) -> None:
    sim.script(Fault(**{**fault.__dict__, "echo_key": True}))
    with pytest.raises(ProviderError) as info:
        await _run(adapter, mode)
    error = info.value
    assert error.kind is kind, error
    assert error.retry_after == (None if wait is None else pytest.approx(wait, abs=0.01))
    assert error.provider == "az"
    for text in (str(error), repr(error), error.message):
        assert KEY not in text and KEY[:12] not in text
    assert sim.calls == 1  # adapters never retry


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_retry_after_as_http_date(
    sim: SimServer, adapter: AzureOpenAIProvider, mode: str
) -> None:
    sim.script(Fault("rate_limit", retry_after=3, variant="http_date"))
    with pytest.raises(ProviderError) as info:
        await _run(adapter, mode)
    assert info.value.kind is ErrorKind.RATE_LIMIT
    assert info.value.retry_after is not None and 1.0 <= info.value.retry_after <= 4.0


@pytest.mark.parametrize(("name", "fault", "mode"), HANG_ROWS, ids=[r[0] for r in HANG_ROWS])
async def test_silence_is_a_timeout(sim: SimServer, name: str, fault: Fault, mode: str) -> None:
    provider = build_provider("az", _config(sim, timeout=1.0))
    assert isinstance(provider, AzureOpenAIProvider)
    sim.script(fault)
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


async def test_stream_cut_after_content_keeps_what_arrived(
    sim: SimServer, adapter: AzureOpenAIProvider
) -> None:
    sim.script(Fault("stream_error", after_chunks=2))
    received: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in adapter.stream(REQUEST):
            received.append(chunk)
    assert info.value.kind is ErrorKind.NETWORK
    assert "".join(c.text for c in received) == "The plan"


# ----------------------------------------------------------------------- good answers


async def test_complete_on_the_deployment_path(
    sim: SimServer, adapter: AzureOpenAIProvider
) -> None:
    completion = await adapter.complete(REQUEST)
    assert completion.text == REPLY and completion.finish_reason == "stop"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (5, 6)
    sent = sim.requests[-1]
    assert sent.path == "/openai/deployments/sim-model/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
    assert sent.json["model"] == "sim-model"
    assert sent.json["max_completion_tokens"] == 200 and "max_tokens" not in sent.json
    assert sent.json["temperature"] == 0.2


async def test_stream_skips_the_filter_annotation_chunk_and_ends_with_usage(
    sim: SimServer, adapter: AzureOpenAIProvider
) -> None:
    chunks = await _run(adapter, "stream")
    *pieces, last = chunks
    assert "".join(c.text for c in pieces) == REPLY and len(pieces) > 2
    assert all(c.usage is None for c in pieces)
    assert last.finish_reason == "stop" and last.usage is not None
    assert last.usage.output_tokens == len(REPLY.split())
    assert sim.requests[-1].json["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_v1_path_names_the_deployment_in_the_body(sim: SimServer, mode: str) -> None:
    provider = build_provider(
        "az", _config(sim, deployment=None, model="sim-model", api_version="v1")
    )
    try:
        result = await _run(provider, mode)  # type: ignore[arg-type]
    finally:
        await provider.aclose()
    text = result.text if mode == "complete" else "".join(c.text for c in result)
    assert text == REPLY
    sent = sim.requests[-1]
    assert (sent.path, sent.query) == ("/openai/v1/chat/completions", {})
    assert sent.json["model"] == "sim-model"


async def test_endpoint_pasted_with_openai_path_still_works(sim: SimServer) -> None:
    provider = build_provider("az", _config(sim, endpoint=sim.base_url + "/openai/"))
    try:
        assert (await provider.complete(REQUEST)).text == REPLY
    finally:
        await provider.aclose()


WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_tool_calls_whole_and_streamed(
    sim: SimServer, adapter: AzureOpenAIProvider, mode: str
) -> None:
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    sim.responder = lambda body: {"text": "", "tool_calls": [call]}
    request = ChatRequest(messages=(Message("user", "Weather?"),), params={"tools": [WEATHER]})
    result = await _run(adapter, mode, request)
    if mode == "complete":
        assert result.tool_calls == (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),)
        assert result.finish_reason == "tool_calls"
    else:
        pieces = [d for c in result for d in c.tool_calls]
        assert pieces[0].id == "call_1" and pieces[0].name == "get_weather"
        assert "".join(p.arguments for p in pieces) == '{"city":"Paris"}'
        assert result[-1].finish_reason == "tool_calls"
    assert sim.requests[-1].json["tools"] == [WEATHER]


async def test_tool_result_and_image_reach_azure_in_openais_shape(
    sim: SimServer, adapter: AzureOpenAIProvider
) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    request = ChatRequest(
        messages=(
            Message("user", parts=(TextPart("What is this?"), ImagePart(png, detail="low"))),
            Message("assistant", tool_calls=(ToolCall("call_1", "look", "{}"),)),
            Message("tool", "a cat", tool_call_id="call_1"),
        )
    )
    assert (await adapter.complete(request)).text == REPLY
    sent = sim.requests[-1].json["messages"]
    image = {"type": "image_url", "image_url": {"url": png, "detail": "low"}}
    assert sent[0]["content"][1] == image
    assert sent[1]["tool_calls"][0]["id"] == "call_1" and sent[1]["content"] is None
    assert sent[2] == {"role": "tool", "content": "a cat", "tool_call_id": "call_1"}


# ------------------------------------------------------------------------ Entra ID


async def test_entra_token_expiring_mid_run_is_refreshed_and_the_run_goes_on(
    sim: SimServer,
) -> None:
    clock = Clock()
    credential = FakeCredential(clock)
    config = _config(sim, api_key=None, auth="entra")
    provider = AzureOpenAIProvider("az", config, credential=credential, clock=clock)
    sim.api_key = "entra-token-1"
    try:
        assert (await provider.complete(REQUEST)).text == REPLY
        clock.now += 1800
        assert "".join([c.text async for c in provider.stream(REQUEST)]) == REPLY
        # An hour later token 1 has expired at Azure; the adapter must not send it again.
        clock.now += 1800
        sim.api_key = "entra-token-2"
        assert (await provider.complete(REQUEST)).text == REPLY
    finally:
        await provider.aclose()
    sent = [r.headers["authorization"] for r in sim.requests]
    assert sent == ["Bearer entra-token-1"] * 2 + ["Bearer entra-token-2"]
    assert credential.issued == 2
    assert all("api-key" not in r.headers for r in sim.requests)


async def test_an_entra_token_echoed_in_an_error_is_masked_until_it_expires(
    sim: SimServer,
) -> None:
    clock = Clock()
    provider = _entra(sim, FakeCredential(clock), clock)
    sim.api_key = "entra-token-1"
    errors: list[str] = []
    try:
        for fault in ("server", "permission"):
            sim.script(Fault(fault, echo_key=True))
            with pytest.raises(ProviderError) as info:
                await provider.complete(REQUEST)
            errors.append(str(info.value))
        # Replaced by token 2 while token 1 still lives: token 1 stays masked.
        clock.now += 3400
        sim.api_key = "entra-token-2"
        sim.script(Fault("server", echo_key=True))
        with pytest.raises(ProviderError) as replaced:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert all("(API key: ***)" in error for error in errors), errors
    assert "entra-token-1" not in redact("sent entra-token-1")
    assert "entra-token-2" not in str(replaced.value)


async def test_a_token_azure_refuses_before_its_expiry_is_replaced_and_sent_again(
    sim: SimServer,
) -> None:
    """The control: with the clock left alone the cached token is sent, and only Azure's
    refusal of it brings the next one."""
    clock = Clock()
    credential = FakeCredential(clock)
    provider = _entra(sim, credential, clock)
    sim.api_key = "entra-token-1"
    try:
        await provider.complete(REQUEST)
        sim.api_key = "entra-token-2"
        assert (await provider.complete(REQUEST)).text == REPLY
    finally:
        await provider.aclose()
    sent = [r.headers["authorization"] for r in sim.requests]
    assert sent == ["Bearer entra-token-1"] * 2 + ["Bearer entra-token-2"]
    assert credential.issued == 2


async def test_no_entra_token_is_an_auth_error_and_nothing_is_sent(sim: SimServer) -> None:
    class NoSignIn:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token")

    provider = _entra(sim, NoSignIn())
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH and "az login" in info.value.message
    assert sim.requests == []


async def test_an_entra_sign_in_that_hangs_times_out_at_the_provider_timeout(
    sim: SimServer,
) -> None:
    class NeverAnswers:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            await asyncio.sleep(30)  # a managed identity endpoint that does not reply

    provider = AzureOpenAIProvider(
        "az", _config(sim, api_key=None, auth="entra", timeout=0.3), credential=NeverAnswers()
    )
    try:
        for call in ("complete", "check"):
            with pytest.raises(ProviderError) as info:
                if call == "complete":
                    await provider.complete(REQUEST)
                else:
                    await provider.check_credentials()
            assert info.value.kind is ErrorKind.TIMEOUT, call
            assert "no credentials within the timeout (0.3 s)" in info.value.message
    finally:
        await provider.aclose()
    assert sim.requests == []


def test_entra_without_azure_identity_names_the_extra(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("azure", "azure.identity", "azure.identity.aio"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtra) as raised:
        build_provider("az", _config(sim, api_key=None, auth="entra"))
    assert "rolecall[azure]" in str(raised.value)


async def test_key_auth_without_a_key_names_the_fix_and_sends_nothing(sim: SimServer) -> None:
    provider = build_provider("az", _config(sim, api_key=None))
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert "providers.az.api_key" in info.value.message and "auth: entra" in info.value.message
    assert sim.requests == []


# ------------------------------------------------------------------ credential check


async def test_check_credentials_spends_no_tokens(
    sim: SimServer, adapter: AzureOpenAIProvider
) -> None:
    await adapter.check_credentials()
    assert (sim.calls, sim.model_calls) == (0, 1)
    assert sim.requests[-1].path == "/openai/models"
    assert sim.requests[-1].query == {"api-version": "2024-10-21"}


async def test_check_credentials_with_an_entra_token(sim: SimServer) -> None:
    clock = Clock()
    provider = _entra(sim, FakeCredential(clock), clock)
    sim.api_key = "entra-token-1"
    try:
        await provider.check_credentials()
    finally:
        await provider.aclose()
    assert sim.requests[-1].headers["authorization"] == "Bearer entra-token-1"


@pytest.mark.parametrize(
    ("overrides", "faults", "kind"),
    [
        ({"api_key": "wrong-azure-key-000000000"}, (), ErrorKind.AUTH),
        ({}, (Fault("overloaded"),), ErrorKind.OVERLOADED),
        ({}, (Fault("permission"),), ErrorKind.PERMISSION),
    ],
    ids=["bad-key", "down", "no-role"],
)
async def test_check_credentials_failures(
    sim: SimServer, overrides: dict[str, Any], faults: tuple[Fault, ...], kind: ErrorKind
) -> None:
    sim.script_models(*faults)
    provider = build_provider("az", _config(sim, **overrides))
    try:
        with pytest.raises(ProviderError) as info:
            await provider.check_credentials()
    finally:
        await provider.aclose()
    assert info.value.kind is kind
    assert "wrong-azure-key" not in str(info.value)


# ------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"deployment": None}, "set deployment"),
        ({"auth": "entra"}, "remove api_key or auth"),
        ({"api_version": "2024-10"}, "api_version"),
        ({"endpoint": None}, "endpoint"),
        ({"auth": "aad"}, "auth"),
    ],
    ids=["no-deployment", "entra-and-key", "bad-version", "no-endpoint", "bad-auth"],
)
def test_config_refuses_what_cannot_work(
    sim: SimServer, overrides: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        _config(sim, **overrides)
    assert complaint in str(raised.value)


def test_config_takes_model_as_the_deployment_name(sim: SimServer) -> None:
    config = _config(sim, deployment=None, model="prod-4o")
    assert isinstance(config, AzureOpenAIConfig)
    assert config.deployment_name == "prod-4o"
    named = _config(sim, deployment="prod-4o")
    assert named.model == "prod-4o"


async def test_the_config_rolecall_sim_prints_for_azure_answers(sim: SimServer) -> None:
    from rolecall.cli.sim import config_snippet
    from rolecall.config.load import load_config_text
    from rolecall.routing.router import Router

    config = load_config_text(config_snippet([sim], KEY, "sim-model"))
    async with Router(config) as router:
        reply = await router.complete("coder", "hi")
    assert (reply.provider, reply.text) == ("sim-azure-openai", REPLY)
    assert sim.requests[-1].path == "/openai/deployments/sim-model/chat/completions"
