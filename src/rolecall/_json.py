"""JSON on the request path: orjson when it is installed, with json's exact results.

The gateway parses a client's body and a provider's answer and writes its reply on
every call; orjson does each in a fraction of json's time (the ``gateway`` extra
brings it). Only documents both read alike take the fast path, so what a caller
gets never depends on whether orjson is installed:

- :func:`loads`: orjson refuses what json accepts (``NaN``, lone surrogates,
  UTF-16) and reads integers beyond 64 bits as floats; a document orjson refuses,
  or with a run of 19 digits or more (any such integer), is read by json, which
  returns its value or raises its own error.
- :func:`dumps`: compact UTF-8 (json's ``ensure_ascii=False``, no spaces); a value
  orjson refuses (a non-string key, a huge integer, a lone surrogate) is written
  by json, and a lone surrogate, which UTF-8 cannot hold, as its ``\\u`` escape
  (a client's text echoed in an error must not fail the reply). Non-finite
  floats, which json writes as ``NaN`` (not JSON), orjson writes as ``null``:
  the replies built with it carry none.
- :func:`dumps_finite`: the same, but a non-finite float raises json's
  ``ValueError`` (what a provider's request body needs): orjson writes one as
  ``null``, so any output holding ``null`` is written again by json, which
  raises or returns it; a lone surrogate raises ``UnicodeEncodeError``, as no
  provider is sent text it cannot read.

Both write floats in their shortest form, orjson as ``1e-5`` where json writes
``1e-05``: the same number to every JSON reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "dumps_finite", "loads"]

# Digits enough for an integer beyond 64 bits (2**63 has 19), which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"\d{19}")
_JSON_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_JSON_DUMPS_ASCII = json.JSONEncoder(separators=(",", ":")).encode
_JSON_DUMPS_FINITE = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode

try:
    import orjson
except ImportError:  # pragma: no cover - the gateway extra installs it
    orjson = None  # type: ignore[assignment]


def _json_loads(data: bytes) -> Any:
    return json.loads(data)


def _json_dumps(value: Any) -> bytes:
    try:
        return _JSON_DUMPS(value).encode()
    except UnicodeEncodeError:  # a lone surrogate: every non-ASCII character escaped
        return _JSON_DUMPS_ASCII(value).encode()


def _json_dumps_finite(value: Any) -> bytes:
    return _JSON_DUMPS_FINITE(value).encode()


def _fast_loads(data: bytes) -> Any:
    if _LONG_DIGITS.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json says why, or reads what orjson refuses (NaN...)
    return json.loads(data)


def _fast_dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # a non-string key, a huge integer, a lone surrogate...
        return _json_dumps(value)


def _fast_dumps_finite(value: Any) -> bytes:
    try:
        data: bytes = orjson.dumps(value)
    except TypeError:
        return _json_dumps_finite(value)
    # A null may be a NaN or an infinity orjson let through: json decides.
    return _json_dumps_finite(value) if b"null" in data else data


loads: Callable[[bytes], Any] = _json_loads if orjson is None else _fast_loads
dumps: Callable[[Any], bytes] = _json_dumps if orjson is None else _fast_dumps
dumps_finite: Callable[[Any], bytes] = _json_dumps_finite if orjson is None else _fast_dumps_finite
