"""Read the header of a GGUF model file without loading its weights.

Used to tell a missing or corrupt model file apart from a runtime failure, and
to learn the model's architecture and trained context length, in milliseconds
and with the standard library alone.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["GgufInfo", "check_tensor_data", "read_gguf_info"]

_MAGIC = b"GGUF"
_MAX_STRING = 1 << 24  # 16 MiB: longer key or value strings mean the file is corrupt
_MAX_KEYS = 1 << 20
_MAX_NESTING = 8  # arrays of arrays: real files nest one level at most
# Value type id -> struct format of one fixed-size item (GGUF spec, versions 2 and 3).
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32
# Tensor type id -> (elements per block, bytes per block), ggml's types with a fixed layout;
# a tensor of another type is counted from its offset alone.
_TENSOR_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class GgufInfo:
    version: int
    tensor_count: int
    architecture: str | None
    context_length: int | None
    name: str | None
    file_type: int | None = None  # general.file_type: the dominant tensor type (llama_ftype)


class _Corrupt(ValueError):
    pass


def read_gguf_info(path: Path) -> GgufInfo:
    """Parse the header; raises ``OSError`` if unreadable, ``ValueError`` if not a GGUF file."""
    with path.open("rb") as handle:
        if handle.read(4) != _MAGIC:
            raise ValueError("not a GGUF file (bad magic bytes)")
        (version,) = _unpack(handle, "I")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version} (expected 2 or 3)")
        tensor_count, key_count = _unpack(handle, "QQ")
        if key_count > _MAX_KEYS:
            raise ValueError("corrupt GGUF header (implausible metadata count)")
        meta: dict[str, object] = {}
        wanted = {"general.architecture", "general.name", "general.file_type"}
        for _ in range(key_count):
            key = _read_string(handle)
            (value_type,) = _unpack(handle, "I")
            value = _read_value(handle, value_type, 0)
            if key in wanted or key.endswith(".context_length"):
                meta[key] = value
            arch = meta.get("general.architecture")
            if (
                isinstance(arch, str)
                and f"{arch}.context_length" in meta
                and "general.name" in meta
                and "general.file_type" in meta
            ):
                break
    arch = meta.get("general.architecture")
    architecture = arch if isinstance(arch, str) else None
    context = meta.get(f"{architecture}.context_length") if architecture else None
    name = meta.get("general.name")
    file_type = meta.get("general.file_type")
    return GgufInfo(
        version=version,
        tensor_count=tensor_count,
        architecture=architecture,
        context_length=context if isinstance(context, int) and context > 0 else None,
        name=name if isinstance(name, str) else None,
        file_type=file_type if isinstance(file_type, int) else None,
    )


def check_tensor_data(path: Path) -> None:
    """Raise ``ValueError`` if the file ends before the tensors its header lists (a download
    or copy cut short); ``OSError`` if unreadable. Reads the header alone, skipping values."""
    with path.open("rb") as handle:
        if handle.read(4) != _MAGIC:
            raise ValueError("not a GGUF file (bad magic bytes)")
        _unpack(handle, "I")
        tensor_count, key_count = _unpack(handle, "QQ")
        if key_count > _MAX_KEYS or tensor_count > _MAX_KEYS:
            raise _Corrupt("corrupt GGUF header (implausible metadata count)")
        alignment = _DEFAULT_ALIGNMENT
        for _ in range(key_count):
            key = _read_string(handle)
            (value_type,) = _unpack(handle, "I")
            value = _read_value(handle, value_type, 0)
            if key == "general.alignment" and isinstance(value, int) and value > 0:
                alignment = value
        data_end = 0
        for _ in range(tensor_count):
            _read_string(handle)
            (dims,) = _unpack(handle, "I")
            if dims > _MAX_NESTING:
                raise _Corrupt("corrupt GGUF header (implausible tensor shape)")
            elements = 1
            for size in _unpack(handle, "Q" * dims):
                elements *= size
            tensor_type, offset = _unpack(handle, "IQ")
            per_block, block_bytes = _TENSOR_BLOCKS.get(tensor_type, (1, 0))
            data_end = max(data_end, offset + -(-elements // per_block) * block_bytes)
        size = os.fstat(handle.fileno()).st_size
        needed = handle.tell() + -handle.tell() % alignment + data_end
    if tensor_count and needed > size:
        raise ValueError(
            f"the file is truncated: its tensors need {needed:,} bytes, it has {size:,} "
            "(a download or copy cut short?)"
        )


def _unpack(handle: BinaryIO, fmt: str) -> tuple[int, ...]:
    size = struct.calcsize("<" + fmt)
    data = handle.read(size)
    if len(data) != size:
        raise _Corrupt("corrupt GGUF header (file ends inside the metadata)")
    return struct.unpack("<" + fmt, data)


def _read_string(handle: BinaryIO) -> str:
    (length,) = _unpack(handle, "Q")
    if length > _MAX_STRING:
        raise _Corrupt("corrupt GGUF header (implausible string length)")
    data = handle.read(length)
    if len(data) != length:
        raise _Corrupt("corrupt GGUF header (file ends inside the metadata)")
    return data.decode("utf-8", errors="replace")


def _read_value(handle: BinaryIO, value_type: int, depth: int) -> object:
    if value_type in _FIXED:
        return _unpack(handle, _FIXED[value_type])[0]
    if value_type == _STRING:
        return _read_string(handle)
    if value_type == _ARRAY:
        if depth >= _MAX_NESTING:
            raise _Corrupt("corrupt GGUF header (arrays nested too deep)")
        item_type, count = _unpack(handle, "IQ")
        if item_type in _FIXED:  # skip the items: only scalars are needed
            _skip(handle, struct.calcsize("<" + _FIXED[item_type]) * count)
            return None
        if count > _MAX_KEYS * 16:
            raise _Corrupt("corrupt GGUF header (implausible array length)")
        for _ in range(count):
            _read_value(handle, item_type, depth + 1)
        return None
    raise _Corrupt(f"corrupt GGUF header (unknown value type {value_type})")


def _skip(handle: BinaryIO, size: int) -> None:
    """Move past ``size`` bytes that must lie within the file."""
    if handle.tell() + size > os.fstat(handle.fileno()).st_size:
        raise _Corrupt("corrupt GGUF header (file ends inside the metadata)")
    handle.seek(size, 1)
