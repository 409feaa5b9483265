"""A panic inside the local model's runtime is one error of the call, at once.

mistral.rs raises a Rust panic as pyo3's ``PanicException``, a ``BaseException``: no real
model file makes it panic on demand, so a stand-in for the ``mistralrs`` module raises one
where the real runtime would (loading the file, generating).
"""

from __future__ import annotations

import importlib.machinery
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers.local import LocalProvider
from rolecall.types import ChatRequest, Message


class PanicException(BaseException):
    """As pyo3 raises for a panic in Rust code: not an ``Exception``."""


def _runtime(panics_at: str) -> types.ModuleType:
    """A ``mistralrs`` that panics when loading (``"load"``) or generating (``"generate"``)."""

    class Runner:
        def __init__(self, **_options: object) -> None:
            if panics_at == "load":
                raise PanicException("called `Option::unwrap()` on a `None` value")

        def max_sequence_length(self) -> int:
            return 2048

        def tokenize_text(self, text: str, *_args: object) -> list[int]:
            return [0] * len(text.split())

        def send_chat_completion_request(self, _request: object) -> Iterator[object]:
            raise PanicException("index out of bounds: the len is 3 but the index is 7")

    module = types.ModuleType("mistralrs")
    module.__spec__ = importlib.machinery.ModuleSpec("mistralrs", None)
    module.Runner = Runner  # type: ignore[attr-defined]
    module.Which = types.SimpleNamespace(GGUF=dict)  # type: ignore[attr-defined]
    module.ChatCompletionRequest = dict  # type: ignore[attr-defined]
    return module


def _model_file(path: Path) -> Path:
    """A GGUF header with no tensors: passes the file checks, then reaches the runtime."""
    key, value = b"general.architecture", b"llama"
    path.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IQ", 8, len(value))
        + value
    )
    return path


@pytest.mark.parametrize(
    ("panics_at", "kind", "said"),
    [
        ("load", ErrorKind.NOT_FOUND, "cannot load model file"),
        ("generate", ErrorKind.SERVER, "local model generation failed: index out of bounds"),
    ],
)
async def test_a_runtime_panic_is_the_calls_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, panics_at: str, kind: ErrorKind, said: str
) -> None:
    monkeypatch.setitem(sys.modules, "mistralrs", _runtime(panics_at))
    for name in ("RAYON_NUM_THREADS", "RUST_LOG"):  # set by the load: given back after the test
        monkeypatch.delenv(name, raising=False)
    model = _model_file(tmp_path / f"panics-at-{panics_at}.gguf")
    # A generous timeout: a panic lost on the worker thread was waited for until it passed,
    # then reported as a slow generation.
    config = {"type": "local", "model_path": str(model), "timeout": 30, "threads": 1}
    provider = LocalProvider("local", ProviderConfig.model_validate(config))
    request = ChatRequest(messages=(Message("user", "hi"),), params={"max_tokens": 2})
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request)
    error = caught.value
    assert error.kind is kind and error.provider == "local"
    assert said in error.message and "\n" not in error.message
