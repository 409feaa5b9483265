"""In-process runtimes for GGUF models: mistral.rs (default) and llama.cpp (optional).

Everything here blocks; :mod:`rolecall.providers.local` calls it from worker
threads. A model is loaded once per process and runtime and shared by every
provider that names the same file. Each loaded model owns one worker thread,
so requests to it run one at a time in arrival order: a small CPU model gains
nothing from interleaving, and queueing never fails a request.

Failures are raised as :class:`ProviderError` with an empty ``provider``; the
adapter fills in its id.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolecall.errors import ErrorKind, MissingExtra, ProviderError, RolecallError
from rolecall.providers._gguf import GgufInfo
from rolecall.providers._local_files import (
    RUNTIME_MODULES,
    check_model_file,
    runtime_available,
    verify_bundled_model,
)
from rolecall.providers._local_worker import Worker

__all__ = [
    "DEFAULT_CONTEXT",
    "RUNTIMES",
    "GenerationResult",
    "GenerationSettings",
    "LoadedModel",
    "MissingRuntime",
    "default_threads",
    "import_runtime",
    "load_model",
    "requantize_type",
    "require_runtime",
    "runtime_error",
    "runtime_failure",
]

RUNTIMES = ("mistralrs", "llama-cpp")
# Window when neither the config (context_size) nor the file says. mistral.rs otherwise uses the
# trained length (its cache grows as needed); llama.cpp reserves its cache up front, so there
# the window is also capped at this unless context_size asks for more.
DEFAULT_CONTEXT = 8192
# mistral.rs's prefix cache (finished sequences kept to reuse a shared prompt prefix) grows the
# process by ~11 MiB per call on CPU, whatever its size (measured with 0.9.5: 364 -> 827 MiB over
# 40 calls with a size of 1 or 4); off, memory stays flat at ~380 MiB.
_PREFIX_CACHE_SEQUENCES = 0
# GGUF file types (general.file_type) whose CPU kernels in mistral.rs 0.9.5 are scalar: Q4_1,
# Q4_1 with F16 parts, Q5_0, Q5_1. Measured on the bundled Q4_1 SmolLM2 (2 cores, AVX-512):
# prompt ~13 tokens/s and decode ~12 tokens/s as shipped; requantized to Q8_0 at load (+0.4 s,
# +100 MiB), prompt ~80-100 tokens/s and decode ~40-60 tokens/s (Q4_0, Q4K, Q6K: slower).
_SLOW_FILE_TYPES = frozenset({3, 4, 8, 9})
_REQUANTIZE_AUTO = "Q8_0"
# Template tokens per message and per prompt, added to the content's token count.
_MESSAGE_OVERHEAD, _PROMPT_OVERHEAD = 5, 3
# Past window * this many characters a message is first counted by its head alone: text
# averages well under this per token, so the head of a prompt that cannot fit overflows.
_CHARS_PER_TOKEN_BOUND = 16


class MissingRuntime(MissingExtra):
    """The configured runtime's package is not installed (or installed but broken)."""

    def __init__(self, runtime: str, broken: str | None = None) -> None:
        self.extra = "local"
        package = "llama-cpp-python" if runtime == "llama-cpp" else "mistralrs"
        if broken is not None:
            message = (
                f"the '{package}' package is installed but cannot be imported ({broken}): "
                f"reinstall it with its dependencies (pip install --force-reinstall {package})"
            )
        elif runtime == "llama-cpp":
            message = (
                "runtime 'llama-cpp' needs the 'llama-cpp-python' package: pip install "
                "llama-cpp-python (it compiles llama.cpp), or drop 'runtime' to use the default "
                "runtime: pip install 'rolecall[local]'"
            )
        else:
            message = "the embedded local model needs the 'mistralrs' package: " + (
                "pip install 'rolecall[local]'"
            )
        RolecallError.__init__(self, message)


log = logging.getLogger("rolecall.providers.local")


def default_threads() -> int:
    """Threads for the model when ``threads`` is not set: the cores free at load time.

    Free = usable cores minus the 1-minute load average, rounded, at least 1. A
    thread pool sized to every core stalls when one of them is taken (its threads
    wait for the slowest), so on a busy machine fewer threads finish sooner.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, cores - round(load)))


def require_runtime(runtime: str = "mistralrs") -> None:
    """Raise :class:`MissingRuntime` unless the runtime's package is installed."""
    if not runtime_available(runtime):
        raise MissingRuntime(runtime)


