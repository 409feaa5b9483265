"""The exceptions users catch keep what they carry when pickled (multiprocessing, futures)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from rolecall.errors import (
    AllProvidersFailed,
    ConfigError,
    ConfigIssue,
    CredentialsError,
    ErrorKind,
    MissingExtra,
    NoProviderForRole,
    ProviderError,
    RolecallError,
    RouterClosed,
    StreamInterrupted,
    UnknownParameter,
)
from rolecall.types import Attempt

_AUTH = ProviderError(
    "key rejected", kind=ErrorKind.AUTH, provider="gpt", status=401, retry_after=2.0
)
ERRORS = [
    _AUTH,
    AllProvidersFailed(
        "coder",
        [_AUTH],
        attempts=[Attempt("gpt", 1, "error", ErrorKind.AUTH, 12.0)],
        latency_ms=15.0,
    ),
    CredentialsError([_AUTH]),
    StreamInterrupted(ProviderError("reset", kind=ErrorKind.NETWORK, provider="gpt"), 42),
    MissingExtra("local", "llama-cpp-python", "the local model"),
    NoProviderForRole("coder"),
    ConfigError([ConfigIssue("roles.coder", "provider 'x' is not defined", "define it", 3)]),
    UnknownParameter("unknown parameter 'temp'"),
    RolecallError("the router is closed"),
    RouterClosed(),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_survive_pickling(error: RolecallError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert _fields(copy) == _fields(error)


def _fields(value: object) -> object:
    """What an error carries, nested errors included (exceptions compare by identity)."""
    if isinstance(value, BaseException):
        return (type(value), str(value), _fields(vars(value)))
    if isinstance(value, dict):
        return {key: _fields(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_fields(item) for item in value]
    return value


def _fail_over() -> None:
    raise AllProvidersFailed("coder", [_AUTH])


def test_an_error_raised_in_a_worker_process_reaches_the_caller() -> None:
    with ProcessPoolExecutor(1) as pool, pytest.raises(AllProvidersFailed) as caught:
        pool.submit(_fail_over).result()
    assert caught.value.role == "coder"
    assert [(e.provider, e.kind, e.status) for e in caught.value.errors] == [
        ("gpt", ErrorKind.AUTH, 401)
    ]
