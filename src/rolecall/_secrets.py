"""Masked secrets and the redaction every outgoing text passes through.

Every :class:`Secret` registers its value here when it is created, so that
:func:`redact` can strip it from any text (a server's error body that echoes the
key, an exception message, a log line) without the caller knowing which keys
exist.
"""

from __future__ import annotations

import re
import threading
from typing import Any

_MASK = "***"
_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
# Values this short would redact ordinary words; real keys are far longer.
_MIN_SECRET_LEN = 6


class Secret:
    """A credential whose ``repr`` and ``str`` never show its value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= _MIN_SECRET_LEN:
            _register(value)

    def get(self) -> str:
        """The real value; call it only where the request header is built."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # pragma: no cover - pickling keeps the value masked in reprs only
        return (Secret, (self._value,))


def _register(value: str) -> None:
    global _pattern
    with _lock:
        if value in _known:
            return
        _known.add(value)
        # Longest first so a key that contains another is masked whole.
        alternatives = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def register_secret(value: str) -> None:
    """Treat ``value`` as secret from now on (for values that are not :class:`Secret`)."""
    if len(value) >= _MIN_SECRET_LEN:
        _register(value)


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(_MASK, text)