def import_runtime(runtime: str) -> Any:
    """Import the runtime's module; :class:`MissingRuntime` if it is not installed."""
    require_runtime(runtime)
    if runtime == "mistralrs":
        # Its logger reads RUST_LOG once, at import: keep INFO lines off the user's terminal
        # unless they asked for them.
        os.environ.setdefault("RUST_LOG", "error")
    try:
        return importlib.import_module(RUNTIME_MODULES[runtime])
    except ImportError as exc:
        raise MissingRuntime(runtime, _first_line(exc)) from exc


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class GenerationResult:
    finish_reason: str | None
    input_tokens: int
    output_tokens: int


Emit = Callable[[str], bool]  # receives text as it is produced; returns False to stop


class LoadedModel(ABC):
    """A model in memory, with the single worker thread that runs its requests."""

    def __init__(self, path: Path, context_size: int) -> None:
        self.path = path
        self.context_size = context_size
        self.worker = Worker()
        # Tokens the chat template adds beyond the estimate, for a chat that opens with a
        # system message (True) or not (False): measured once each, on the worker.
        self._template_extra: dict[bool, int] = {}

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    def _measure_prompt(self, chat: list[dict[str, str]]) -> int | None:
        """The prompt tokens the runtime reports for ``chat`` (template applied), or None
        where it cannot tell without generating."""
        return None

    @abstractmethod
    def _generate(
        self, messages: list[dict[str, str]], settings: GenerationSettings, emit: Emit
    ) -> GenerationResult: ...

    def generate(
        self,
        messages: Sequence[Mapping[str, str]],
        settings: GenerationSettings,
        emit: Emit,
        window: int | None = None,
    ) -> GenerationResult:
        """Check the prompt fits ``window`` tokens, then generate; call on ``worker`` only."""
        window = min(window or self.context_size, self.context_size)
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        prompt_tokens = self._prompt_tokens(chat, window)
        room = 0 if prompt_tokens is None else window - prompt_tokens
        if room < 1:
            size = sum(len(m["content"]) for m in chat)
            about = f"over {window}" if prompt_tokens is None else f"about {prompt_tokens}"
            raise ProviderError(
                f"prompt is {about} tokens ({size:,} characters), more than the model's "
                f"context of {window}: shorten it or raise context_size",
                kind=ErrorKind.CONTEXT_LENGTH,
            )
        if settings.max_tokens > room:
            settings = _replace_max_tokens(settings, room)
        return self._generate(chat, settings, emit)

    def _prompt_tokens(self, chat: list[dict[str, str]], window: int) -> int | None:
        """The prompt's tokens, or None once a message's head alone overflows
        ``window``: tokenizing a whole 50 MB prompt takes ~4 GB and ~25 s to learn only
        that it does not fit."""
        head = window * _CHARS_PER_TOKEN_BOUND
        total = _PROMPT_OVERHEAD + self._template_tokens(chat)
        for message in chat:
            text = message["content"]
            if len(text) > head and total + self.count_tokens(text[:head]) > window:
                return None
            total += self.count_tokens(text) + _MESSAGE_OVERHEAD
        return total

    def _template_tokens(self, chat: list[dict[str, str]]) -> int:
        """What the chat template adds that the estimate misses, e.g. the default system
        prompt some templates put before a chat without one (SmolLM2's: 22 tokens)."""
        system = bool(chat) and chat[0]["role"] == "system"
        extra = self._template_extra.get(system)
        if extra is None:
            probe = [{"role": "system", "content": ""}] if system else []
            probe.append({"role": "user", "content": ""})
            try:
                measured = self._measure_prompt(probe)
            except Exception as exc:  # the check falls back to the estimate alone
                log.debug("local model: cannot measure the chat template: %s", _first_line(exc))
                measured = None
            estimate = _PROMPT_OVERHEAD + len(probe) * _MESSAGE_OVERHEAD
            extra = 0 if measured is None else max(0, measured - estimate)
            self._template_extra[system] = extra
        return extra


