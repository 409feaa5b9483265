"""The global retry policy as pure functions: whether to retry, how long to wait, the budget.

The router owns the clock and the sleep; these functions only decide, so they are
cheap to call on every failure and easy to test exhaustively.
"""

from __future__ import annotations

from collections.abc import Callable

from rolecall.config.schema import RetryConfig
from rolecall.errors import ErrorKind, ProviderError

__all__ = ["RETRYABLE_KINDS", "retry_delay", "should_retry", "within_budget"]

# Worth calling the same provider again: the failure says nothing about the request.
RETRYABLE_KINDS = frozenset(kind for kind in ErrorKind if kind.retryable)
# A malformed reply is usually a fluke; a second one in a row is the provider's habit.
_BAD_RESPONSE_MAX_ATTEMPT = 1


def should_retry(error: ProviderError, attempt: int, policy: RetryConfig) -> bool:
    """Call the same provider again after ``attempt`` calls (1-based) failed with ``error``?

    Only transient kinds are retried (rate limit, overloaded, server, timeout,
    network), a malformed reply at most once, and never past ``max_attempts``.
    An adapter may veto a retry with ``retryable=False`` but never force one for
    a kind that cannot succeed on a second try (bad key, quota, prompt too long...).
    """
    if attempt >= policy.max_attempts or not error.retryable:
        return False
    if error.kind is ErrorKind.BAD_RESPONSE:
        return attempt <= _BAD_RESPONSE_MAX_ATTEMPT
    return error.kind in RETRYABLE_KINDS


def retry_delay(
    attempt: int,
    policy: RetryConfig,
    retry_after: float | None,
    rng: Callable[[], float],
) -> float:
    """Seconds to wait before call ``attempt + 1``, after ``attempt`` calls failed.

    Exponential: ``initial_backoff * multiplier ** (attempt - 1)`` capped at
    ``max_backoff``; with jitter the wait is drawn from [0.5x, 1x] of that so
    concurrent tasks do not retry in lockstep. The server's ``Retry-After`` is a
    floor: waking earlier would only earn another 429.
    """
    exponent = max(attempt - 1, 0)
    backoff = min(policy.initial_backoff * policy.multiplier**exponent, policy.max_backoff)
    if policy.jitter:
        backoff *= 0.5 + 0.5 * rng()
    if retry_after is not None and retry_after > backoff:
        return float(retry_after)
    return float(backoff)


def within_budget(
    now: float, first_failure_at: float, delay: float, failover_within: float
) -> bool:
    """May a provider that first failed at ``first_failure_at`` wait ``delay`` more seconds?

    A failing provider must hand over to the next in its chain within
    ``failover_within`` of its first failure; when waiting would break that,
    the router hands over now instead.
    """
    return now + delay <= first_failure_at + failover_within
