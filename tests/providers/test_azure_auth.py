"""Microsoft Entra ID tokens for Azure OpenAI: fetched off the event loop, cached, refreshed
before they expire (on a fake clock), one fetch for concurrent callers, and a credential
that fails is a one-line ``auth`` error naming the fix."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any, NamedTuple

import pytest

from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers._azure_auth import REFRESH_MARGIN, SCOPE, EntraTokens, default_credential


class AccessToken(NamedTuple):  # azure-core's AccessToken
    token: str
    expires_on: int


class AccessTokenInfo(NamedTuple):  # azure-core's AccessTokenInfo (refresh_on may be set)
    token: str
    expires_on: int
    refresh_on: int | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class SyncCredential:
    """Issues token-1, token-2, ... each valid ``lifetime`` seconds from the clock's now."""

    def __init__(self, clock: Clock, lifetime: int = 3600) -> None:
        self.clock, self.lifetime = clock, lifetime
        self.issued = 0
        self.scopes: list[tuple[str, ...]] = []
        self.threads: set[int] = set()
        self.closed = False

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        self.threads.add(threading.get_ident())
        self.issued += 1
        return AccessToken(f"token-{self.issued}", int(self.clock() + self.lifetime))

    def close(self) -> None:
        self.closed = True


class AsyncCredential(SyncCredential):
    def __init__(self, clock: Clock, lifetime: int = 3600, delay: float = 0.0) -> None:
        super().__init__(clock, lifetime)
        self.delay = delay

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # type: ignore[override]
        await asyncio.sleep(self.delay)
        return SyncCredential.get_token(self, *scopes)

    async def close(self) -> None:  # type: ignore[override]
        self.closed = True


async def test_token_is_cached_until_the_refresh_margin_then_replaced() -> None:
    clock = Clock()
    credential = SyncCredential(clock)
    tokens = EntraTokens(credential, clock=clock)

    assert await tokens.token() == "token-1"
    clock.now += 3600 - REFRESH_MARGIN - 1  # still outside the margin
    assert await tokens.token() == "token-1"
    clock.now += 1  # now within 300 s of expiry
    assert await tokens.token() == "token-2"
    assert credential.scopes == [(SCOPE,), (SCOPE,)]


async def test_a_sync_credential_runs_off_the_event_loop_thread() -> None:
    credential = SyncCredential(Clock())
    await EntraTokens(credential, clock=Clock()).token()
    assert threading.get_ident() not in credential.threads


async def test_an_async_credential_is_awaited_and_concurrent_callers_share_one_fetch() -> None:
    clock = Clock()
    credential = AsyncCredential(clock, delay=0.01)
    tokens = EntraTokens(credential, clock=clock)

    got = await asyncio.gather(*(tokens.token() for _ in range(20)))
    assert set(got) == {"token-1"}
    assert credential.issued == 1 == tokens.fetches


def test_tokens_serve_one_event_loop_after_another() -> None:
    # A provider kept by synchronous code that runs each batch in its own asyncio.run.
    clock = Clock()
    credential = SyncCredential(clock)
    tokens = EntraTokens(credential, clock=clock)

    async def batch() -> set[str]:
        clock.now += 3600  # the last batch's token has expired: every caller needs a new one
        return set(await asyncio.gather(*(tokens.token() for _ in range(5))))

    assert asyncio.run(batch()) == {"token-1"}
    assert asyncio.run(batch()) == {"token-2"}
    assert credential.issued == 2


async def test_refresh_on_from_the_credential_comes_first() -> None:
    clock = Clock()

    class Early(SyncCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            token = super().get_token(*scopes)
            return AccessTokenInfo(token.token, token.expires_on, int(clock() + 600))  # type: ignore[return-value]

    tokens = EntraTokens(Early(clock), clock=clock)
    assert await tokens.token() == "token-1"
    clock.now += 600
    assert await tokens.token() == "token-2"


async def test_a_failing_credential_is_an_auth_error_naming_the_fix() -> None:
    class Unavailable:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise RuntimeError(
                "DefaultAzureCredential failed to retrieve a token from the included "
                "credentials.\nAttempted credentials:\n\tEnvironmentCredential: ..."
            )

    with pytest.raises(ProviderError) as raised:
        await EntraTokens(Unavailable(), provider="az").token()
    error = raised.value
    assert (error.kind, error.provider) == (ErrorKind.AUTH, "az")
    assert "DefaultAzureCredential failed" in error.message and "az login" in error.message
    assert "\n" not in error.message and "Attempted credentials" not in error.message


async def test_a_credential_returning_no_token_is_an_auth_error() -> None:
    class Empty:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return AccessToken("", 0)

    with pytest.raises(ProviderError) as raised:
        await EntraTokens(Empty()).token()
    assert raised.value.kind is ErrorKind.AUTH


@pytest.mark.parametrize("kind", [SyncCredential, AsyncCredential])
async def test_aclose_closes_the_credential(kind: type[SyncCredential]) -> None:
    credential = kind(Clock())
    await EntraTokens(credential).aclose()
    assert credential.closed


def test_without_azure_identity_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("azure", "azure.identity", "azure.identity.aio"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtra) as raised:
        default_credential()
    assert "rolecall[azure]" in str(raised.value) and "azure-identity" in str(raised.value)