def _replace_max_tokens(settings: GenerationSettings, max_tokens: int) -> GenerationSettings:
    return GenerationSettings(
        max_tokens=max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k,
        stop=settings.stop,
        json_schema=settings.json_schema,
    )


def _first_line(exc: BaseException) -> str:
    # The runtimes append Rust backtraces when RUST_BACKTRACE is set: keep the message only.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _context_error(message: str) -> bool:
    lowered = message.lower()
    return "sequence length is greater" in lowered or "exceed context window" in lowered


def runtime_failure(exc: BaseException) -> bool:
    """``exc`` is the runtime's failure: an ``Exception``, or a panic in its Rust code, which
    pyo3 raises as ``PanicException``, a ``BaseException`` (not an interrupt or an exit)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def runtime_error(exc: BaseException, during: str) -> ProviderError:
    """A runtime exception as a ProviderError of the right kind."""
    message = _first_line(exc)
    if _context_error(message):
        kind = ErrorKind.CONTEXT_LENGTH
    elif isinstance(exc, ValueError | TypeError):
        kind = ErrorKind.BAD_REQUEST  # the runtime refused the request (template, grammar...)
    else:
        kind = ErrorKind.SERVER
    return ProviderError(f"local model {during} failed: {message}", kind=kind)


def requantize_type(requantize: str, info: GgufInfo) -> str | None:
    """The type mistral.rs re-quantizes the weights to at load, or None to keep the file's."""
    if requantize == "off":
        return None
    if requantize == "auto":
        return _REQUANTIZE_AUTO if info.file_type in _SLOW_FILE_TYPES else None
    return requantize.upper()


class _MistralrsModel(LoadedModel):
    def __init__(self, path: Path, info: GgufInfo, requantize: str) -> None:
        mistralrs = import_runtime("mistralrs")

        self._mistralrs = mistralrs
        # token_source="none": a local file needs no Hugging Face token, never read one.
        self._runner: Any = mistralrs.Runner(
            which=mistralrs.Which.GGUF(
                quantized_model_id=str(path.parent), quantized_filename=path.name
            ),
            token_source="none",
            prefix_cache_n=_PREFIX_CACHE_SEQUENCES,
            in_situ_quant=requantize_type(requantize, info),
        )
        trained = self._runner.max_sequence_length() or info.context_length or DEFAULT_CONTEXT
        super().__init__(path, int(trained))

    def count_tokens(self, text: str) -> int:
        return len(self._runner.tokenize_text(text, False, None))

    def _measure_prompt(self, chat: list[dict[str, str]]) -> int | None:
        # One token generated (~0.2 s, once per chat shape): mistral.rs has no call that
        # applies the template without generating.
        request = self._mistralrs.ChatCompletionRequest(
            model="default", messages=chat, max_tokens=1, temperature=0.0
        )
        usage = self._runner.send_chat_completion_request(request).usage
        return None if usage is None else int(usage.prompt_tokens)

    def _generate(
        self, messages: list[dict[str, str]], settings: GenerationSettings, emit: Emit
    ) -> GenerationResult:
        grammar = json.dumps(settings.json_schema) if settings.json_schema is not None else None
        request = self._mistralrs.ChatCompletionRequest(
            model="default",
            messages=messages,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            stop_seqs=list(settings.stop) or None,
            grammar=grammar,
            grammar_type="json_schema" if grammar is not None else None,
            stream=True,
        )
        finish: str | None = None
        produced: list[str] = []
        usage: Any = None
        for chunk in self._runner.send_chat_completion_request(request):
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text = choice.delta.content
                if text:
                    produced.append(text)
                    if not emit(text):
                        return GenerationResult("cancelled", 0, len(produced))
                if choice.finish_reason:
                    finish = choice.finish_reason
        if usage is not None:
            return GenerationResult(finish, usage.prompt_tokens, usage.completion_tokens)
        return GenerationResult(finish, 0, self.count_tokens("".join(produced)))


