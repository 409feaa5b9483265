"""Exceptions raised by rolecall, and the kinds of provider failure.

The tree::

    RolecallError
     ├── ConfigError              the config file is invalid; carries every ConfigIssue found
     ├── MissingExtra             an optional dependency is not installed; names the extra
     ├── ProviderError            one call to one provider failed; carries ErrorKind, status,
     │    │                       retryable and retry_after
     │    └── StreamInterrupted   a stream failed after content was emitted (never handed over)
     ├── NoProviderForRole        the role has no provider and there is no default_provider
     ├── UnknownParameter         a call parameter no provider protocol knows (did-you-mean)
     ├── AllProvidersFailed       every provider in the role's chain failed; carries each error
     ├── CredentialsError         the startup credential check failed; carries each error
     └── RouterClosed             the router was closed before the call could answer

Every message passes through :func:`rolecall._secrets.redact`, so a key that a
server echoes back in an error body never reaches a user, a log or an event.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from rolecall._secrets import redact
from rolecall._text import visible

if TYPE_CHECKING:
    from rolecall.types import Attempt

__all__ = [
    "MAX_RETRY_AFTER",
    "AllProvidersFailed",
    "ConfigError",
    "ConfigIssue",
    "CredentialsError",
    "ErrorKind",
    "MissingExtra",
    "NoProviderForRole",
    "ProviderError",
    "RolecallError",
    "RouterClosed",
    "StreamInterrupted",
    "UnknownParameter",
]


class ErrorKind(StrEnum):
    """Why a provider call failed; decides retry and hand-over (see ``retry``)."""

    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    QUOTA = "quota"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    SERVER = "server"
    TIMEOUT = "timeout"
    NETWORK = "network"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    BAD_REQUEST = "bad_request"
    BAD_RESPONSE = "bad_response"
    STALLED = "stalled"  # no first token within failover_within; lost the race to the next
    TLS = "tls"  # certificate or handshake failure: retrying cannot fix it
    UNSUPPORTED = "unsupported"  # the request needs a feature this provider lacks

    @property
    def retryable(self) -> bool:
        """Worth calling the same provider again."""
        return self in _RETRYABLE

    @property
    def disables_provider(self) -> bool:
        """The provider cannot succeed until the config changes (bad key, no model...)."""
        return self in _DISABLING

    @property
    def counts_against_provider(self) -> bool:
        """Says something about the provider, not the request: feeds cooldowns and the breaker."""
        return self in _PROVIDER_FAULTS


_RETRYABLE = frozenset(
    {
        ErrorKind.RATE_LIMIT,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.TIMEOUT,
        ErrorKind.NETWORK,
        ErrorKind.BAD_RESPONSE,
    }
)
_DISABLING = frozenset({ErrorKind.AUTH, ErrorKind.PERMISSION, ErrorKind.NOT_FOUND, ErrorKind.QUOTA})
# Failures that say the provider (not the request) is in trouble.
_PROVIDER_FAULTS = frozenset(
    {
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.TIMEOUT,
        ErrorKind.STALLED,
        ErrorKind.NETWORK,
        ErrorKind.TLS,
        ErrorKind.BAD_RESPONSE,
    }
)


class RolecallError(Exception):
    """Base of every error rolecall raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields, not by calling __init__ again with ``args`` (which
        # the subclasses' own signatures do not take), so an error crosses a process
        # boundary (multiprocessing, concurrent.futures) with kind, provider and errors.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[RolecallError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file: where, what, and how to fix it."""

    location: str
    problem: str
    fix: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.location or "<file>"
        if self.line is not None:
            where += f" (line {self.line})"
        text = f"{where}: {self.problem}"
        if self.fix:
            text += f"; {self.fix}"
        # A config may hold control characters (in a key, a value): shown as escapes.
        return visible(redact(text))


_SHOWN_ISSUES = 20  # in the message; ``issues`` holds them all


class ConfigError(RolecallError):
    """The configuration is invalid; ``issues`` holds every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue], source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.issues)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(f"  {issue}" for issue in self.issues[:_SHOWN_ISSUES])
        if count > _SHOWN_ISSUES:
            more = count - _SHOWN_ISSUES
            body += f"\n  ... {more} more: `rolecall config validate --json` lists them"
        super().__init__(f"{head}{count} config {noun}\n{body}")


class MissingExtra(RolecallError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, extra: str, package: str, purpose: str) -> None:
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'rolecall[{extra}]'"
        )


# The longest wait a provider's answer may impose (a cooldown, a retry hint): a server
# asking for more (``Retry-After: 1e12``, a date in year 9999) is asked again after this.
MAX_RETRY_AFTER = 3600.0


def _wait(seconds: float | None) -> float | None:
    """``seconds`` within 0..MAX_RETRY_AFTER; None when it is not a number (NaN)."""
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class ProviderError(RolecallError):
    """One call to one provider failed; ``retry_after`` (seconds) is capped at
    :data:`MAX_RETRY_AFTER`, so no server can cool a provider down for ever. ``params``
    names the call parameters the provider was not called for (kind ``unsupported``).
    ``local``: the failure is this side's, not the provider's (no file descriptor left to
    connect with, a proxy that refused the connection): the provider's health is left alone."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        provider: str = "",
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        params: Sequence[str] = (),
        local: bool = False,
    ) -> None:
        self.kind = kind
        self.local = local
        self.provider = provider
        self.status = status
        self.retryable = kind.retryable if retryable is None else retryable
        self.retry_after = _wait(retry_after)
        self.params = tuple(params)
        super().__init__(message)

    def __repr__(self) -> str:
        return (
            f"ProviderError(kind={self.kind.value!r}, provider={self.provider!r}, "
            f"status={self.status!r}, message={self.message!r})"
        )


