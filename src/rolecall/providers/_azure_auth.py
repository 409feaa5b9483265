"""Microsoft Entra ID bearer tokens for Azure OpenAI, cached and refreshed before they expire.

Any object with azure-identity's ``get_token(*scopes)`` serves: an ``azure.identity.aio``
credential (awaited on the event loop), a synchronous one (called in a worker thread, so
a slow sign-in never blocks other calls), or a test double. The token is kept until
``refresh_on`` when the credential gives one (azure-core's ``AccessTokenInfo``), else
until :data:`REFRESH_MARGIN` seconds before ``expires_on``, as azure-core's own bearer
policy does; concurrent calls that find it stale share one fetch, and so do calls whose
token Azure refused (:meth:`EntraTokens.renewed`).

:func:`default_credential` is azure-identity's ``DefaultAzureCredential`` (environment,
workload identity, managed identity, Azure CLI...), imported only when ``auth: entra``
is configured; without the package it raises :class:`MissingExtra` naming ``azure``.

Each token is registered for redaction, so a server or proxy error that echoes the
``Authorization`` header never shows it; a replaced one stays masked until it has expired
(another provider on the same sign-in may still be sending it).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rolecall._secrets import forget_secret, register_secret
from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers._credential_thread import CredentialThread
from rolecall.providers._errors import clip

__all__ = [
    "REFRESH_MARGIN",
    "SCOPE",
    "EntraTokens",
    "TokenCredential",
    "default_credential",
]

SCOPE = "https://cognitiveservices.azure.com/.default"
# azure-identity's DEFAULT_REFRESH_OFFSET: a token this close to expiry is replaced.
REFRESH_MARGIN = 300.0
_FIX = (
    "sign in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, "
    "or run where a managed identity is assigned"
)


class TokenCredential(Protocol):
    """azure-identity's credential protocol (sync or async ``get_token``)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # epoch seconds: fetch a new one from then on
    expires_at: float  # epoch seconds: from then on it is worthless, no longer masked


class EntraTokens:
    """The current token for one provider's credential; see the module docstring."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        provider: str = "",
        scope: str = SCOPE,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self.credential = credential
        self.provider = provider
        self.scope = scope
        self.fetches = 0
        self._clock = clock
        self._margin = margin
        self._token: _Token | None = None
        self._replaced: list[_Token] = []  # masked until they expire
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._thread = CredentialThread(provider or "azure")

    def _fresh(self) -> str | None:
        token = self._token
        return token.value if token is not None and self._clock() < token.refresh_at else None

    async def token(self) -> str:
        """A token valid for at least the refresh margin; a ProviderError (``auth``) when the
        credential cannot give one."""
        value = self._fresh()
        if value is not None:
            return value
        async with self._guard():
            value = self._fresh()  # another call may have fetched it meanwhile
            if value is None:
                fetched = await self._fetch()
                self._keep(fetched)
                value = fetched.value
        return value

    async def renewed(self, refused: str) -> bool:
        """Azure refused the token ``refused``: fetch another, unless another refused call
        already did; whether the token now differs."""
        async with self._guard():
            if self._token is None or self._token.value == refused:
                self._keep(await self._fetch())
        return self._token is not None and self._token.value != refused

    def _guard(self) -> asyncio.Lock:
        """The lock of the running event loop (a lock waited on in one loop fails in the
        next, as when synchronous code runs each batch in its own ``asyncio.run``)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _keep(self, fetched: _Token) -> None:
        """Mask the new token; stop masking replaced ones that have expired."""
        register_secret(fetched.value)
        if self._token is not None and self._token.value != fetched.value:
            self._replaced.append(self._token)
        now = self._clock()
        for old in [old for old in self._replaced if old.expires_at <= now]:
            self._replaced.remove(old)
            if old.value != fetched.value:
                forget_secret(old.value)
        self._token = fetched

    async def _fetch(self) -> _Token:
        self.fetches += 1
        getter = self.credential.get_token
        try:
            if inspect.iscoroutinefunction(getter):
                result = await getter(self.scope)
            else:
                result = await self._thread.run(getter, self.scope)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:  # the credential's own errors, whatever the library
            detail = clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 200)
            raise ProviderError(
                f"no Microsoft Entra ID token ({detail}); {_FIX}",
                kind=ErrorKind.AUTH,
                provider=self.provider,
            ) from None
        return self._parse(result)

    def _parse(self, result: Any) -> _Token:
        value = getattr(result, "token", None)
        expires_on = getattr(result, "expires_on", None)
        if not isinstance(value, str) or not value or not isinstance(expires_on, int | float):
            raise ProviderError(
                "the Entra ID credential returned no token and expiry (expected an AccessToken)",
                kind=ErrorKind.AUTH,
                provider=self.provider,
            )
        refresh_at = float(expires_on) - self._margin
        refresh_on = getattr(result, "refresh_on", None)
        if isinstance(refresh_on, int | float) and refresh_on > 0:
            refresh_at = min(refresh_at, float(refresh_on))
        return _Token(value, refresh_at, float(expires_on))

    async def aclose(self) -> None:
        """Close the credential's own connections (azure-identity credentials hold some)."""
        close = getattr(self.credential, "close", None)
        if close is None:
            return
        result = close()
        if inspect.isawaitable(result):
            await result


def default_credential() -> TokenCredential:
    """azure-identity's DefaultAzureCredential, the asyncio one when it can be imported."""
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise MissingExtra(
                "azure", "azure-identity", "Microsoft Entra ID sign-in (auth: entra)"
            ) from None
    credential: TokenCredential = DefaultAzureCredential()
    return credential
