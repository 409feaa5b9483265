"""What the lean client checks and encodes in a message, beyond its framing; its errors.

- :class:`WireError` and its kinds: what both clients raise for a transport failure.

- :func:`check_headers`: header names are tokens and values hold no control characters,
  so a key or a configured header can never end a header line and start another (a
  request smuggled inside a header).
- :func:`request_target`: the path and query as sent, percent-encoded where a character
  may not stand in a request line (a space, non-ASCII); :func:`has_control` for the URLs
  refused outright, so no URL can change the request line's shape.
- :func:`decoded`: a body in ``gzip`` or ``deflate`` content coding, decoded as it
  arrives. The client asks for ``identity``; some servers compress anyway.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Mapping
from urllib.parse import SplitResult, quote

__all__ = [
    "InvalidHeader",
    "WireError",
    "WireProxyRefused",
    "WireRequestError",
    "WireTLSError",
    "WireTimeout",
    "WireTooLarge",
    "check_headers",
    "decoded",
    "has_control",
    "request_target",
]

# RFC 9110 token characters; a value may hold any byte but controls (HTAB excepted).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_IN_URL = re.compile(r"[\x00-\x1f\x7f]")
# Characters a path or query may hold as they are (RFC 3986 pchar, "/", "?", and "%"
# for escapes already made); the rest is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class WireError(Exception):
    """The request failed in transport: connecting, sending, or reading the response."""


class WireTimeout(WireError, TimeoutError):
    """Connecting, or waiting for the next bytes of the response, took too long."""


class WireRequestError(WireError):
    """The request cannot be sent as it is (a URL with a control character): not retryable."""


class WireProxyRefused(WireError):
    """The proxy, not the server, refused the request with ``status`` (407: it wants
    credentials); the message names the proxy and the variable that set it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class WireTLSError(WireError):
    """The TLS handshake failed: an untrusted certificate, a wrong name, not TLS at all."""


class WireTooLarge(WireError):
    """The response is larger than any answer (its head, its body, one line of a stream):
    a broken or hostile server, read no further."""


class InvalidHeader(ValueError):
    """A header name or value that cannot be sent as it is; names the header, never the value."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"header {name!r} {problem}")
        self.name = name


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with names lowercased; :class:`InvalidHeader` for one that cannot be sent."""
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidHeader(_printable(name), "is not a valid header name")
        if _CONTROL.search(value):
            raise InvalidHeader(name, "holds a line break or another control character")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidHeader(name, "holds characters that are not Latin-1") from None
        checked[name.lower()] = value
    return checked


def _printable(name: str) -> str:
    return _CONTROL.sub("?", name)[:40]


def has_control(url: str) -> bool:
    """Whether ``url`` holds a control character (urlsplit would drop tabs and line breaks
    silently, changing the target): such a URL is refused, not sent."""
    return _CONTROL_IN_URL.search(url) is not None


def request_target(parts: SplitResult, query: str) -> str:
    """The origin-form request target (``/path?query``), percent-encoded where needed."""
    target = quote(parts.path, safe=_PATH_SAFE) or "/"
    if query:
        target = f"{target}?{quote(query, safe=_QUERY_SAFE)}"
    return target


# ------------------------------------------------------------------ content coding


# The most one read of a compressed body may inflate to: deflate reaches ~1000:1, so a read
# of a few hundred KB could otherwise become gigabytes before any total is checked.
MAX_INFLATED_PIECE = 64 * 1024 * 1024


class _Inflater:
    """One content coding, decoded incrementally; ``deflate`` with or without zlib's header.
    A read that inflates past :data:`MAX_INFLATED_PIECE` is :class:`WireTooLarge`."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._started = False
        wbits = 16 + zlib.MAX_WBITS if coding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._inflate = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            out = self._inflate.decompress(data, MAX_INFLATED_PIECE)
        except zlib.error:
            if self._started or self.coding != "deflate":
                raise
            # Raw deflate without the zlib header, as some servers send it.
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inflate.decompress(data, MAX_INFLATED_PIECE)
        self._started = True
        if self._inflate.unconsumed_tail:
            raise WireTooLarge(
                f"the {self.coding} body inflates past {MAX_INFLATED_PIECE >> 20} MB in one read"
            )
        return out

    def end(self) -> bytes:
        if not self._started:  # no bytes at all: an empty body is empty in any coding
            return b""
        out = self._inflate.flush()
        if not self._inflate.eof:
            raise zlib.error("the compressed body ended early")
        return out


def _inflaters(content_encoding: str) -> list[_Inflater]:
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    inflaters = []
    for coding in reversed([c for c in codings if c and c != "identity"]):  # last applied first
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise WireError(f"unsupported content-encoding: {coding}")
        inflaters.append(_Inflater(coding))
    return inflaters


async def decoded(chunks: AsyncIterator[bytes], content_encoding: str) -> AsyncIterator[bytes]:
    """The body decoded from ``content_encoding``; :class:`WireError` naming the
    content-encoding when it is unsupported or the data does not decode."""
    inflaters = _inflaters(content_encoding)
    try:
        async for chunk in chunks:
            for inflater in inflaters:
                chunk = inflater.feed(chunk)
            if chunk:
                yield chunk
        tail = b""
        for inflater in inflaters:
            tail = inflater.feed(tail) + inflater.end()
        if tail:
            yield tail
    except zlib.error as exc:
        raise WireError(f"cannot decode content-encoding {content_encoding}: {exc}") from None