class _LlamaCppModel(LoadedModel):
    def __init__(
        self, path: Path, info: GgufInfo, context_size: int | None, threads: int | None
    ) -> None:
        llama_cpp = import_runtime("llama-cpp")

        trained = info.context_length or DEFAULT_CONTEXT
        window = min(context_size or DEFAULT_CONTEXT, trained)
        self._llama: Any = llama_cpp.Llama(
            model_path=str(path), n_ctx=window, n_threads=threads, verbose=False
        )
        # Freed before interpreter teardown: llama-cpp-python's own finalizer fails once
        # its module globals are gone, printing a traceback at exit.
        atexit.register(self._close)
        super().__init__(path, window)

    def _close(self) -> None:
        # Not while the worker, left running at exit, is still inside llama.cpp.
        if not self.worker.busy:
            self._llama.close()

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _generate(
        self, messages: list[dict[str, str]], settings: GenerationSettings, emit: Emit
    ) -> GenerationResult:
        extra: dict[str, Any] = {}
        if settings.json_schema is not None:
            # llama-cpp-python turns the schema into a GBNF grammar for the sampler.
            extra["response_format"] = {"type": "json_object", "schema": settings.json_schema}
        if settings.temperature is not None:
            extra["temperature"] = settings.temperature
        if settings.top_p is not None:
            extra["top_p"] = settings.top_p
        if settings.top_k is not None:
            extra["top_k"] = settings.top_k
        stream = self._llama.create_chat_completion(
            messages=messages,
            max_tokens=settings.max_tokens,
            stop=list(settings.stop) or None,
            stream=True,
            **extra,
        )
        finish: str | None = None
        produced: list[str] = []
        for chunk in stream:
            for choice in chunk.get("choices", []):
                text = choice.get("delta", {}).get("content")
                if text:
                    produced.append(text)
                    if not emit(text):
                        return GenerationResult("cancelled", 0, len(produced))
                finish = choice.get("finish_reason") or finish
        prompt = sum(self.count_tokens(m["content"]) + _MESSAGE_OVERHEAD for m in messages)
        return GenerationResult(finish, prompt, self.count_tokens("".join(produced)))


@dataclass
class _Slot:
    lock: threading.Lock
    model: LoadedModel | None = None


_SLOTS: dict[tuple[str, str, int | str | None], _Slot] = {}
_SLOTS_LOCK = threading.Lock()


def load_model(
    runtime: str,
    path: Path | None,
    *,
    configured: bool,
    context_size: int | None = None,
    threads: int | None = None,
    requantize: str = "auto",
) -> LoadedModel:
    """The loaded model for (runtime, file), loading it on first use; blocks.

    mistral.rs grows its cache as needed, so one load serves every window (each call
    passes its own) but its weights depend on ``requantize``; llama.cpp fixes the window
    at load and ignores ``requantize`` (it has fast kernels for every type).
    """
    info = check_model_file(path, configured=configured)
    require_runtime(runtime)
    assert path is not None
    variant: int | str | None = (
        context_size if runtime == "llama-cpp" else requantize_type(requantize, info)
    )
    key = (runtime, str(path.resolve()), variant)
    with _SLOTS_LOCK:
        slot = _SLOTS.setdefault(key, _Slot(threading.Lock()))
    with slot.lock:  # concurrent first calls load once; the others wait here
        if slot.model is None:
            if not configured:
                verify_bundled_model(path)
            slot.model = _load(runtime, path, info, context_size, threads, requantize)
        return slot.model


def _load(
    runtime: str,
    path: Path,
    info: GgufInfo,
    context_size: int | None,
    threads: int | None,
    requantize: str,
) -> LoadedModel:
    if threads is None:
        threads = default_threads()
        log.info("local model: %d thread(s), the cores free now (set threads to choose)", threads)
    try:
        if runtime == "llama-cpp":
            return _LlamaCppModel(path, info, context_size, threads)
        # mistral.rs sizes its (process-wide) thread pool from this on first use.
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
        return _MistralrsModel(path, info, requantize)
    except MissingExtra:
        raise
    except ImportError as exc:
        raise MissingRuntime(runtime, _first_line(exc)) from exc
    except BaseException as exc:
        if not runtime_failure(exc):
            raise
        raise ProviderError(
            f"cannot load model file {str(path)!r}: {_first_line(exc)}; replace it with a valid "
            "GGUF model or set model_path to another one",
            kind=ErrorKind.NOT_FOUND,
        ) from exc
