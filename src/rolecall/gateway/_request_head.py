"""What RFC 9112 requires of a request's head beyond what the parser (llhttp) checks.

llhttp takes a request with two ``Host`` lines, an HTTP/1.1 request with none, a
target in absolute form (``POST http://name/path``) and ``Transfer-Encoding: gzip,
chunked`` (which it decodes as plain chunked). The protocol
(:mod:`rolecall.gateway.protocol`) asks this module once per request, after the
headers, and only when a cheap look at the head says it may be one of those (a
repeated header name, no Host, a Transfer-Encoding, a target not starting with
``/``): the common request costs no call here.

- two Host lines, or an HTTP/1.1 request without one: 400 (RFC 9112, 3.2); which
  name the client meant is unknowable, and the keyless gateway's loopback-name check
  must read the one name everything else reads;
- a target in absolute form: its authority is the request's Host (RFC 9112, 3.2.2
  and 3.3) and its path and query the target, so it is served and checked exactly as
  the same request in origin form; a target that is no ``http(s)`` URL with a host
  is a 400;
- a transfer coding other than ``chunked``: 501 (RFC 9112, 6.1), as the gateway
  decodes no other (a ``Content-Encoding`` is refused in the body's read, 415); 400
  when ``chunked`` is not the last, as the body's end is then unknowable (6.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import httptools

__all__ = ["BAD_TARGET", "HeadFault", "absolute_target", "head_fault"]

# (status line, message, error code) of a refused request
HeadFault = tuple[bytes, str, str]

_BAD_REQUEST = b"400 Bad Request"
# Not quoted: an error body shows no URL (error_body replaces each).
BAD_TARGET: HeadFault = (
    _BAD_REQUEST,
    "request target is neither a path nor an http(s) URL with a host; "
    "send the path (/v1/...) and the address called as Host",
    "bad_target",
)


def head_fault(headers: Sequence[tuple[bytes, bytes]], http_version: str) -> HeadFault | None:
    """Why a request with these headers (names in lower case) is refused, or None."""
    hosts = 0
    codings: list[bytes] = []
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"transfer-encoding":
            codings += value.split(b",")
    if hosts > 1:
        return _BAD_REQUEST, f"request has {hosts} Host headers; send exactly one", "bad_host"
    if not hosts and http_version == "1.1":
        message = "HTTP/1.1 request has no Host header; send the address called as Host"
        return _BAD_REQUEST, message, "bad_host"
    names = [coding.strip().lower() for coding in codings]
    if names and names != [b"chunked"]:
        sent = b", ".join(coding.strip() for coding in codings).decode("latin-1")
        message = (
            f"request has Transfer-Encoding {sent!r}: the gateway decodes only 'chunked'; "
            "send the JSON uncompressed, with Content-Length or chunked"
        )
        # Not chunked last: where the body ends is unknowable (RFC 9112, 6.3), a 400.
        status = b"501 Not Implemented" if names[-1] == b"chunked" else _BAD_REQUEST
        return status, message, "unsupported_transfer_encoding"
    return None


def absolute_target(url: bytes) -> tuple[bytes, bytes] | None:
    """(origin-form target, authority) of a target in absolute form; None if it names no
    http(s) host (:data:`BAD_TARGET`)."""
    try:
        parts = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        parts = None
    if parts is None or parts.host is None or parts.schema.lower() not in (b"http", b"https"):
        return None
    host = parts.host
    authority = b"[" + host + b"]" if b":" in host else host
    if parts.port is not None:
        authority += b":%d" % parts.port
    target = parts.path or b"/"
    if parts.query is not None:
        target += b"?" + parts.query
    return target, authority