class StreamInterrupted(ProviderError):
    """A stream failed after content reached the caller; it is not retried or handed over."""

    def __init__(self, cause: ProviderError, received_chars: int) -> None:
        self.cause = cause
        self.received_chars = received_chars
        super().__init__(
            f"stream from provider '{cause.provider}' failed after {received_chars} characters "
            f"were received ({cause.kind.value}: {cause.message}); the partial answer was not "
            "retried to avoid duplicated text",
            kind=cause.kind,
            provider=cause.provider,
            status=cause.status,
            retryable=False,
        )


class NoProviderForRole(RolecallError):
    """A role has no provider assigned and the config has no ``default_provider``."""

    def __init__(self, role: str, *, near: str | None = None) -> None:
        self.role = role
        fix = f"assign one under roles.{role}.provider or set default_provider"
        if near is not None:  # a configured role with a close name: likely a typo
            fix = f"did you mean '{near}'? (or {fix})"
        super().__init__(f"no provider for role '{role}': {fix}")


class AllProvidersFailed(RolecallError):
    """Every provider in the role's chain failed; ``errors`` holds each, in call order.

    ``attempts`` lists every call made (:class:`rolecall.types.Attempt`); ``message``
    replaces the default text (the router passes one with a fix per provider);
    ``latency_ms`` is the time the router spent on the request, waits between attempts
    included (as a :class:`~rolecall.types.Reply`'s), None when unknown.
    """

    def __init__(
        self,
        role: str,
        errors: Sequence[ProviderError],
        *,
        attempts: Sequence[Attempt] = (),
        message: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        self.role = role
        self.errors = list(errors)
        self.attempts = list(attempts)
        self.latency_ms = latency_ms
        if message is None:
            tried = "; ".join(f"{e.provider}: {e.kind.value}: {e.message}" for e in self.errors)
            message = f"every provider for role '{role}' failed: {tried or 'none available'}"
        super().__init__(message)


class CredentialsError(RolecallError):
    """The startup credential check failed for one or more providers."""

    def __init__(self, errors: Sequence[ProviderError], *, message: str | None = None) -> None:
        self.errors = list(errors)
        if message is None:
            lines = "\n".join(f"  {e.provider}: {e.message}" for e in self.errors)
            message = f"credential check failed for {len(self.errors)} provider(s)\n{lines}"
        super().__init__(message)


class RouterClosed(RolecallError):
    """The router was closed (``aclose``) before or while a call ran: the call was ended
    (recorded as cancelled), not handed over; a new router can answer it."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "the router was closed while this call ran (it was cancelled, not handed "
            "over): create a new Router to call again"
        )


class UnknownParameter(RolecallError):
    """A call parameter that no provider protocol knows; the message suggests the near name."""
