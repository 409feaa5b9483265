"""A provider's failure as compact JSON, for health shared between processes.

The Redis-backed and the host-shared trackers both store why a provider is down
or its circuit is open, and read it back as a :class:`ProviderError` in another
process; this is the one encoding they use.
"""

from __future__ import annotations

import json
from typing import Any

from rolecall.errors import ErrorKind, ProviderError

__all__ = ["error_from_json", "error_to_json", "json_object"]


def error_to_json(error: ProviderError, *, max_message: int | None = None, **extra: Any) -> str:
    """``error`` as JSON text (kind, message cut to ``max_message``, status, ``extra``)."""
    message = error.message if max_message is None else error.message[:max_message]
    data: dict[str, Any] = {"kind": error.kind.value, "message": message, **extra}
    if error.status is not None:
        data["status"] = error.status
    return json.dumps(data, separators=(",", ":"))


def json_object(text: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object, or an empty dict for anything else."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


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
        message if isinstance(message, str) else f"marked by another {origin}",
        kind=kind,
        provider=provider_id,
        status=status if isinstance(status, int) else None,
    )
