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

__all__ = ["GgufInfo", "read_gguf_info"]

_MAGIC = b"GGUF"
_MAX_STRING = 1 << 24  # 16 MiB: longer key or value strings mean the file is corrupt
_MAX_KEYS = 1 << 20
_MAX_NESTING = 8  # arrays of arrays: real files nest one level at most
# Value type id -> struct format of one fixed-size item (GGUF spec, versions 2 and 3).
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


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
