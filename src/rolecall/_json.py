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
  by json. Non-finite floats, which json writes as ``NaN`` (not JSON), orjson
  writes as ``null``: the replies built with it carry none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

# Digits enough for an integer beyond 64 bits (2**63 has 19), which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"\d{19}")
_JSON_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

try:
    import orjson
except ImportError:  # pragma: no cover - the gateway extra installs it
    orjson = None  # type: ignore[assignment]


def _json_loads(data: bytes) -> Any:
    return json.loads(data)


def _json_dumps(value: Any) -> bytes:
    return _JSON_DUMPS(value).encode()


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


loads: Callable[[bytes], Any] = _json_loads if orjson is None else _fast_loads
dumps: Callable[[Any], bytes] = _json_dumps if orjson is None else _fast_dumps
