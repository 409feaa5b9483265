"""Gateway keys and the loopback rule."""

from __future__ import annotations

import pytest

from rolecall._secrets import Secret
from rolecall.gateway.auth import KeyChecker, is_loopback, loopback_origin, unsafe_bind_message


def test_no_keys_means_open() -> None:
    checker = KeyChecker([])
    assert not checker.enabled
    assert checker.allows(None)


def test_bearer_keys() -> None:
    checker = KeyChecker([Secret("gw-key-one-123"), Secret("gw-key-two-456")])
    assert checker.enabled
    assert checker.allows("Bearer gw-key-one-123")
    assert checker.allows("bearer gw-key-two-456")
    assert not checker.allows("Bearer gw-key-one-12")
    assert not checker.allows("gw-key-one-123")
    assert not checker.allows("Basic gw-key-one-123")
    assert not checker.allows("")
    assert not checker.allows(None)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "http://127.0.0.1:4141",
        "http://localhost:3000",
        "https://[::1]:8443",
        "http://a.localhost",
    ],
)
def test_loopback_origin(origin: str | None) -> None:
    assert loopback_origin(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "",
        "http://evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example:4141",
        "chrome-extension://abcdef",
        "file://",
        "127.0.0.1",
    ],
)
def test_foreign_origin(origin: str) -> None:
    assert not loopback_origin(origin)


def test_message_names_the_setting() -> None:
    assert "gateway.keys" in unsafe_bind_message("0.0.0.0")
