"""Bedrock's two ways to authenticate a request: SigV4 with AWS credentials, or an API key.

- **SigV4** (the default): credentials from the standard AWS chain, as the AWS CLI and
  boto3 find them (environment variables, the shared credentials and config files with
  ``profile``, SSO, assumed roles, web identity, container and instance metadata),
  through ``botocore.session.Session(profile=...).get_credentials()``. Each request is
  signed just before it is sent (``SigV4Auth``, service ``bedrock``, the region) over
  the method, the URL exactly as sent (the model id percent-encoded in the path), the
  ``host`` header and the body's SHA-256. Refreshable credentials (SSO, roles, instance
  metadata) are refreshed by botocore when they near expiry; a refresh that needs the
  network runs in a thread, never on the event loop.
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


def _botocore() -> tuple[Any, Any, Any, Any]:
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import BotoCoreError
        from botocore.session import Session
    except ModuleNotFoundError:
        raise MissingExtra("bedrock", "botocore", "the Bedrock provider") from None
    return SigV4Auth, AWSRequest, BotoCoreError, Session


class SigV4Signer:
    """Signs each request with the AWS credential chain's current credentials."""

    def __init__(self, region: str, profile: str | None, provider: str) -> None:
        self.region = region
        self.profile = profile
        self.provider = provider
        self._sigv4, self._request, self._boto_error, self._session_class = _botocore()
        self._credentials: Any = None
        self._registered: tuple[str, str | None] | None = None

    def _fail(self, message: str) -> ProviderError:
        return ProviderError(message, kind=ErrorKind.AUTH, provider=self.provider)

    def _chain(self) -> Any:
        """The chain's credentials object, found once (it refreshes itself when it can)."""
        if self._credentials is None:
            where = f"profile '{self.profile}'" if self.profile else "the default AWS chain"
            try:
                session = self._session_class(profile=self.profile)
                credentials = session.get_credentials()
            except self._boto_error as exc:
                raise self._fail(f"AWS credentials from {where} cannot be loaded: {exc}") from None
            if credentials is None:
                raise self._fail(
                    f"no AWS credentials found in {where}: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, run 'aws configure' or 'aws sso login', or set "
                    f"api_key (or {BEARER_ENV}) to a Bedrock API key"
                )
            self._credentials = credentials
        return self._credentials

    async def _frozen(self) -> Any:
        """Current credentials; finding them or refreshing them (network) runs in a thread."""
        credentials = self._credentials
        if credentials is None:
            credentials = await asyncio.to_thread(self._chain)
        needs_refresh = getattr(credentials, "refresh_needed", None)
        try:
            if needs_refresh is not None and needs_refresh():
                frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
            else:
                frozen = credentials.get_frozen_credentials()
        except self._boto_error as exc:
            raise self._fail(f"AWS credentials cannot be refreshed: {exc}") from None
        if (frozen.secret_key, frozen.token) != self._registered:
            self._registered = (frozen.secret_key, frozen.token)
            for secret in (frozen.secret_key, frozen.token):
                if secret:
                    register_secret(secret)
        return frozen

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
