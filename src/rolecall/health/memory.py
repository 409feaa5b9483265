"""What the router knows about each provider's health, shared by every concurrent task.

- **unavailable**: a bad key, no permission, unknown model or no quota; the provider
  cannot succeed until the config changes, so it is skipped for the rest of the
  process (or until :meth:`ProviderHealth.reset`).
- **cooling_down**: rate limited; nobody calls it until the vendor's reset time.
- **open** / **half_open**: a circuit breaker. After ``failure_threshold`` transient
  failures in a row the provider is skipped for ``open_for`` seconds; then exactly
  one probe call is let through: success closes the circuit, failure re-opens it.
- **first-call gate**: a provider that has neither answered in this process nor
  been confirmed by the credential check admits one call at a time until its first
  answer, so fifty tasks started together against a bad key make one call, not fifty.

Everything here is a dict lookup (no I/O, no lock held across an await). The
router talks to it through the small :class:`HealthTracker` protocol so a shared
(e.g. Redis-backed) tracker can replace this in-memory one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rolecall.errors import ErrorKind, ProviderError

__all__ = [
    "Admission",
    "HealthState",
    "HealthTracker",
    "ProviderHealth",
    "SharedProbe",
]

log = logging.getLogger("rolecall.health")

HealthState = Literal["ok", "unavailable", "cooling_down", "open", "half_open"]

# Failures that say the provider (not the request) is in trouble.
_BREAKER_KINDS = frozenset(kind for kind in ErrorKind if kind.counts_against_provider)


class Admission(Protocol):
    """Permission to make one call; release it once the outcome has been recorded."""

    def release(self) -> None: ...


class SharedProbe:
    """A half-open probe held for several processes: releasing it frees the shared claim too."""

    __slots__ = ("_inner", "_release_shared")

    def __init__(self, inner: Admission, release_shared: Callable[[], None]) -> None:
        self._inner = inner
        self._release_shared = release_shared

    def release(self) -> None:
        self._inner.release()
        self._release_shared()


class HealthTracker(Protocol):
    """The health interface the router uses; all methods but :meth:`admit` are sync lookups."""

    def is_available(self, provider_id: str) -> bool: ...

    def state(self, provider_id: str) -> HealthState: ...

    def reason(self, provider_id: str) -> ProviderError | None: ...

    def cooldown_remaining(self, provider_id: str) -> float: ...

    def latency_ms(self, provider_id: str) -> float | None: ...

    def is_down(self, provider_id: str) -> bool: ...

    def gated(self, provider_id: str) -> bool: ...

    async def admit(self, provider_id: str) -> Admission | None: ...

    def mark_unavailable(self, provider_id: str, error: ProviderError) -> None: ...

    def cool_down(self, provider_id: str, until: float) -> None: ...

    def record_failure(self, provider_id: str, error: ProviderError) -> None: ...

    def record_success(self, provider_id: str, latency_ms: float) -> None: ...

    def mark_confirmed(self, provider_id: str) -> None: ...

    def reset(self) -> None: ...

    def snapshot(self) -> dict[str, dict[str, Any]]: ...


class _Free:
    """The admission of a provider with no gate: nothing to release."""

    __slots__ = ()

    def release(self) -> None:
        return None


_FREE = _Free()


@dataclass(slots=True)
class _Entry:
    unavailable: ProviderError | None = None
    cool_until: float = 0.0
    consecutive_failures: int = 0
    opened_at: float | None = None
    last_failure: ProviderError | None = None
    # Answered at least once in this process, or confirmed by the credential check.
    proven: bool = False
    gate: asyncio.Event | None = None
    probing: bool = False
    latency_ms: float | None = None
    successes: int = 0
    failures: int = 0


class _FirstCall:
    """Holds a provider's first-call gate; waiters wake when it is released."""

    __slots__ = ("_entry", "_event")

    def __init__(self, entry: _Entry, event: asyncio.Event) -> None:
        self._entry = entry
        self._event = event

    def release(self) -> None:
        if self._entry.gate is self._event:
            self._entry.gate = None
        self._event.set()


class _Probe:
    """The one call let through a half-open circuit."""

    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def release(self) -> None:
        self._entry.probing = False


