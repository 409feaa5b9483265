"""The real adapters against the fake vendor servers (rolecall.sim), every fault kind.

One table: protocol x (complete, stream) x fault -> the ErrorKind a user's router sees,
the wait it is told to honour, and the key never showing in the error even when the
server echoes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import HTTPProvider
from rolecall.sim import Fault, SimServer
from rolecall.types import ChatRequest, Chunk, Completion, Message

KEY = "sk-sim-adapter-secret-0123456789"
REPLY = "The plan has three clear steps."
PROTOCOLS = ("openai", "anthropic", "google")
TYPES = {"openai": "openai", "anthropic": "anthropic", "google": "google"}
REQUEST = ChatRequest(
    messages=(Message("system", "Be brief."), Message("user", "Plan the work.")),
    params={"temperature": 0.2, "max_tokens": 200},
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
    "required": ["steps"],
}

E = ErrorKind


def every(kind: ErrorKind) -> dict[str, ErrorKind]:
    return dict.fromkeys(PROTOCOLS, kind)


# (row id, fault, expected kind per protocol, expected retry_after or None)
ROWS: list[tuple[str, Fault, dict[str, ErrorKind], float | None]] = [
    ("auth", Fault("auth"), every(E.AUTH), None),
    ("permission", Fault("permission"), every(E.PERMISSION), None),
    ("region", Fault("region"), every(E.PERMISSION), None),
    ("not_found", Fault("not_found"), every(E.NOT_FOUND), None),
    ("quota", Fault("quota"), every(E.QUOTA), None),
    ("quota-with-retry-hint", Fault("quota", retry_after=30), every(E.QUOTA), None),
    ("quota-spend-limit", Fault("quota", variant="spend_limit"), every(E.QUOTA), None),
    ("quota-prepay-depleted", Fault("quota", variant="prepay"), every(E.QUOTA), None),
    ("rate_limit", Fault("rate_limit", retry_after=2), every(E.RATE_LIMIT), 2.0),
    ("rate_limit-fraction", Fault("rate_limit", retry_after=1.5), every(E.RATE_LIMIT), 1.5),
    ("overloaded", Fault("overloaded"), every(E.OVERLOADED), None),
    ("server-500", Fault("server"), every(E.SERVER), None),
    ("server-502-html", Fault("server", status=502), every(E.SERVER), None),
    ("server-504", Fault("server", status=504), every(E.SERVER), None),
    ("reset", Fault("reset"), every(E.NETWORK), None),
    ("malformed", Fault("malformed"), every(E.BAD_RESPONSE), None),
    ("empty", Fault("empty"), every(E.BAD_RESPONSE), None),
    ("context_length", Fault("context_length"), every(E.CONTEXT_LENGTH), None),
    (
        "context_length-llama.cpp",
        Fault("context_length", variant="llama.cpp"),
        every(E.CONTEXT_LENGTH),
        None,
    ),
    ("content_filter", Fault("content_filter"), every(E.CONTENT_FILTER), None),
    (
        "content_filter-prompt",
        Fault("content_filter", variant="prompt"),
        every(E.CONTENT_FILTER),
        None,
    ),
    (
        "content_filter-prohibited",
        Fault("content_filter", variant="prohibited"),
        every(E.CONTENT_FILTER),
        None,
    ),
    ("bad_request", Fault("bad_request"), every(E.BAD_REQUEST), None),
    ("bad_request-422", Fault("bad_request", status=422), every(E.BAD_REQUEST), None),
    (
        "stream_error",
        Fault("stream_error"),
        {"openai": E.NETWORK, "anthropic": E.OVERLOADED, "google": E.NETWORK},
        None,
    ),
    (
        "openai_array_error-429",
        Fault("openai_array_error"),
        {"openai": E.RATE_LIMIT, "google": E.RATE_LIMIT},
        None,
    ),
    (
        "openai_array_error-400",
        Fault("openai_array_error", status=400),
        {"openai": E.BAD_REQUEST, "google": E.BAD_REQUEST},
        None,
    ),
]
# (row id, fault, mode): silence before the answer, or in the middle of a stream.
HANG_ROWS: list[tuple[str, Fault, str]] = [
    ("timeout-complete", Fault("timeout", delay=5), "complete"),
    ("timeout-stream", Fault("timeout", delay=5), "stream"),
    ("stall-stream", Fault("stall", delay=5), "stream"),
    ("stall-stream-after-chunks", Fault("stall", delay=5, after_chunks=2), "stream"),
]


def _cases() -> list[Any]:
    return [
        pytest.param(protocol, mode, fault, kind, wait, id=f"{protocol}-{mode}-{name}")
        for name, fault, expected, wait in ROWS
        for protocol, kind in expected.items()
        for mode in ("complete", "stream")
    ]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SimServer]]:
    started = {p: SimServer(p, api_key=KEY, reply=REPLY).start() for p in PROTOCOLS}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


def _fresh(server: SimServer) -> SimServer:
    server.clear()
    server.reset_stats()
    server.responder = None
    return server


def _provider(server: SimServer, **overrides: Any) -> HTTPProvider:
    values: dict[str, Any] = {
        "type": TYPES[server.protocol],
        "model": "sim-model",
        "api_key": KEY,
        "base_url": server.base_url,
        "timeout": 5,
    }
    values.update(overrides)
    provider = build_provider("sim-" + server.protocol, ProviderConfig.model_validate(values))
    assert isinstance(provider, HTTPProvider)
    return provider


@pytest.fixture
async def adapters(servers: dict[str, SimServer]) -> AsyncIterator[dict[str, HTTPProvider]]:
    made = {p: _provider(_fresh(s)) for p, s in servers.items()}
    yield made
    for provider in made.values():
        await provider.aclose()


async def _collect(provider: HTTPProvider, request: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]  # type: ignore[attr-defined]


async def _run(provider: HTTPProvider, mode: str, request: ChatRequest = REQUEST) -> Any:
    if mode == "complete":
        return await provider.complete(request)  # type: ignore[attr-defined]
    return await _collect(provider, request)


def _assert_clean(error: ProviderError, provider: HTTPProvider) -> None:
    assert error.provider == provider.id
    for text in (str(error), repr(error), error.message):
        assert KEY not in text
        assert KEY[:12] not in text
    assert error.message and len(error.message) < 400


@pytest.mark.parametrize(("protocol", "mode", "fault", "kind", "wait"), _cases())
async def test_fault_is_classified(
    servers: dict[str, SimServer],
    adapters: dict[str, HTTPProvider],
    protocol: str,
    mode: str,
    fault: Fault,
    kind: ErrorKind,
    wait: float | None,
) -> None:
    server, provider = servers[protocol], adapters[protocol]
    server.script(Fault(**{**fault.__dict__, "echo_key": True}))
    with pytest.raises(ProviderError) as info:
        await _run(provider, mode)
    error = info.value
    assert error.kind is kind, error
    assert error.retryable is kind.retryable
    if wait is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(wait, abs=0.01)
    _assert_clean(error, provider)
    assert server.calls == 1  # adapters never retry


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_retry_after_as_http_date(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str, mode: str
) -> None:
    servers[protocol].script(Fault("rate_limit", retry_after=3, variant="http_date"))
    with pytest.raises(ProviderError) as info:
        await _run(adapters[protocol], mode)
    assert info.value.kind is ErrorKind.RATE_LIMIT
    assert info.value.retry_after is not None
    assert 1.0 <= info.value.retry_after <= 4.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("name", "fault", "mode"), HANG_ROWS, ids=[row[0] for row in HANG_ROWS])
async def test_silence_is_a_timeout(
    servers: dict[str, SimServer], protocol: str, name: str, fault: Fault, mode: str
) -> None:
    server = _fresh(servers[protocol])
    provider = _provider(server, timeout=1.0)
    server.script(fault)
    received: list[str] = []
    try:
        with pytest.raises(ProviderError) as info:
            if mode == "complete":
                await provider.complete(REQUEST)  # type: ignore[attr-defined]
            else:
                async for chunk in provider.stream(REQUEST):  # type: ignore[attr-defined]
                    received.append(chunk.text)
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.TIMEOUT
    if mode == "stream":
        assert len(received) == fault.after_chunks


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_error_after_content_keeps_what_arrived(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str
) -> None:
    servers[protocol].script(Fault("stream_error", after_chunks=2))
    received: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in adapters[protocol].stream(REQUEST):  # type: ignore[attr-defined]
            received.append(chunk)
    expected = ErrorKind.OVERLOADED if protocol == "anthropic" else ErrorKind.NETWORK
    assert info.value.kind is expected
    assert "".join(c.text for c in received) == "The plan"
    assert all(c.usage is None for c in received)


# ----------------------------------------------------------------------- good answers


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_complete_parses_text_usage_and_finish(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str
) -> None:
    completion = await adapters[protocol].complete(REQUEST)  # type: ignore[attr-defined]
    assert isinstance(completion, Completion)
    assert completion.text == REPLY
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == 5  # "Be brief." + "Plan the work."
    assert completion.usage.output_tokens == len(REPLY.split())
    assert completion.model.startswith("sim-model")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_concatenates_and_ends_with_usage(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str
) -> None:
    chunks = await _collect(adapters[protocol], REQUEST)
    assert "".join(c.text for c in chunks) == REPLY
    assert len(chunks) > 2  # really streamed, not one block
    *pieces, last = chunks
    assert all(c.usage is None and c.finish_reason is None for c in pieces)
    assert last.text == ""
    assert last.finish_reason == "stop"
    assert last.usage is not None
    assert last.usage.input_tokens == 5
    assert last.usage.output_tokens == len(REPLY.split())


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_client_is_reused_across_calls(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str
) -> None:
    provider = adapters[protocol]
    await provider.complete(REQUEST)  # type: ignore[attr-defined]
    client = provider.client
    await _collect(provider, REQUEST)
    await provider.complete(REQUEST)  # type: ignore[attr-defined]
    assert provider.client is client
    assert servers[protocol].calls == 3


async def test_openai_request_shape(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider]
) -> None:
    await _collect(adapters["openai"], REQUEST)
    sent = servers["openai"].requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["max_completion_tokens"] == 200 and "max_tokens" not in sent.json
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_anthropic_request_shape(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider]
) -> None:
    await adapters["anthropic"].complete(ChatRequest(messages=REQUEST.messages))  # type: ignore[attr-defined]
    sent = servers["anthropic"].requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json["system"] == "Be brief."
    assert sent.json["messages"] == [{"role": "user", "content": "Plan the work."}]
    assert sent.json["max_tokens"] == 4096


async def test_google_request_shape_keeps_key_out_of_url(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider]
) -> None:
    await _collect(adapters["google"], REQUEST)
    sent = servers["google"].requests[-1]
    assert sent.path == "/v1beta/models/sim-model:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.json["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 200}


async def test_openai_compatible_without_key_sends_no_authorization() -> None:
    with SimServer("openai", api_key=None, reply=REPLY) as server:
        provider = _provider(server, type="openai-compatible", api_key=None)
        try:
            completion = await provider.complete(REQUEST)  # type: ignore[attr-defined]
        finally:
            await provider.aclose()
    assert completion.text == REPLY
    sent = server.requests[-1]
    assert "authorization" not in sent.headers
    assert sent.json["max_tokens"] == 200 and "max_completion_tokens" not in sent.json


# ------------------------------------------------------------------ structured output


@pytest.mark.parametrize("protocol", ["openai", "google"])
@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_structured_output_is_json(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str, mode: str
) -> None:
    request = ChatRequest(messages=REQUEST.messages, response_schema=SCHEMA)
    result = await _run(adapters[protocol], mode, request)
    text = result.text if mode == "complete" else "".join(c.text for c in result)
    assert text.replace(" ", "") == '{"steps":[]}'


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_structured_output_that_is_not_json_is_a_bad_response(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str, mode: str
) -> None:
    servers[protocol].responder = lambda body: "Sure! Here are the steps: 1, 2, 3."
    request = ChatRequest(messages=REQUEST.messages, response_schema=SCHEMA)
    with pytest.raises(ProviderError) as info:
        await _run(adapters[protocol], mode, request)
    assert info.value.kind is ErrorKind.BAD_RESPONSE


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_anthropic_structured_output_sends_one_forced_tool(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], mode: str
) -> None:
    # The sim answers in text; a JSON text answer is accepted as the structured reply.
    servers["anthropic"].responder = lambda body: '{"steps": ["a", "b"]}'
    request = ChatRequest(messages=REQUEST.messages, response_schema=SCHEMA)
    result = await _run(adapters["anthropic"], mode, request)
    text = result.text if mode == "complete" else "".join(c.text for c in result)
    assert text == '{"steps": ["a", "b"]}'
    sent = servers["anthropic"].requests[-1].json
    assert sent["tools"][0]["name"] == "respond"
    assert sent["tools"][0]["input_schema"] == SCHEMA
    assert sent["tool_choice"] == {"type": "tool", "name": "respond"}


# ------------------------------------------------------------------ credential check


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_check_credentials_ok_spends_no_tokens(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str
) -> None:
    await adapters[protocol].check_credentials()  # type: ignore[attr-defined]
    server = servers[protocol]
    assert server.calls == 0
    assert server.model_calls == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_check_credentials_bad_key(servers: dict[str, SimServer], protocol: str) -> None:
    wrong = "sk-wrong-key-for-the-sim-987654"
    provider = _provider(_fresh(servers[protocol]), api_key=wrong)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.check_credentials()  # type: ignore[attr-defined]
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTH
    assert wrong not in str(info.value) and wrong not in repr(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_check_credentials_unknown_model(
    servers: dict[str, SimServer], protocol: str
) -> None:
    provider = _provider(_fresh(servers[protocol]), model="sim-modle")
    try:
        with pytest.raises(ProviderError) as info:
            await provider.check_credentials()  # type: ignore[attr-defined]
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.NOT_FOUND
    assert "sim-modle" in str(info.value)
    assert servers[protocol].calls == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_check_credentials_server_down(
    servers: dict[str, SimServer], adapters: dict[str, HTTPProvider], protocol: str
) -> None:
    servers[protocol].set_faults(Fault("overloaded"))
    try:
        with pytest.raises(ProviderError) as info:
            await adapters[protocol].check_credentials()  # type: ignore[attr-defined]
    finally:
        servers[protocol].clear()
    assert info.value.kind is ErrorKind.OVERLOADED


async def test_connection_refused_is_network() -> None:
    with SimServer("openai", api_key=KEY) as server:
        base = server.base_url
    provider = _provider_at(base)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)  # type: ignore[attr-defined]
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.NETWORK


def _provider_at(base_url: str) -> HTTPProvider:
    config = ProviderConfig.model_validate(
        {"type": "openai", "model": "m", "api_key": KEY, "base_url": base_url, "timeout": 2}
    )
    provider = build_provider("gone", config)
    assert isinstance(provider, HTTPProvider)
    return provider
