"""Gateway API keys: bearer-token checks and the rule about which addresses may be bound.

The rule: a gateway listens beyond loopback only with at least one real key. An
empty or blank entry in ``gateway.keys`` (an unset ``${VAR:-}``) is no key: the
config drops it, and :class:`KeyChecker` skips it too, so such an entry can
neither open the gateway nor count towards the rule.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence

from rolecall._secrets import Secret

__all__ = [
    "KeyChecker",
    "is_loopback",
    "loopback_host_header",
    "loopback_origin",
    "unsafe_bind_message",
]


def _digest(value: str) -> bytes:
    # Comparing fixed-size digests keeps the comparison time independent of key length too.
    return hashlib.sha256(value.encode("utf-8")).digest()


class KeyChecker:
    """Accepts ``Authorization: Bearer KEY`` for any configured key; open when none is set."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Sequence[Secret]) -> None:
        self._digests = tuple(_digest(key.get().strip()) for key in keys if key.get().strip())

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def allows(self, authorization: str | None) -> bool:
        if not self._digests:
            return True
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        offered = _digest(token.strip())
        matched = False
        for digest in self._digests:  # no early exit: the time does not tell which key matched
            matched |= hmac.compare_digest(offered, digest)
        return matched


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def loopback_host_header(value: str | None) -> bool:
    """True when an HTTP ``Host`` header (``name[:port]``) names loopback, or there is none.

    A server without keys listens on loopback only, but a web page can still reach it
    through a name of its own that it re-points at 127.0.0.1 (DNS rebinding); the
    browser then sends that name as the Host, which this tells apart.
    """
    if value is None:
        return True
    name = value.strip()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".").lower()
    return name.endswith(".localhost") or is_loopback(name)


def loopback_origin(value: str | None) -> bool:
    """True when an HTTP ``Origin`` header names a page served from this machine, or there
    is none (a client that is no browser, or a browser's same-origin ``GET``).

    A page of any site can make the browser ``POST`` to 127.0.0.1 with no preflight (a
    form, a ``text/plain`` fetch): the Host is then loopback, the page's own site is only
    in ``Origin``. ``null`` (a sandboxed frame, a ``file:`` page) is no loopback page.
    """
    if value is None:
        return True
    scheme, separator, host = value.strip().partition("://")
    return bool(separator) and scheme.lower() in ("http", "https") and loopback_host_header(host)


def unsafe_bind_message(host: str) -> str:
    return (
        f"refusing to listen on {host}: no gateway API key is configured (empty or blank "
        "entries, e.g. from an unset or empty variable, are not keys), so anyone who can "
        "reach this address could spend your provider credits; set the variable your "
        "gateway.keys entry reads, or add keys under gateway.keys "
        "(e.g. gateway: {keys: ['${ROLECALL_GATEWAY_KEY}']}), or bind 127.0.0.1"
    )
