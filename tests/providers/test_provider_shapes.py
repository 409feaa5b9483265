"""Vendor answer shapes the fake servers do not produce, served by a real local HTTP server.

Each provider is built with ``base_url`` pointing at its own server on 127.0.0.1 (port 0),
so the adapter's own HTTP engine makes every request. Covers tool-use answers, thinking
parts, refusals, streams that end without their final event, errors inside a stream,
model lists with aliases and pagination, a redirect that must not be followed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import HTTPProvider
from rolecall.sim._http import Exchange, Handler, HttpRequest, HttpServer
from rolecall.types import ChatRequest, Chunk, Message

REQUEST = ChatRequest(messages=(Message("user", "hi"),))
SCHEMA = {"type": "object", "properties": {"steps": {"type": "array"}}}
JSON_HEADERS = [("content-type", "application/json")]
SSE_HEADERS = [("content-type", "text/event-stream")]


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server sends back: a list body goes out chunked, one chunk per item."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | list[bytes] = b""


Reply = Callable[[HttpRequest], Answer]


class Vendors:
    """Builds providers, each against its own local server; closes them all at the end."""

    def __init__(self) -> None:
        self._servers: list[HttpServer] = []
        self._providers: list[HTTPProvider] = []
        # A failed check inside a reply (answered as a 500) is re-raised at teardown.
        self.failures: list[BaseException] = []

    async def __call__(self, type_: str, reply: Reply, model: str = "m") -> HTTPProvider:
        server = HttpServer(self._handler(reply))
        self._servers.append(server)
        root = f"http://127.0.0.1:{await server.open('127.0.0.1', 0)}"
        # OpenAI-style base URLs carry the version; Anthropic and Gemini add theirs.
        base_url = f"{root}/v1" if type_.startswith("openai") else root
        config = ProviderConfig.model_validate(
            {"type": type_, "model": model, "api_key": "sk-shape-key-123456", "base_url": base_url}
        )
        provider = build_provider("p", config)
        assert isinstance(provider, HTTPProvider)
        self._providers.append(provider)
        return provider

    def _handler(self, reply: Reply) -> Handler:
        async def handle(request: HttpRequest, exchange: Exchange) -> None:
            try:
                answer = reply(request)
            except Exception as exc:
                self.failures.append(exc)
                await exchange.respond(500, JSON_HEADERS, b'{"error": "reply failed"}')
                return
            if isinstance(answer.body, bytes):
                await exchange.respond(answer.status, answer.headers, answer.body)
                return
            exchange.start(answer.status, answer.headers)
            for part in answer.body:
                exchange.send(part)
                await exchange.flush()
            await exchange.end()

        return handle

    async def close(self) -> None:
        for provider in self._providers:
            await provider.aclose()
        for server in self._servers:
            await server.close()


@pytest.fixture
async def vendor() -> AsyncIterator[Vendors]:
    vendors = Vendors()
    try:
        yield vendors
    finally:
        await vendors.close()
    if vendors.failures:
        raise vendors.failures[0]


def sse(*events: Any) -> Reply:
    parts: list[bytes] = []
    for event in events:
        if isinstance(event, tuple):
            name, data = event
            parts.append(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        else:
            text = event if isinstance(event, str) else json.dumps(event)
            parts.append(f"data: {text}\n\n".encode())
    return lambda request: Answer(200, [("content-type", "text/event-stream")], parts)


def answer(obj: Any, status: int = 200) -> Reply:
    body = json.dumps(obj).encode()
    return lambda request: Answer(status, JSON_HEADERS, body)


async def collect(provider: HTTPProvider, request: ChatRequest = REQUEST) -> list[Chunk]:
    try:
        return [c async for c in provider.stream(request)]  # type: ignore[attr-defined]
    finally:
        await provider.aclose()


async def complete(provider: HTTPProvider, request: ChatRequest = REQUEST) -> Any:
    try:
        return await provider.complete(request)  # type: ignore[attr-defined]
    finally:
        await provider.aclose()


async def failure(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await call
    return info.value


def oa_chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# ----------------------------------------------------------------------------- OpenAI


async def test_openai_stream_cut_before_finish_is_network(vendor: Vendors) -> None:
    provider = await vendor("openai", sse(oa_chunk("Hel"), oa_chunk("lo")))
    error = await failure(collect(provider))
    assert error.kind is ErrorKind.NETWORK
    assert "5 characters" in error.message


async def test_openai_stream_fields_of_the_wrong_shape(vendor: Vendors) -> None:
    odd = {"model": 5, "choices": [{"index": 0, "delta": [1]}]}
    events = sse(odd, oa_chunk("Hi"), oa_chunk(finish="stop"), "[DONE]")
    chunks = await collect(await vendor("openai", events))
    assert ("".join(c.text for c in chunks), chunks[-1].model) == ("Hi", "m")
    provider = await vendor("openai", sse({"choices": {"a": 1}}, "[DONE]"))
    error = await failure(collect(provider))
    assert (error.kind, error.message) == (
        ErrorKind.BAD_RESPONSE,
        "stream chunk's choices is not a list of objects",
    )


async def test_openai_stream_with_finish_but_no_done_is_accepted(vendor: Vendors) -> None:
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    provider = await vendor(
        "openai-compatible", sse(oa_chunk("Hi"), oa_chunk(finish="length"), usage)
    )
    chunks = await collect(provider)
    assert [c.text for c in chunks] == ["Hi", ""]
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 2


async def test_openai_error_inside_stream(vendor: Vendors) -> None:
    error_event = {"error": {"message": "The server had an error.", "type": "server_error"}}
    provider = await vendor("openai", sse(oa_chunk("Hi"), error_event))
    error = await failure(collect(provider))
    assert error.kind is ErrorKind.SERVER
    assert error.message == "The server had an error."


async def test_openai_refusal_is_content_filter(vendor: Vendors) -> None:
    body = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't help."},
                "finish_reason": "stop",
            }
        ],
    }
    error = await failure(complete(await vendor("openai", answer(body))))
    assert error.kind is ErrorKind.CONTENT_FILTER
    stream = sse(oa_chunk(refusal="I can't"), oa_chunk(finish="stop"), "[DONE]")
    error = await failure(collect(await vendor("openai", stream)))
    assert error.kind is ErrorKind.CONTENT_FILTER


@pytest.mark.parametrize("body", [{"choices": []}, {"choices": [{"index": 0}]}, [1, 2], {}])
async def test_openai_missing_fields_are_bad_response(body: Any, vendor: Vendors) -> None:
    error = await failure(complete(await vendor("openai", answer(body))))
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_json_error_on_a_200_stream_is_classified(vendor: Vendors) -> None:
    body = [
        {"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}
    ]
    error = await failure(collect(await vendor("openai-compatible", answer(body))))
    assert error.kind is ErrorKind.RATE_LIMIT


async def test_redirect_is_bad_response(vendor: Vendors) -> None:
    moved = Answer(301, [("location", "https://elsewhere/")])
    error = await failure(complete(await vendor("openai", lambda request: moved)))
    assert error.kind is ErrorKind.BAD_RESPONSE and error.status == 301


@pytest.mark.parametrize(
    ("model", "listed", "ok"),
    [
        ("llama3", [{"id": "llama3:latest", "owned_by": "library"}], True),  # Ollama tag
        ("any-name", [{"id": "/models/qwen.gguf", "owned_by": "llamacpp"}], True),  # llama.cpp
        ("gpt-4.1", [{"id": "gpt-4.1-mini"}, {"id": "gpt-4o"}], False),
    ],
)
async def test_openai_model_list_variants(
    model: str, listed: list[dict[str, str]], ok: bool, vendor: Vendors
) -> None:
    provider = await vendor(
        "openai-compatible", answer({"object": "list", "data": listed}), model=model
    )
    if ok:
        await provider.check_credentials()  # type: ignore[attr-defined]
        await provider.aclose()
    else:
        error = await failure(provider.check_credentials())  # type: ignore[attr-defined]
        await provider.aclose()
        assert error.kind is ErrorKind.NOT_FOUND
        assert "did you mean" in error.message and "gpt-4.1-mini" in error.message


# -------------------------------------------------------------------------- Anthropic


def claude_message(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "type": "message",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop,
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 90,
            "cache_creation_input_tokens": 0,
            "output_tokens": 4,
        },
    }


async def test_anthropic_tool_answer_is_returned_as_json_text(vendor: Vendors) -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "respond", "input": {"steps": ["a"]}}
    request = ChatRequest(messages=REQUEST.messages, response_schema=SCHEMA)
    result = await complete(
        await vendor("anthropic", answer(claude_message([tool], "tool_use"))), request
    )
    assert json.loads(result.text) == {"steps": ["a"]}
    assert result.finish_reason == "stop"
    assert result.usage.input_tokens == 100  # cached prompt tokens count as input


async def test_anthropic_tool_answer_streams_its_json(vendor: Vendors) -> None:
    start = {
        "type": "message_start",
        "message": {"model": "claude-x", "usage": {"input_tokens": 7}},
    }
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}}

    def delta(part: str) -> tuple[str, dict[str, Any]]:
        return (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "delta": {"type": "input_json_delta", "partial_json": part},
            },
        )

    events = sse(
        ("message_start", start),
        ("content_block_start", block),
        ("ping", {"type": "ping"}),
        delta(""),
        delta('{"steps": '),
        delta('["a"]}'),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    request = ChatRequest(messages=REQUEST.messages, response_schema=SCHEMA)
    chunks = await collect(await vendor("anthropic", events), request)
    assert "".join(c.text for c in chunks) == '{"steps": ["a"]}'
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.input_tokens, chunks[-1].usage.output_tokens) == (7, 9)


async def test_anthropic_stream_without_message_stop_is_network(vendor: Vendors) -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 1}}}
    text = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}
    events = sse(("message_start", start), ("content_block_delta", text))
    error = await failure(collect(await vendor("anthropic", events)))
    assert error.kind is ErrorKind.NETWORK


async def test_anthropic_stream_fields_of_the_wrong_shape_read_as_absent(vendor: Vendors) -> None:
    piece = {"type": "text_delta", "text": "Hi"}
    text = {"type": "content_block_delta", "index": 0, "delta": piece}
    events = sse(
        ("message_start", {"type": "message_start", "message": 5}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": "x"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": [1]}),
        ("content_block_delta", text),
        ("message_delta", {"type": "message_delta", "delta": "x", "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    )
    chunks = await collect(await vendor("anthropic", events))
    assert "".join(c.text for c in chunks) == "Hi"


async def test_anthropic_missing_content_is_bad_response(vendor: Vendors) -> None:
    error = await failure(complete(await vendor("anthropic", answer({"type": "message"}))))
    assert error.kind is ErrorKind.BAD_RESPONSE


@pytest.mark.parametrize(
    ("model", "ok"),
    [
        ("claude-sonnet-4-5", True),
        ("claude-sonnet-4-5-20250929", True),
        ("claude-3-7-sonnet-latest", True),
        ("claude-opus-4-1", True),  # on the second page
        ("claude-3", False),
        ("claude-sonnet-4-6", False),
    ],
)
async def test_anthropic_model_check_resolves_aliases_and_pages(
    model: str, ok: bool, vendor: Vendors
) -> None:
    pages = {
        None: {
            "data": [{"id": "claude-sonnet-4-5-20250929"}, {"id": "claude-3-7-sonnet-20250219"}],
            "has_more": True,
            "last_id": "claude-3-7-sonnet-20250219",
        },
        "claude-3-7-sonnet-20250219": {
            "data": [{"id": "claude-opus-4-1-20250805"}],
            "has_more": False,
            "last_id": "claude-opus-4-1-20250805",
        },
    }

    def handler(request: HttpRequest) -> Answer:
        assert request.path == "/v1/models"  # appended to base_url as given
        return answer(pages[request.query.get("after_id")])(request)

    provider = await vendor("anthropic", handler, model=model)
    try:
        if ok:
            await provider.check_credentials()  # type: ignore[attr-defined]
        else:
            error = await failure(provider.check_credentials())  # type: ignore[attr-defined]
            assert error.kind is ErrorKind.NOT_FOUND
    finally:
        await provider.aclose()


# ----------------------------------------------------------------------------- Gemini


def gemini_chunk(
    parts: list[dict[str, Any]], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-x", **extra}


async def test_gemini_skips_thoughts_and_counts_them_as_output(vendor: Vendors) -> None:
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 20}
    body = gemini_chunk(
        [{"text": "thinking...", "thought": True}, {"text": "Answer."}],
        "MAX_TOKENS",
        usageMetadata=usage,
    )
    result = await complete(await vendor("google", answer(body)))
    assert result.text == "Answer."
    assert result.finish_reason == "length"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (4, 23)
    assert result.model == "gemini-x"


async def test_gemini_stream_without_finish_reason_is_network(vendor: Vendors) -> None:
    events = sse(gemini_chunk([{"text": "Hel"}]), gemini_chunk([{"text": "lo"}]))
    error = await failure(collect(await vendor("google", events)))
    assert error.kind is ErrorKind.NETWORK


async def test_gemini_error_inside_stream(vendor: Vendors) -> None:
    error_chunk = {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    events = sse(gemini_chunk([{"text": "Hel"}]), error_chunk)
    error = await failure(collect(await vendor("google", events)))
    assert error.kind is ErrorKind.OVERLOADED and error.status == 503


@pytest.mark.parametrize(
    "finish", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"]
)
async def test_gemini_filter_finish_reasons(finish: str, vendor: Vendors) -> None:
    error = await failure(complete(await vendor("google", answer(gemini_chunk([], finish)))))
    assert error.kind is ErrorKind.CONTENT_FILTER
    assert finish in error.message


async def test_gemini_blocked_prompt_in_stream(vendor: Vendors) -> None:
    events = sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    error = await failure(collect(await vendor("google", events)))
    assert error.kind is ErrorKind.CONTENT_FILTER


async def test_gemini_no_candidates_is_bad_response(vendor: Vendors) -> None:
    error = await failure(complete(await vendor("google", answer({"usageMetadata": {}}))))
    assert error.kind is ErrorKind.BAD_RESPONSE


# ----------------------------------------------------------------------------- every vendor

ABSURD = 10**30  # more than a metrics store column holds (2**63)


def usage_answers(bad: int) -> dict[str, dict[str, Any]]:
    """A whole answer per vendor whose input count is ``bad`` and output count 7."""
    text = {"role": "assistant", "content": "Hi"}
    return {
        "openai": {
            "choices": [{"index": 0, "message": text, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": bad, "completion_tokens": 7},
        },
        "anthropic": {
            "content": [{"type": "text", "text": "Hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": bad, "output_tokens": 7, "cache_read_input_tokens": bad},
        },
        "google": gemini_chunk(
            [{"text": "Hi"}],
            "STOP",
            usageMetadata={"promptTokenCount": bad, "candidatesTokenCount": 7},
        ),
    }


@pytest.mark.parametrize("bad", [-5, ABSURD])
@pytest.mark.parametrize("type_", ["openai", "anthropic", "google"])
async def test_negative_or_absurd_token_counts_are_not_reported(
    type_: str, bad: int, vendor: Vendors
) -> None:
    result = await complete(await vendor(type_, answer(usage_answers(bad)[type_])))
    assert result.text == "Hi"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (0, 7)
    assert result.usage.cached_input_tokens == 0


@pytest.mark.parametrize("type_", ["openai", "anthropic", "google"])
async def test_a_stream_line_that_never_ends_is_a_bad_response(type_: str, vendor: Vendors) -> None:
    # 40 MB of one line with no newline: refused at 32 MB, the provider's fault.
    parts = [b"data: "] + [b"a" * 65536] * 640
    provider = await vendor(type_, lambda request: Answer(200, SSE_HEADERS, parts))
    error = await failure(collect(provider))
    assert error.kind is ErrorKind.BAD_RESPONSE
    assert "a line of the stream is over 32 MB" in error.message


@pytest.mark.parametrize("type_", ["openai", "anthropic", "google"])
async def test_a_whole_answer_to_a_stream_request_is_a_bad_response(
    type_: str, vendor: Vendors
) -> None:
    # A server that ignores "stream": true: its answer is not a failure of the server.
    body = usage_answers(3)[type_]
    error = await failure(collect(await vendor(type_, answer(body))))
    assert (error.kind, error.message) == (
        ErrorKind.BAD_RESPONSE,
        "expected an event stream, got JSON",
    )


@pytest.mark.parametrize("type_", ["openai", "anthropic", "google"])
async def test_a_web_page_answering_a_stream_request_is_a_bad_response(
    type_: str, vendor: Vendors
) -> None:
    # A base_url pointing at a web page (a login portal, a UI): not a broken connection to
    # retry, but the wrong server, and the error says what came back.
    page = b"<!doctype html><html><title>Sign in</title></html>"
    html = [("content-type", "text/html; charset=utf-8")]
    error = await failure(collect(await vendor(type_, lambda r: Answer(200, html, page))))
    assert error.kind is ErrorKind.BAD_RESPONSE
    assert error.message.startswith("expected an event stream, got an HTML page: <!doctype")
    assert "check base_url" in error.message


DEEP = b"[" * 100_000 + b"]" * 100_000  # JSON nested past Python's recursion limit


@pytest.mark.parametrize("type_", ["openai", "anthropic", "google"])
async def test_json_nested_too_deep_is_read_as_text(type_: str, vendor: Vendors) -> None:
    limited = [*JSON_HEADERS, ("retry-after", "7")]
    error = await failure(complete(await vendor(type_, lambda r: Answer(429, limited, DEEP))))
    assert (error.kind, error.retry_after) == (ErrorKind.RATE_LIMIT, 7.0)
    error = await failure(complete(await vendor(type_, lambda r: Answer(200, JSON_HEADERS, DEEP))))
    assert error.kind is ErrorKind.BAD_RESPONSE
    assert error.message.startswith("response is not JSON: [[[")
    error = await failure(collect(await vendor(type_, sse(DEEP.decode()))))
    assert error.kind is ErrorKind.BAD_RESPONSE
    assert error.message.startswith("stream event is not JSON: [[[")
