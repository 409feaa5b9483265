"""The Vertex AI adapter against the Vertex sim: every fault kind, whole and streamed, tools
and images, the token on every call, and the credential check that spends no tokens.

One table: fault -> the ErrorKind a user's router sees and the wait it is told to honour,
with the access token never showing in an error even when the server echoes it.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from google_credentials import TOKEN, FakeCredentials
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers import build_provider
from rolecall.providers.vertex import VertexProvider
from rolecall.sim import Fault, SimServer
from rolecall.types import ChatRequest, Chunk, ImagePart, Message, TextPart

REPLY = "The plan has three clear steps."
PROJECT, LOCATION = "sim-project", "europe-west4"
MODEL_PATH = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/sim-model"
REQUEST = ChatRequest(
    messages=(Message("system", "Be brief."), Message("user", "Plan the work.")),
    params={"temperature": 0.2, "max_tokens": 200},
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
E = ErrorKind

# (row id, fault, expected kind, expected retry_after or None)
ROWS: list[tuple[str, Fault, ErrorKind, float | None]] = [
    ("auth", Fault("auth"), E.AUTH, None),
    ("auth-expired", Fault("auth", variant="expired"), E.AUTH, None),
    ("permission", Fault("permission"), E.PERMISSION, None),
    ("region", Fault("region"), E.NOT_FOUND, None),
    ("not_found", Fault("not_found"), E.NOT_FOUND, None),
    ("quota-billing-disabled", Fault("quota"), E.QUOTA, None),
    ("quota-with-retry-hint", Fault("quota", retry_after=30), E.QUOTA, None),
    ("rate_limit-no-hint", Fault("rate_limit"), E.RATE_LIMIT, None),
    ("rate_limit-retry-info", Fault("rate_limit", retry_after=2), E.RATE_LIMIT, 2.0),
    ("rate_limit-fraction", Fault("rate_limit", retry_after=1.5), E.RATE_LIMIT, 1.5),
    (
        "rate_limit-quota-metric",
        Fault("rate_limit", variant="quota_metric"),
        E.RATE_LIMIT,
        None,
    ),
    ("overloaded", Fault("overloaded"), E.OVERLOADED, None),
    ("server-500", Fault("server"), E.SERVER, None),
    ("server-502-html", Fault("server", status=502), E.SERVER, None),
    ("server-503", Fault("server", status=503), E.OVERLOADED, None),
    ("server-504", Fault("server", status=504), E.SERVER, None),
    ("reset", Fault("reset"), E.NETWORK, None),
    ("malformed", Fault("malformed"), E.BAD_RESPONSE, None),
    ("empty", Fault("empty"), E.BAD_RESPONSE, None),
    ("context_length", Fault("context_length"), E.CONTEXT_LENGTH, None),
    ("content_filter", Fault("content_filter"), E.CONTENT_FILTER, None),
    ("content_filter-prompt", Fault("content_filter", variant="prompt"), E.CONTENT_FILTER, None),
    (
        "content_filter-prohibited",
        Fault("content_filter", variant="prohibited"),
        E.CONTENT_FILTER,
        None,
    ),
    ("bad_request", Fault("bad_request"), E.BAD_REQUEST, None),
    ("bad_request-422", Fault("bad_request", status=422), E.BAD_REQUEST, None),
    ("stream_error", Fault("stream_error"), E.NETWORK, None),
    ("array_error-429", Fault("openai_array_error"), E.RATE_LIMIT, None),
    ("array_error-400", Fault("openai_array_error", status=400), E.BAD_REQUEST, None),
]
HANG_ROWS: list[tuple[str, Fault, str]] = [
    ("timeout-complete", Fault("timeout", delay=5), "complete"),
    ("timeout-stream", Fault("timeout", delay=5), "stream"),
    ("stall-stream", Fault("stall", delay=5), "stream"),
    ("stall-stream-after-chunks", Fault("stall", delay=5, after_chunks=2), "stream"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer("vertex", api_key=TOKEN, reply=REPLY) as sim:
        yield sim


@pytest.fixture
def sim(server: SimServer) -> SimServer:
    server.clear()
    server.reset_stats()
    server.responder = None
    server.api_key = TOKEN
    return server


def _config(sim: SimServer, **overrides: Any) -> ProviderConfig:
    values: dict[str, Any] = {
        "type": "vertex",
        "model": "sim-model",
        "project": PROJECT,
        "location": LOCATION,
        "endpoint": sim.base_url,
        "timeout": 5,
    }
    values.update(overrides)
    return ProviderConfig.model_validate(values)


def _provider(sim: SimServer, credentials: Any = None, **overrides: Any) -> VertexProvider:
    config = _config(sim, **overrides)
    return VertexProvider("sim-vertex", config, credentials=credentials or FakeCredentials())  # type: ignore[arg-type]


@pytest.fixture
async def adapter(sim: SimServer) -> AsyncIterator[VertexProvider]:
    provider = _provider(sim)
    yield provider
    await provider.aclose()


async def _collect(provider: VertexProvider, request: ChatRequest = REQUEST) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]


async def _run(provider: VertexProvider, mode: str, request: ChatRequest = REQUEST) -> Any:
    if mode == "complete":
        return await provider.complete(request)
    return await _collect(provider, request)


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("fault", "kind", "wait"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
async def test_fault_is_classified(
    sim: SimServer,
    adapter: VertexProvider,
    mode: str,
    fault: Fault,
    kind: ErrorKind,
    wait: float | None,
) -> None:
    sim.script(Fault(**{**fault.__dict__, "echo_key": True}))
    with pytest.raises(ProviderError) as info:
        await _run(adapter, mode)
    error = info.value
    assert error.kind is kind, error
    if wait is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(wait, abs=0.01)
    assert error.provider == "sim-vertex"
    assert TOKEN not in str(error) and TOKEN not in repr(error)
    assert error.message and len(error.message) < 400
    assert sim.calls == 1  # adapters never retry


@pytest.mark.parametrize(("name", "fault", "mode"), HANG_ROWS, ids=[row[0] for row in HANG_ROWS])
async def test_silence_is_a_timeout(sim: SimServer, name: str, fault: Fault, mode: str) -> None:
    provider = _provider(sim, timeout=1.0)
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
    assert len(received) == (fault.after_chunks if mode == "stream" else 0)


async def test_stream_error_after_content_keeps_what_arrived(
    sim: SimServer, adapter: VertexProvider
) -> None:
    sim.script(Fault("stream_error", after_chunks=2))
    received: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in adapter.stream(REQUEST):
            received.append(chunk)
    assert info.value.kind is ErrorKind.NETWORK
    assert "".join(c.text for c in received) == "The plan"


# ----------------------------------------------------------------------- good answers


async def test_complete_sends_gemini_s_body_to_the_project_path(
    sim: SimServer, adapter: VertexProvider
) -> None:
    completion = await adapter.complete(REQUEST)
    assert completion.text == REPLY and completion.finish_reason == "stop"
    assert completion.usage.input_tokens == 5
    assert completion.usage.output_tokens == len(REPLY.split())
    sent = sim.requests[-1]
    assert sent.path == f"{MODEL_PATH}:generateContent"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in sent.headers
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.json["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 200}


async def test_stream_concatenates_and_ends_with_usage(
    sim: SimServer, adapter: VertexProvider
) -> None:
    chunks = await _collect(adapter)
    assert "".join(c.text for c in chunks) == REPLY
    assert len(chunks) > 2
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert last.usage.output_tokens == len(REPLY.split())
    sent = sim.requests[-1]
    assert sent.path == f"{MODEL_PATH}:streamGenerateContent"
    assert sent.query == {"alt": "sse"}


async def test_the_quota_project_of_the_credentials_is_named(sim: SimServer) -> None:
    provider = _provider(sim, FakeCredentials(quota_project_id="billing-project"))
    try:
        await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert sim.requests[-1].headers["x-goog-user-project"] == "billing-project"


async def test_tool_calls_come_back_whole_and_streamed(
    sim: SimServer, adapter: VertexProvider
) -> None:
    sim.responder = lambda body: {
        "text": "",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
    }
    request = ChatRequest(messages=(Message("user", "Weather in Paris?"),), params={"tools": TOOLS})
    completion = await adapter.complete(request)
    (call,) = completion.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert completion.finish_reason == "tool_calls"
    declared = sim.requests[-1].json["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather"
    chunks = await _collect(adapter, request)
    deltas = [d for chunk in chunks for d in chunk.tool_calls]
    assert [(d.name, json.loads(d.arguments)) for d in deltas] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert chunks[-1].finish_reason == "tool_calls"


async def test_a_strict_tool_goes_without_validated_mode_which_v1_lacks(
    sim: SimServer, adapter: VertexProvider
) -> None:
    strict = [{**TOOLS[0], "function": {**TOOLS[0]["function"], "strict": True}}]
    request = ChatRequest(messages=(Message("user", "Weather?"),), params={"tools": strict})
    await adapter.complete(request)
    assert "toolConfig" not in sim.requests[-1].json  # best effort: AUTO, as documented


async def test_an_image_is_sent_inline(sim: SimServer, adapter: VertexProvider) -> None:
    parts = (TextPart("What is this?"), ImagePart(f"data:image/png;base64,{PNG}"))
    message = Message("user", "What is this?", parts=parts)
    completion = await adapter.complete(ChatRequest(messages=(message,)))
    assert completion.text == REPLY
    sent_parts = sim.requests[-1].json["contents"][0]["parts"]
    assert {"inlineData": {"mimeType": "image/png", "data": PNG}} in sent_parts


# ------------------------------------------------------------------ the token


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_token_expiring_mid_run_is_renewed_and_the_run_goes_on(sim: SimServer) -> None:
    clock = Clock()
    credentials = FakeCredentials(["ya29.first", "ya29.second"], clock=clock)
    config = _config(sim)
    provider = VertexProvider("sim-vertex", config, credentials=credentials, clock=clock)  # type: ignore[arg-type]
    sim.api_key = "ya29.first"
    try:
        assert (await provider.complete(REQUEST)).text == REPLY
        clock.now += 1800
        assert "".join(c.text for c in await _collect(provider)) == REPLY
        # An hour on, the first token has expired at Google: it must not be sent again.
        clock.now += 1800
        sim.api_key = "ya29.second"
        assert (await provider.complete(REQUEST)).text == REPLY
    finally:
        await provider.aclose()
    assert [r.api_key for r in sim.requests] == ["ya29.first"] * 2 + ["ya29.second"]
    assert credentials.refreshes == 2


async def test_refresh_failure_is_an_auth_error_and_nothing_is_sent(sim: SimServer) -> None:
    from google.auth.exceptions import RefreshError

    credentials = FakeCredentials(error=RefreshError("invalid_grant: Token has been revoked."))
    provider = _provider(sim, credentials)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert "gcloud auth application-default login" in str(info.value)
    assert sim.requests == []


async def test_a_token_server_that_never_answers_times_out_at_the_provider_timeout(
    sim: SimServer,
) -> None:
    class Hanging(FakeCredentials):  # type: ignore[misc]
        """google-auth's refresh waits up to 120 s on a token server that does not answer."""

        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()

        def refresh(self, request: Any) -> None:
            self.release.wait(30)
            super().refresh(request)

    credentials = Hanging()
    provider = _provider(sim, credentials, timeout=0.3)
    try:
        for call in ("complete", "stream"):
            with pytest.raises(ProviderError) as info:
                await _run(provider, call)
            assert info.value.kind is ErrorKind.TIMEOUT, call
            assert "no credentials within the timeout (0.3 s)" in info.value.message
    finally:
        credentials.release.set()
        await provider.aclose()
    assert sim.requests == []


