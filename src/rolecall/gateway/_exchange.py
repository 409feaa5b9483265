"""A door's request and whole reply, as little as a door needs of them.

A front door reads a few headers and the body, and answers a status, a few
headers and a body (or a stream). :class:`DoorRequest` and :class:`Reply` are
those, without a framework's request and response objects (a header mapping
built from the whole scope, a header list encoded a name at a time): the HTTP
protocol writes a :class:`Reply`'s header block as it is (``gateway.hotpath``),
and under any other ASGI server a :class:`Reply` is an ASGI app sending it.
A streamed reply is still Starlette's streaming response (``_door.SSEResponse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from starlette.types import Receive, Scope, Send

from rolecall._json import dumps

__all__ = ["DoorRequest", "Reply", "header_value", "json_reply"]

# What a header value keeps as it is: printable ASCII but "%", which marks an escape.
_VALUE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class DoorRequest:
    """An HTTP request to a door: its ASGI scope and ``receive``, and its headers by name."""

    __slots__ = ("_headers", "receive", "scope")

    def __init__(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes] | None = None
    ) -> None:
        self.scope = scope
        self.receive = receive
        # By name, the first of repeated names; read from the scope when first asked if None.
        self._headers = headers

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower case, as ASGI gives names), or None."""
        headers = self._headers
        if headers is None:  # reversed: the first of repeated names wins, as in Starlette
            headers = self._headers = dict(reversed(list(self.scope["headers"])))
        value = headers.get(name)
        return None if value is None else value.decode("latin-1")


class Reply:
    """A whole response: status, header lines (``name: value\\r\\n`` each, names in lower
    case) and body. As an ASGI app it sends itself."""

    __slots__ = ("body", "head", "status")

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status = status
        self.head = head
        self.body = body

    @classmethod
    def empty(cls, status: int) -> Reply:
        return cls(status, b"content-length: 0\r\n", b"")

    def add_header(self, name: str, value: str) -> None:
        self.head += _lines({name: value})

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as ASGI's (name, value) pairs."""
        lines = self.head.split(b"\r\n")[:-1]
        return [(name, value) for name, _, value in (line.partition(b": ") for line in lines)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = self.raw_headers()
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def header_value(value: str) -> str:
    """``value`` as a header may carry it: anything but printable ASCII (a line break, a
    non-Latin name a client sent) percent-encoded, so no text can split or fail a response."""
    return value if value.isascii() and value.isprintable() else quote(value, safe=_VALUE_SAFE)


def _lines(headers: Mapping[str, str]) -> bytes:
    return "".join(
        [f"{name}: {header_value(value)}\r\n" for name, value in headers.items()]
    ).encode("ascii")


def json_reply(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    """``body`` as JSON, with ``headers`` (lower-case names) before its length and type."""
    data = dumps(body)
    head = b"content-length: %d\r\ncontent-type: application/json\r\n" % len(data)
    return Reply(status, _lines(headers) + head if headers else head, data)
