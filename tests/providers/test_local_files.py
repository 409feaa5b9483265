"""A model file cut short (an interrupted download or copy, a full disk) is refused by the
credential check, before anything loads it, naming the file and the fix."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from local_helpers import BUNDLED

from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers.local import LocalProvider

_F32 = 0


def _string(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


def _model_file(path: Path, *, data_bytes: int) -> Path:
    """A GGUF file with one 1024-float tensor and ``data_bytes`` of its 4096 data bytes."""
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    head += _string("general.architecture") + struct.pack("<I", 8) + _string("llama")
    head += _string("weight") + struct.pack("<I", 1) + struct.pack("<Q", 1024)
    head += struct.pack("<IQ", _F32, 0)
    head += bytes(-len(head) % 32)  # the data starts at the default alignment
    path.write_bytes(head + bytes(data_bytes))
    return path


async def _checked(path: Path) -> None:
    config = ProviderConfig.model_validate({"type": "local", "model_path": str(path)})
    await LocalProvider("local", config).check_credentials()


async def test_a_whole_file_passes_the_check(tmp_path: Path) -> None:
    await _checked(_model_file(tmp_path / "whole.gguf", data_bytes=4096))


@pytest.mark.parametrize("data_bytes", [0, 4095])
async def test_a_file_cut_inside_its_tensor_data_is_refused(
    tmp_path: Path, data_bytes: int
) -> None:
    cut = _model_file(tmp_path / "cut.gguf", data_bytes=data_bytes)
    with pytest.raises(ProviderError) as caught:
        await _checked(cut)
    error = caught.value
    assert error.kind is ErrorKind.NOT_FOUND and error.provider == "local"
    assert str(cut) in error.message and "truncated" in error.message
    assert "re-download it" in error.message and "\n" not in error.message


@pytest.mark.skipif(BUNDLED is None or not BUNDLED.is_file(), reason="bundled model not installed")
async def test_the_bundled_file_cut_in_half_is_refused(tmp_path: Path) -> None:
    assert BUNDLED is not None
    with BUNDLED.open("rb") as whole:
        half = whole.read(BUNDLED.stat().st_size // 2)
    cut = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cut.write_bytes(half)
    with pytest.raises(ProviderError) as caught:
        await _checked(cut)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert str(cut) in caught.value.message and "truncated" in caught.value.message
    await _checked(BUNDLED)  # the whole file passes
