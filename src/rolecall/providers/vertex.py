"""Gemini on Vertex AI (``type: vertex``): Gemini's wire format under a Google Cloud project.

``POST {root}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}
:generateContent`` (stream: ``:streamGenerateContent?alt=sse``), where ``root`` is
``https://{location}-aiplatform.googleapis.com``, ``https://aiplatform.googleapis.com``
for ``global``, ``https://aiplatform.{us|eu}.rep.googleapis.com`` for the multi-region
locations (as google-genai builds it; :func:`rolecall.config._vertex_config.vertex_root`),
or the ``endpoint`` the config names (a Private Service Connect address, the sim).
Bodies, replies and streams are the Gemini API's: this adapter is
:class:`~rolecall.providers.google.GoogleProvider` with another URL and another
credential, an OAuth access token from Application Default Credentials
(:mod:`rolecall.providers._google_auth`) sent as ``Authorization: Bearer`` and renewed
before it expires (or the fixed token ``api_key`` holds).

Errors are google.rpc bodies, read as Gemini's; on top of those, ``BILLING_DISABLED``
(the project's billing is closed, as when trial credits run out) is ``quota``, and a
refused token is renewed and the call sent once more with the new one. The credential
check is ``:countTokens``, which is free and touches what a call would: the token, the
project's permission and billing, the model in that location.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from rolecall.config._vertex_config import VertexConfig, vertex_root
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._errors import error_object
from rolecall.providers._google_auth import AccessToken
from rolecall.providers._http import HTTPProvider
from rolecall.providers.google import GoogleProvider, classify_gemini_error

__all__ = ["API_VERSION", "VertexProvider", "classify_vertex_error"]

API_VERSION = "v1"
_COUNT_BODY = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}


def _reasons(body: object) -> set[str]:
    details = error_object(body).get("details")
    return {
        str(detail.get("reason"))
        for detail in (details if isinstance(details, list) else ())
        if isinstance(detail, dict) and detail.get("reason")
    }


def classify_vertex_error(
    status: int | None,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str = "",
    now: float | None = None,
) -> ProviderError:
    """A Vertex AI error (google.rpc, over HTTP or in a stream) as a ProviderError."""
    error = classify_gemini_error(status, body, headers, provider=provider, now=now)
    if error.kind is ErrorKind.PERMISSION and "BILLING_DISABLED" in _reasons(body):
        # No call can succeed until billing is back: spent credits, not a missing role.
        return ProviderError(
            error.message, kind=ErrorKind.QUOTA, provider=provider, status=error.status
        )
    return error


class VertexProvider(GoogleProvider):
    """``type: vertex`` (Gemini on Vertex AI)."""

    classify = staticmethod(classify_vertex_error)
    # Vertex's v1 API documents no VALIDATED mode (v1beta1 does): a strict tool is declared
    # as on any other call there, best effort.
    validated_mode = False
    per_request_headers = True

    def __init__(
        self,
        provider_id: str,
        config: VertexConfig,
        *,
        credentials: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``credentials`` (anything with ``token``, ``expiry`` and ``refresh(request)``)
        replace Application Default Credentials; ``clock`` (epoch seconds) times their
        renewal."""
        # Gemini's bodies and replies, but not its address: GoogleProvider.__init__ is
        # skipped for the base setup, which takes the Vertex host as the default.
        HTTPProvider.__init__(self, provider_id, config, vertex_root(config.location))
        model = self.model.removeprefix("publishers/google/models/").removeprefix("models/")
        self._model_url = (
            f"{self.base_url}/{API_VERSION}/projects/{quote(config.project, safe='')}"
            f"/locations/{quote(config.location, safe='')}/publishers/google/models/"
            f"{quote(model, safe='-._~@')}"
        )
        self._token = AccessToken(
            provider_id,
            credentials=credentials,
            credentials_file=config.credentials_file,
            fixed_token=config.api_key.get() if config.api_key else None,
            clock=clock,
        )

    def auth_headers(self) -> dict[str, str]:
        return {}  # the token travels per request: it changes every hour

    async def request_headers(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        return await self._token.headers()

    async def renew_credentials(self, sent: Mapping[str, str]) -> bool:
        return await self._token.renewed(sent)

    async def check_credentials(self) -> None:
        """``POST {model}:countTokens`` (free): token, project permission and billing, and
        the model in this location, as a call would meet them."""
        data = await self.request_json("POST", f"{self._model_url}:countTokens", _COUNT_BODY)
        if not isinstance(data, dict) or not isinstance(data.get("totalTokens"), int):
            raise self.error("token count answered without totalTokens", ErrorKind.BAD_RESPONSE)
