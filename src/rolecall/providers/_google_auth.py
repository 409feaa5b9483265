"""Google Cloud OAuth access tokens (Application Default Credentials) for Vertex AI.

:class:`AccessToken` gives the headers of one call: ``Authorization: Bearer TOKEN`` (and
``x-goog-user-project`` when the credentials name a quota project, as google-genai sends
it). The credentials come from ``google.auth.default`` (``GOOGLE_APPLICATION_CREDENTIALS``,
gcloud's ``application_default_credentials.json``, the metadata server) or from one JSON
file (a service-account key, an authorized user, workload identity federation), or are
handed in (tests, embedders): anything with ``token``, ``expiry`` and ``refresh(request)``;
or a fixed token (``api_key``: ``gcloud auth print-access-token``) is sent as is.

Loading and refreshing block (file reads, the token server, the metadata server probe),
so they run in a thread of their own (``_credential_thread``), one at a time per provider
however many calls wait for them. A token is renewed ``REFRESH_MARGIN`` seconds before its
expiry, measured on the clock given (epoch seconds), so a call never leaves with a token
that dies on the way; a token the server refused is renewed at once
(:meth:`AccessToken.renewed`), for the refused call to go again.

google-auth (extra ``rolecall[vertex]``, with ``requests`` for its token transport) is
imported only here, and only when credentials are loaded or refreshed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from rolecall._secrets import forget_secret, register_secret
from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers._credential_thread import CredentialThread
from rolecall.providers._errors import clip

__all__ = [
    "EXTRA",
    "REFRESH_MARGIN",
    "SCOPES",
    "AccessToken",
    "load_credentials",
    "require_google_auth",
]

EXTRA = "vertex"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# google-auth's own threshold (``_helpers.REFRESH_THRESHOLD``, 3 min 45 s): tokens last an hour.
REFRESH_MARGIN = 225.0
_PURPOSE = "Vertex AI (Google Cloud credentials)"
_T = TypeVar("_T")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # a missing parent ("google") raises
        return False


def require_google_auth() -> None:
    """Raise :class:`MissingExtra` unless google-auth and its ``requests`` transport exist."""
    if not (_installed("google.auth") and _installed("requests")):
        raise MissingExtra(EXTRA, "google-auth[requests]", _PURPOSE)


def load_credentials(credentials_file: str | None) -> Any:
    """ADC, or the credentials in ``credentials_file``, for cloud-platform (blocking).

    The file may be a service-account key or an authorized user (what ``gcloud auth
    application-default login`` writes), read with google-auth's loader for that type:
    its generic loader is deprecated, as it would also run the commands an external
    account file names. Other kinds go through ``GOOGLE_APPLICATION_CREDENTIALS``.
    """
    if not credentials_file:
        import google.auth

        credentials, _project = google.auth.default(scopes=list(SCOPES))
        return credentials
    with open(credentials_file, encoding="utf-8") as file:
        try:
            info = json.load(file)
        except ValueError:
            raise ValueError(f"{credentials_file} is not JSON") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES)
        )
    if kind == "authorized_user":
        from google.oauth2 import credentials as user

        # Scoped as granted at login, as google.auth.default leaves user credentials.
        return user.Credentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
    raise ValueError(
        f"{credentials_file} is a {kind!r} file, not a service-account key or an authorized "
        "user; for other kinds set GOOGLE_APPLICATION_CREDENTIALS and leave credentials_file out"
    )


def _transport() -> Any:
    """google-auth's HTTP transport for the token server (blocking, used in a thread)."""
    try:
        from google.auth.transport.requests import Request
    except ImportError:
        raise MissingExtra(EXTRA, "google-auth[requests]", _PURPOSE) from None
    return Request()


def _epoch(expiry: object) -> float | None:
    """google-auth's expiry (a naive UTC datetime) as epoch seconds; None: no expiry."""
    if not isinstance(expiry, datetime):
        return None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return expiry.timestamp()


def _google_auth_exceptions() -> Any:
    """google.auth.exceptions, or None (handed-in credentials, google-auth not installed)."""
    try:
        from google.auth import exceptions
    except ImportError:
        return None
    return exceptions


