"""Bedrock's two ways to authenticate a request: SigV4 with AWS credentials, or an API key.

- **SigV4** (the default): credentials from the standard AWS chain, as the AWS CLI and
  boto3 find them (environment variables, the shared credentials and config files with
  ``profile``, SSO, assumed roles, web identity, container and instance metadata),
  through ``botocore.session.Session(profile=...).get_credentials()``. Each request is
  signed just before it is sent (``SigV4Auth``, service ``bedrock``, the region) over
  the method, the URL exactly as sent (the model id percent-encoded in the path), the
  ``host`` header and the body's SHA-256. Refreshable credentials (SSO, roles, instance
  metadata) are refreshed by botocore when they near expiry; a refresh that needs the
  network runs in a thread (``_credential_thread``), never on the event loop.
  Credentials AWS refuses (a session token expired early, a rotated
  ``~/.aws/credentials``) make the chain be resolved anew, once however many calls were
  refused together; the refused request goes once more when that gives other
  credentials.
- **Bedrock API key** (``Authorization: Bearer``): the config's ``api_key``, else
  ``AWS_BEARER_TOKEN_BEDROCK``, the variable boto3 reads for the same purpose (botocore
  prefers it to SigV4 for Bedrock when it is set). Nothing to sign.

Every secret met (the secret access key, a session token, the API key) is registered
for redaction, so an error text that echoes one never shows it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from rolecall._secrets import register_secret
from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers._credential_thread import CredentialThread
from rolecall.providers._errors import clip

__all__ = ["BEARER_ENV", "SERVICE", "BearerAuth", "SigV4Signer", "bearer_token"]

SERVICE = "bedrock"
BEARER_ENV = "AWS_BEARER_TOKEN_BEDROCK"


def bearer_token(api_key: str | None) -> str | None:
    """The Bedrock API key to send: the configured one, else ``AWS_BEARER_TOKEN_BEDROCK``."""
    token = api_key or os.environ.get(BEARER_ENV, "").strip() or None
    if token:
        register_secret(token)
    return token


class BearerAuth:
    """``Authorization: Bearer <Bedrock API key>`` on every request."""

    def __init__(self, token: str) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}

    async def headers(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        return self._headers

    async def renewed(self, sent: Mapping[str, str]) -> bool:
        return False  # a configured key does not change while the process runs


def _signed_by(sent: Mapping[str, str]) -> tuple[str, str | None]:
    """The access key id and session token a signed request was sent with."""
    credential = sent.get("authorization", "").partition("Credential=")[2]
    return credential.partition("/")[0], sent.get("x-amz-security-token")


def _botocore() -> tuple[Any, Any, Any, Any]:
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import ConnectionError, HTTPClientError
        from botocore.session import Session
    except ModuleNotFoundError:
        raise MissingExtra("bedrock", "botocore", "the Bedrock provider") from None
    return SigV4Auth, AWSRequest, (ConnectionError, HTTPClientError), Session


class SigV4Signer:
    """Signs each request with the AWS credential chain's current credentials.

    The chain is resolved, and expiring credentials refreshed, by one call at a time:
    concurrent calls wait for it rather than each running an SSO, STS or
    ``credential_process`` round of their own.
    """

    def __init__(self, region: str, profile: str | None, provider: str) -> None:
        self.region = region
        self.profile = profile
        self.provider = provider
        self._sigv4, self._request, self._unreachable, self._session_class = _botocore()
        self._credentials: Any = None
        self._registered: tuple[str, str | None] | None = None
        self._signing_with: tuple[str, str | None] | None = None  # access key id, token
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._thread = CredentialThread(provider)

    def _fail(self, message: str, kind: ErrorKind = ErrorKind.AUTH) -> ProviderError:
        return ProviderError(message, kind=kind, provider=self.provider)

    def _where(self) -> str:
        return f"profile '{self.profile}'" if self.profile else "the default AWS chain"

    def _failure(self, doing: str, exc: Exception) -> ProviderError:
        """A failure of the credential chain (botocore's errors, an STS or SSO refusal, a
        ``credential_process`` that is missing or prints no JSON) as a ProviderError:
        ``network`` when the credential service cannot be reached, ``server`` or
        ``rate_limit`` when it fails or throttles, else ``auth``."""
        detail = clip(str(exc), 300) or type(exc).__name__
        head = f"AWS credentials from {self._where()} cannot be {doing}"
        if isinstance(exc, self._unreachable):
            return self._fail(f"{head}: {detail}", ErrorKind.NETWORK)
        response = getattr(exc, "response", None)  # botocore's ClientError (STS, SSO)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(response.get("Error", {}).get("Code", ""))
            if isinstance(status, int) and status >= 500:
                return self._fail(f"{head}: {detail}", ErrorKind.SERVER)
            if "throttl" in code.lower() or status == 429:
                return self._fail(f"{head}: {detail}", ErrorKind.RATE_LIMIT)
        fix = "check the credential source of the profile (aws sts get-caller-identity shows it)"
        if "expired" in detail.lower():
            fix += " and this machine's clock"
        return self._fail(f"{head} ({type(exc).__name__}: {detail}); {fix}")

    def _chain(self) -> Any:
        """The chain's credentials object (it refreshes itself when it can); blocking."""
        try:
            session = self._session_class(profile=self.profile)
            credentials = session.get_credentials()
        except Exception as exc:  # botocore's, STS's or a credential process's own
            raise self._failure("loaded", exc) from None
        if credentials is None:
            raise self._fail(
                f"no AWS credentials found in {self._where()}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, run 'aws configure' or 'aws sso login', or set "
                f"api_key (or {BEARER_ENV}) to a Bedrock API key"
            )
        return credentials

    def _refresh(self, credentials: Any) -> Any:
        """Frozen credentials, refreshed first when they near expiry; blocking."""
        try:
            return credentials.get_frozen_credentials()
        except Exception as exc:  # as in _chain: whatever the credential source raised
            raise self._failure("refreshed", exc) from None

    def _needs_refresh(self, credentials: Any) -> bool:
        needs_refresh = getattr(credentials, "refresh_needed", None)
        return needs_refresh is not None and bool(needs_refresh())

    def _guard(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def _frozen(self) -> Any:
        """Current credentials; finding them or refreshing them (network) runs in a thread,
        one call at a time."""
        credentials = self._credentials
        if credentials is None or self._needs_refresh(credentials):
            async with self._guard():
                if self._credentials is None:  # another call may have found them meanwhile
                    self._credentials = await self._thread.run(self._chain)
                credentials = self._credentials
                if self._needs_refresh(credentials):
                    frozen = await self._thread.run(self._refresh, credentials)
                else:
                    frozen = self._refresh(credentials)
        else:
            frozen = self._refresh(credentials)
        self._use(frozen)
        return frozen

    def _use(self, frozen: Any) -> None:
        """Note what requests are signed with from now on; mask its secrets."""
        self._signing_with = (frozen.access_key, frozen.token)
        if (frozen.secret_key, frozen.token) != self._registered:
            self._registered = (frozen.secret_key, frozen.token)
            for secret in (frozen.secret_key, frozen.token):
                if secret:
                    register_secret(secret)

    async def renewed(self, sent: Mapping[str, str]) -> bool:
        """AWS refused the credentials ``sent`` was signed with: resolve the chain anew
        (files and environment read again, a role assumed again, the credential process
        run again), unless another refused call already did; whether they now differ."""
        refused = _signed_by(sent)
        async with self._guard():
            if self._signing_with in (None, refused):
                self._credentials = await self._thread.run(self._chain)
                self._use(await self._thread.run(self._refresh, self._credentials))
        return self._signing_with != refused

    def sign_with(self, frozen: Any, method: str, url: str, body: bytes | None) -> dict[str, str]:
        """The ``Authorization``, ``X-Amz-Date`` (and ``X-Amz-Security-Token``) headers."""
        request = self._request(method, url, data=body or b"")
        self._sigv4(frozen, SERVICE, self.region).add_auth(request)
        return {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("authorization", "x-amz-date", "x-amz-security-token")
        }

    async def headers(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        return self.sign_with(await self._frozen(), method, url, body)
