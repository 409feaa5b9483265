"""A provider's failure as compact JSON, for health shared between processes.

The Redis-backed and the host-shared trackers both store why a provider is down
or its circuit is open, and read it back as a :class:`ProviderError` in another
process; this is the one encoding they use. What is read back may have been
written by anything with access to Redis: it is parsed defensively (a bounded
length, no nesting past the parser's stack) and its message clipped to one line.
"""

from __future__ import annotations

import json
from typing import Any

from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._errors import clip

__all__ = ["error_from_json", "error_to_json", "is_error_json", "json_object"]

# Far more than any error this module writes; longer text is not ours and not parsed.
_MAX_TEXT = 16 * 1024


def error_to_json(error: ProviderError, *, max_message: int | None = None, **extra: Any) -> str:
    """``error`` as JSON text (kind, message cut to ``max_message``, status, ``extra``)."""
    message = error.message if max_message is None else error.message[:max_message]
    data: dict[str, Any] = {"kind": error.kind.value, "message": message, **extra}
    if error.status is not None:
        data["status"] = error.status
    return json.dumps(data, separators=(",", ":"))


def json_object(text: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object, or an empty dict for anything else."""
    if len(text) > _MAX_TEXT:
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
        return {}
    return data if isinstance(data, dict) else {}


def is_error_json(value: object) -> bool:
    """Whether ``value`` is what :func:`error_to_json` writes (a JSON object naming a kind)."""
    return isinstance(value, str) and "kind" in json_object(value)


def error_from_json(text: str, provider_id: str, *, origin: str) -> ProviderError:
    """The error :func:`error_to_json` wrote; ``origin`` names who marked it when no message."""
    data = json_object(text)
    try:
        kind = ErrorKind(str(data.get("kind")))
    except ValueError:
        kind = ErrorKind.SERVER
    message = data.get("message")
    status = data.get("status")
    return ProviderError(
        clip(message) if isinstance(message, str) else f"marked by another {origin}",
        kind=kind,
        provider=provider_id,
        status=status if isinstance(status, int) else None,
    )
