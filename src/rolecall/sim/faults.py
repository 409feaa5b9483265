"""Scriptable faults: what a fake provider does instead of (or before) answering.

Each kind is rendered the way the vendor of the server's protocol really sends
it (status, error body, headers), so adapters, the router and the workflow meet
the same bytes they would meet in production.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["FAULT_KINDS", "Fault", "parse_fault"]

FAULT_KINDS: tuple[str, ...] = (
    "ok",  # a normal answer (after `delay`)
    "auth",  # bad key
    "permission",  # key valid but not allowed
    "region",  # unsupported country / region (Gemini 400 FAILED_PRECONDITION)
    "not_found",  # model not found
    "quota",  # quota or credit exhausted (never retry)
    "rate_limit",  # 429 with the vendor's reset hints
    "overloaded",  # Anthropic 529, Gemini 503 UNAVAILABLE, OpenAI 503
    "server",  # 500 (or `status`: 502 sends a proxy's HTML page, 504...)
    "timeout",  # accept the request, then send nothing for `delay` (default 3600) seconds
    "reset",  # close the TCP connection abruptly (RST) with no response
    "malformed",  # HTTP 200 with invalid JSON
    "empty",  # HTTP 200, valid shape, empty text
    "context_length",  # prompt too long
    "content_filter",  # HTTP 200 with the vendor's filtered / refusal marker
    "bad_request",  # 400 invalid request
    "stream_error",  # HTTP 200, `after_chunks` chunks, then an error event or a cut connection
    "stall",  # streaming: `after_chunks` chunks, then silence for `delay` (default 3600) s
    "openai_array_error",  # Gemini OpenAI-compatible style: `[{"error": {...}}]`
)

# Kinds whose default `delay` means "hang this long" rather than "extra latency".
HANG_KINDS = frozenset({"timeout", "stall"})
DEFAULT_HANG = 3600.0


@dataclass(frozen=True)
class Fault:
    """One scripted behaviour for one chat request.

    ``variant`` picks a second real-world shape of the same condition:
    ``context_length`` + ``"llama.cpp"`` (``exceed_context_size_error``);
    ``auth`` + ``"clock_behind"`` or ``"clock_ahead"`` (Bedrock's 403 "Signature expired"
    or "Signature not yet current": the signer's clock is off); ``content_filter`` +
    ``"prompt"`` (Gemini ``promptFeedback.blockReason``) or ``"prohibited"`` (Gemini
    ``PROHIBITED_CONTENT``); ``quota`` + ``"spend_limit"``
    (Anthropic 429 ``enforced_spend_limit_reached``) or ``"prepay"`` (Gemini 429 "Your
    prepayment credits are depleted", no QuotaFailure); ``rate_limit`` + ``"http_date"``
    (``retry-after`` as an HTTP date); ``stall`` + ``"keepalive"`` (no content, but the
    vendor's keep-alive, Anthropic's ``ping`` or an SSE comment, every 0.1 s).
    """

    kind: str
    retry_after: float | None = None
    delay: float = 0.0
    after_chunks: int = 0
    echo_key: bool = False
    status: int | None = None
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of: {', '.join(FAULT_KINDS)}"
            )
        if self.delay < 0 or self.after_chunks < 0:
            raise ValueError("fault delay and after_chunks cannot be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("fault retry_after cannot be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"fault status {self.status} is not an HTTP status")

    @property
    def hang_seconds(self) -> float:
        """How long ``timeout`` and ``stall`` stay silent."""
        return self.delay if self.delay > 0 else DEFAULT_HANG

    def to_dict(self) -> dict[str, Any]:
        """The non-default fields, as the control API and ``parse_fault`` accept them."""
        out: dict[str, Any] = {"kind": self.kind}
        for field in fields(self)[1:]:
            value = getattr(self, field.name)
            if value != field.default:
                out[field.name] = value
        return out


_FIELD_TYPES: dict[str, type] = {
    "retry_after": float,
    "delay": float,
    "after_chunks": int,
    "echo_key": bool,
    "status": int,
    "variant": str,
}


def parse_fault(spec: str | Mapping[str, Any] | Fault) -> Fault:
    """A fault from ``"rate_limit"``, ``"rate_limit:retry_after=2,delay=0.1"`` or a mapping.

    Raises ``ValueError`` with a message fit to show a user.
    """
    if isinstance(spec, Fault):
        return spec
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"kind", *_FIELD_TYPES}
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if not isinstance(spec.get("kind"), str):
            raise ValueError('a fault needs a "kind" string')
        values = {name: _coerce(name, value) for name, value in spec.items() if name != "kind"}
        return Fault(kind=spec["kind"], **values)
    if not isinstance(spec, str):
        raise ValueError(f"a fault is a kind name or an object, not {type(spec).__name__}")
    kind, _, rest = spec.strip().partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or name not in _FIELD_TYPES:
            raise ValueError(
                f"bad fault option {item!r}; use NAME=VALUE with NAME one of "
                f"{', '.join(_FIELD_TYPES)}"
            )
        options[name] = _coerce(name, value.strip())
    return Fault(kind=kind.strip(), **options)


def _coerce(name: str, value: Any) -> Any:
    wanted = _FIELD_TYPES.get(name)
    if wanted is None:
        raise ValueError(f"unknown fault field {name!r}")
    if value is None and name in ("retry_after", "status", "variant"):
        return None
    try:
        if wanted is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(value, bool) and wanted is not bool:
            raise ValueError
        return wanted(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"fault field {name}={json.dumps(value)} is not a valid {wanted.__name__}"
        ) from None