class AccessToken:
    """One provider's OAuth access token, renewed before it expires."""

    def __init__(
        self,
        provider_id: str,
        *,
        credentials: Any = None,
        credentials_file: str | None = None,
        fixed_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``fixed_token``: an access token sent as is, never renewed (no google-auth)."""
        if credentials is None and fixed_token is None:
            require_google_auth()
        self._provider = provider_id
        self._credentials = credentials
        self._file = credentials_file
        self._clock = clock
        self._headers: dict[str, str] = {}
        self._token = ""
        self._expires_at: float | None = None
        self._stale = False  # refused: renew even if the credentials think it valid
        self._transport: Any = None
        self._thread = CredentialThread(provider_id)
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._fixed = fixed_token is not None
        if fixed_token is not None:
            self._headers = {"authorization": f"Bearer {fixed_token}"}

    def _fresh(self) -> bool:
        if self._fixed:
            return True
        if not self._headers or self._stale:
            return False
        return self._expires_at is None or self._clock() < self._expires_at - REFRESH_MARGIN

    def _usable(self, credentials: Any) -> bool:
        """Whether the credentials' own token may be sent without a refresh."""
        if self._stale or not getattr(credentials, "token", None):
            return False
        expires_at = _epoch(getattr(credentials, "expiry", None))
        return expires_at is None or self._clock() < expires_at - REFRESH_MARGIN

    def _guard(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def headers(self) -> Mapping[str, str]:
        """The headers of one call; raises ProviderError when no token can be had."""
        if self._fresh():
            return self._headers
        async with self._guard():
            if not self._fresh():  # another call may have renewed it while this one waited
                await self._renew()
        return self._headers

    async def renewed(self, sent: Mapping[str, str]) -> bool:
        """The server refused the token in ``sent``: renew it now, unless another refused
        call already did; whether the token now differs."""
        if self._fixed:
            return False
        refused = sent.get("authorization")
        async with self._guard():
            if self._headers.get("authorization") == refused:
                self._stale = True
                await self._renew()
        return self._headers.get("authorization") != refused

    async def _renew(self) -> None:
        credentials = self._credentials
        if credentials is None:
            credentials = await self._blocking(load_credentials, self._file)
            self._credentials = credentials
        if not self._usable(credentials):
            if self._transport is None:
                self._transport = _transport()
            await self._blocking(credentials.refresh, self._transport)
        token = getattr(credentials, "token", None)
        if not isinstance(token, str) or not token:
            raise self._error("the Google Cloud credentials gave no access token", ErrorKind.AUTH)
        if token != self._token:
            register_secret(token)
            if self._token:
                forget_secret(self._token)  # expired: no need to keep masking it
            self._token = token
        headers = {"authorization": f"Bearer {token}"}
        quota_project = getattr(credentials, "quota_project_id", None)
        if isinstance(quota_project, str) and quota_project:
            headers["x-goog-user-project"] = quota_project
        self._headers = headers
        self._expires_at = _epoch(getattr(credentials, "expiry", None))
        self._stale = False

    async def _blocking(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return await self._thread.run(function, *args)
        except MissingExtra:
            raise
        except Exception as exc:
            raise self._credential_error(exc) from exc

    def _error(self, message: str, kind: ErrorKind) -> ProviderError:
        return ProviderError(message, kind=kind, provider=self._provider)

    def _credential_error(self, exc: Exception) -> ProviderError:
        detail = clip(str(exc)) or type(exc).__name__
        exceptions = _google_auth_exceptions()
        if exceptions is not None and isinstance(exc, exceptions.TransportError):
            return self._error(
                f"Google's token server cannot be reached: {detail}", ErrorKind.NETWORK
            )
        if exceptions is not None and isinstance(exc, exceptions.DefaultCredentialsError):
            where = f"providers.{self._provider}.credentials_file"
            return self._error(
                f"no usable Google Cloud credentials ({detail}); run `gcloud auth "
                f"application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS or {where} "
                "to a service-account key file",
                ErrorKind.AUTH,
            )
        if exceptions is not None and isinstance(exc, exceptions.RefreshError):
            if getattr(exc, "retryable", False):  # the token server failed, not the credentials
                return self._error(f"Google's token server failed: {detail}", ErrorKind.SERVER)
            return self._error(
                f"the Google Cloud credentials were refused ({detail}); log in again with "
                "`gcloud auth application-default login` or check the service-account key",
                ErrorKind.AUTH,
            )
        if self._file and isinstance(exc, OSError | ValueError):
            where = f"providers.{self._provider}.credentials_file"
            return self._error(f"{where}: {detail}", ErrorKind.AUTH)
        return self._error(f"the Google Cloud credentials failed: {detail}", ErrorKind.AUTH)
