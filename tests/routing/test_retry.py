"""The retry policy as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolecall.config.schema import RetryConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.routing.retry import retry_delay, should_retry, within_budget

POLICY = RetryConfig(max_attempts=3, initial_backoff=1.0, max_backoff=30.0, multiplier=2.0)


def _error(kind: ErrorKind, **kw: object) -> ProviderError:
    return ProviderError("x", kind=kind, provider="p", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.RATE_LIMIT,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.TIMEOUT,
        ErrorKind.NETWORK,
    ],
)
def test_transient_kinds_retry_until_max_attempts(kind: ErrorKind) -> None:
    assert [should_retry(_error(kind), n, POLICY) for n in (1, 2, 3, 4)] == [
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.AUTH,
        ErrorKind.PERMISSION,
        ErrorKind.NOT_FOUND,
        ErrorKind.QUOTA,
        ErrorKind.CONTEXT_LENGTH,
        ErrorKind.CONTENT_FILTER,
        ErrorKind.BAD_REQUEST,
    ],
)
def test_permanent_kinds_never_retry(kind: ErrorKind) -> None:
    assert not should_retry(_error(kind), 1, POLICY)
    # Even an adapter that marks one retryable cannot make it so.
    assert not should_retry(_error(kind, retryable=True), 1, POLICY)


def test_bad_response_is_retried_once_at_most() -> None:
    policy = RetryConfig(max_attempts=5)
    error = _error(ErrorKind.BAD_RESPONSE)
    assert [should_retry(error, n, policy) for n in (1, 2, 3)] == [True, False, False]


def test_adapter_can_veto_a_retry() -> None:
    assert not should_retry(_error(ErrorKind.SERVER, retryable=False), 1, POLICY)


def test_single_attempt_policy_never_retries() -> None:
    assert not should_retry(_error(ErrorKind.SERVER), 1, RetryConfig(max_attempts=1))


def test_exponential_backoff_without_jitter() -> None:
    policy = RetryConfig(initial_backoff=0.5, multiplier=3.0, max_backoff=10.0, jitter=False)
    delays = [retry_delay(n, policy, None, lambda: 0.0) for n in range(1, 6)]
    assert delays == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_jitter_spans_half_to_full() -> None:
    assert retry_delay(2, POLICY, None, lambda: 0.0) == 1.0
    assert retry_delay(2, POLICY, None, lambda: 1.0) == 2.0
    assert retry_delay(2, POLICY, None, lambda: 0.5) == 1.5


def test_retry_after_is_a_floor() -> None:
    assert retry_delay(1, POLICY, 7.0, lambda: 1.0) == 7.0
    assert retry_delay(3, POLICY, 0.1, lambda: 1.0) == 4.0  # the backoff is already longer


@given(
    attempt=st.integers(1, 30),
    jitter=st.booleans(),
    draw=st.floats(0.0, 1.0, exclude_max=True),
    retry_after=st.none() | st.floats(0.0, 1000.0),
)
def test_delay_is_bounded(
    attempt: int, jitter: bool, draw: float, retry_after: float | None
) -> None:
    policy = RetryConfig(initial_backoff=0.2, max_backoff=5.0, multiplier=2.5, jitter=jitter)
    delay = retry_delay(attempt, policy, retry_after, lambda: draw)
    assert delay >= 0.0
    assert delay <= max(policy.max_backoff, retry_after or 0.0)
    if retry_after is not None:
        assert delay >= retry_after


def test_within_budget() -> None:
    assert within_budget(now=10.0, first_failure_at=10.0, delay=4.0, failover_within=5.0)
    assert within_budget(now=12.0, first_failure_at=10.0, delay=3.0, failover_within=5.0)
    assert not within_budget(now=12.0, first_failure_at=10.0, delay=3.5, failover_within=5.0)
    assert not within_budget(now=10.0, first_failure_at=10.0, delay=0.1, failover_within=0.0)