async def test_a_fixed_token_in_api_key_needs_no_credentials(sim: SimServer) -> None:
    provider = build_provider("fixed", _config(sim, api_key=TOKEN))
    try:
        assert (await provider.complete(REQUEST)).text == REPLY
    finally:
        await provider.aclose()
    assert sim.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_without_google_auth_building_names_the_extra(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "google", None)
    with pytest.raises(MissingExtra, match=r"pip install 'rolecall\[vertex\]'"):
        build_provider("adc", _config(sim))


# ------------------------------------------------------------------ credential check


async def test_check_credentials_counts_tokens_and_spends_none(
    sim: SimServer, adapter: VertexProvider
) -> None:
    await adapter.check_credentials()
    assert (sim.calls, sim.model_calls) == (0, 1)
    assert sim.requests[-1].path == f"{MODEL_PATH}:countTokens"


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault("auth"), ErrorKind.AUTH),
        (Fault("permission"), ErrorKind.PERMISSION),
        (Fault("quota"), ErrorKind.QUOTA),
        (Fault("overloaded"), ErrorKind.OVERLOADED),
    ],
)
async def test_check_credentials_meets_what_a_call_would(
    sim: SimServer, adapter: VertexProvider, fault: Fault, kind: ErrorKind
) -> None:
    sim.script_models(fault)
    with pytest.raises(ProviderError) as info:
        await adapter.check_credentials()
    assert info.value.kind is kind
    assert sim.calls == 0


async def test_check_credentials_unknown_model_names_it(sim: SimServer) -> None:
    provider = _provider(sim, model="sim-modle")
    try:
        with pytest.raises(ProviderError) as info:
            await provider.check_credentials()
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.NOT_FOUND
    assert "sim-modle" in str(info.value)
