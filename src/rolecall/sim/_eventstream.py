"""AWS event-stream frames (``application/vnd.amazon.eventstream``), as Bedrock sends them.

Each frame: a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes),
the headers (name length byte, name, type byte 7 = string, value length as two bytes,
value), the payload, and a CRC32 of everything before it. Bedrock's ConverseStream
sends one frame per event, its JSON payload carrying a ``p`` field of random padding
(against length side channels), with three string headers: ``:event-type``,
``:content-type`` and ``:message-type`` (``event``, or ``exception`` with
``:exception-type`` naming the error).

Written here by hand, without botocore, so the sim needs no AWS package and its
frames check the adapter's (botocore's) decoder independently.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any

from rolecall.sim._common import dumps

__all__ = ["CONTENT_TYPE", "event_frame", "exception_frame", "frame"]

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + struct.pack("!BH", _STRING, len(raw_value))
        + raw_value
    )


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One frame with string headers and its two CRC32 checksums."""
    head = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack("!I", zlib.crc32(body))


def _padding() -> str:
    """Bedrock's ``p`` field: a few random letters, so event sizes do not leak content."""
    count = 1 + os.urandom(1)[0] % 40
    return "".join(_PADDING[b % len(_PADDING)] for b in os.urandom(count))


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """A ``:message-type event`` frame, e.g. ``contentBlockDelta`` with its JSON payload."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, dumps({**payload, "p": _padding()}))


def exception_frame(exception_type: str, message: str) -> bytes:
    """A ``:message-type exception`` frame: an error after HTTP 200, mid-stream."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, dumps({"message": message}))