class ProviderHealth:
    """In-memory :class:`HealthTracker` for one process (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        failure_threshold: int = 5,
        open_for: float = 30.0,
        latency_alpha: float = 0.3,
    ) -> None:
        self._clock = clock
        self.failure_threshold = failure_threshold
        self.open_for = open_for
        self._alpha = latency_alpha
        self._entries: dict[str, _Entry] = {}

    def _entry(self, provider_id: str) -> _Entry:
        entry = self._entries.get(provider_id)
        if entry is None:
            entry = self._entries[provider_id] = _Entry()
        return entry

    # ---- lookups -------------------------------------------------------------------------

    def state(self, provider_id: str) -> HealthState:
        entry = self._entries.get(provider_id)
        if entry is None:
            return "ok"
        return self._state(entry, self._clock())

    def _state(self, entry: _Entry, now: float) -> HealthState:
        if entry.unavailable is not None:
            return "unavailable"
        if now < entry.cool_until:
            return "cooling_down"
        if entry.opened_at is not None:
            return "open" if now < entry.opened_at + self.open_for else "half_open"
        return "ok"

    def is_available(self, provider_id: str) -> bool:
        """Would a call be admitted now (possibly after waiting for the first-call gate)?"""
        return not ProviderHealth.is_down(self, provider_id)

    def is_down(self, provider_id: str) -> bool:
        """No call would be admitted now, by what this process knows: a dict lookup that
        never reads shared state (the strategies ask it on every call; admission checks)."""
        entry = self._entries.get(provider_id)
        if entry is None:
            return False
        state = self._state(entry, self._clock())
        return not (state == "ok" or (state == "half_open" and not entry.probing))

    def reason(self, provider_id: str) -> ProviderError | None:
        """Why the provider is skipped now, as the error that caused it; None when available."""
        entry = self._entries.get(provider_id)
        if entry is None:
            return None
        now = self._clock()
        state = self._state(entry, now)
        if state == "unavailable":
            return entry.unavailable
        if state == "cooling_down":
            remaining = entry.cool_until - now
            return ProviderError(
                f"skipped: rate limited for another {remaining:.1f} s",
                kind=ErrorKind.RATE_LIMIT,
                provider=provider_id,
                retry_after=remaining,
            )
        if state == "open" or (state == "half_open" and entry.probing):
            last = entry.last_failure
            kind = last.kind if last is not None else ErrorKind.SERVER
            detail = f" (last: {last.message})" if last is not None else ""
            assert entry.opened_at is not None
            retry_in = max(entry.opened_at + self.open_for - now, 0.0)
            return ProviderError(
                f"skipped: {entry.consecutive_failures} failures in a row{detail}; "
                f"tried again in {retry_in:.0f} s",
                kind=kind,
                provider=provider_id,
                retry_after=retry_in,
            )
        return None

    def cooldown_remaining(self, provider_id: str) -> float:
        entry = self._entries.get(provider_id)
        if entry is None:
            return 0.0
        return max(entry.cool_until - self._clock(), 0.0)

    def latency_ms(self, provider_id: str) -> float | None:
        entry = self._entries.get(provider_id)
        return entry.latency_ms if entry is not None else None

    # ---- admission -----------------------------------------------------------------------

    def gated(self, provider_id: str) -> bool:
        """Whether :meth:`admit` would wait for another call's first answer now."""
        entry = self._entries.get(provider_id)
        return entry is not None and not entry.proven and entry.gate is not None

    async def admit(self, provider_id: str) -> Admission | None:
        """Permission for one call, or None when the provider must be skipped now.

        Waits (on an event, holding nothing) while another task makes the provider's
        first call; re-checks the provider's state once that call has answered.
        """
        entry = self._entry(provider_id)
        while True:
            state = self._state(entry, self._clock())
            if state == "half_open":
                if entry.probing:
                    return None
                entry.probing = True
                return _Probe(entry)
            if state != "ok":
                return None
            if entry.proven:
                return _FREE
            if entry.gate is None:
                entry.gate = asyncio.Event()
                return _FirstCall(entry, entry.gate)
            await entry.gate.wait()
            # reset() may have replaced the entry while we waited.
            entry = self._entry(provider_id)

    # ---- outcomes ------------------------------------------------------------------------

    def mark_unavailable(self, provider_id: str, error: ProviderError) -> None:
        entry = self._entry(provider_id)
        entry.proven = True
        if entry.unavailable is None:
            entry.unavailable = error
            log.warning(
                "provider %s is skipped until the config changes: %s: %s",
                provider_id,
                error.kind.value,
                error.message,
            )

    def cool_down(self, provider_id: str, until: float) -> None:
        entry = self._entry(provider_id)
        entry.proven = True
        entry.cool_until = max(entry.cool_until, until)

    def record_failure(self, provider_id: str, error: ProviderError) -> None:
        """Count a failed call; transient failures in a row open the circuit."""
        entry = self._entry(provider_id)
        entry.proven = True
        entry.failures += 1
        entry.last_failure = error
        if error.kind in _BREAKER_KINDS:
            entry.consecutive_failures += 1
            if entry.opened_at is not None:
                # A failed half-open probe (or a late failure): stay open for another period.
                entry.opened_at = self._clock()
            elif entry.consecutive_failures >= self.failure_threshold:
                entry.opened_at = self._clock()
                log.warning(
                    "provider %s failed %d times in a row; skipped for %.0f s",
                    provider_id,
                    entry.consecutive_failures,
                    self.open_for,
                )
        elif error.kind is not ErrorKind.RATE_LIMIT and not error.kind.disables_provider:
            # The provider answered; the request was the problem (too long, filtered...).
            entry.consecutive_failures = 0
            entry.opened_at = None

    def record_success(self, provider_id: str, latency_ms: float) -> None:
        entry = self._entry(provider_id)
        entry.proven = True
        entry.successes += 1
        entry.consecutive_failures = 0
        entry.opened_at = None
        previous = entry.latency_ms
        entry.latency_ms = (
            latency_ms if previous is None else previous + self._alpha * (latency_ms - previous)
        )

    def mark_confirmed(self, provider_id: str) -> None:
        """The key works (credential check or first streamed text): lift the first-call gate."""
        entry = self._entry(provider_id)
        entry.proven = True
        gate = entry.gate
        if gate is not None:
            entry.gate = None
            gate.set()

    def reset(self) -> None:
        """Forget everything (after a config reload): every provider is tried again."""
        entries, self._entries = self._entries, {}
        for entry in entries.values():
            if entry.gate is not None:
                entry.gate.set()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        for provider_id, entry in self._entries.items():
            reason = self.reason(provider_id)
            out[provider_id] = {
                "state": self._state(entry, now),
                "consecutive_failures": entry.consecutive_failures,
                "cooldown_remaining_s": round(max(entry.cool_until - now, 0.0), 3),
                "latency_ms": None if entry.latency_ms is None else round(entry.latency_ms, 3),
                "successes": entry.successes,
                "failures": entry.failures,
                "reason": reason.message if reason is not None else None,
            }
        return out
