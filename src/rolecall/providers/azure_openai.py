"""Azure OpenAI (type ``azure-openai``): OpenAI's Chat Completions behind Azure's transport.

The bodies, streams, tools and images are OpenAI's, so this is
:class:`~rolecall.providers.openai.OpenAIProvider` with Azure's URLs
(:mod:`rolecall.providers._azure_wire`), its error classifier and its auth: the
``api-key`` header, or a Microsoft Entra ID bearer token computed per request through
:meth:`request_headers`, refreshed before it expires and after Azure refuses it
(:mod:`rolecall.providers._azure_auth`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rolecall.config._azure_config import AzureOpenAIConfig
from rolecall.config.schema import ProviderConfig
from rolecall.errors import ErrorKind
from rolecall.providers._azure_auth import EntraTokens, TokenCredential, default_credential
from rolecall.providers._azure_wire import azure_urls, classify_azure_error
from rolecall.providers.openai import OpenAIProvider
from rolecall.types import ChatRequest

__all__ = ["AzureOpenAIProvider"]

_NO_HEADERS: Mapping[str, str] = {}


class AzureOpenAIProvider(OpenAIProvider):
    """``type: azure-openai``. ``credential`` (anything with azure-identity's ``get_token``)
    and ``clock`` replace DefaultAzureCredential and the wall clock for ``auth: entra``."""

    classify = staticmethod(classify_azure_error)
    # Entra tokens expire, so the Authorization header is computed per request; with a
    # key the hook returns nothing and the key rides in the client's fixed headers.
    per_request_headers = True

    def __init__(
        self,
        provider_id: str,
        config: ProviderConfig,
        *,
        credential: TokenCredential | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(config, AzureOpenAIConfig):
            raise TypeError(f"AzureOpenAIProvider takes an AzureOpenAIConfig, not {type(config)}")
        super().__init__(provider_id, config)
        self.deployment = config.deployment_name
        urls = azure_urls(self.base_url, self.deployment, config.api_version)
        self._chat_url, self._models_url = urls.chat, urls.models
        self._max_tokens_field = "max_completion_tokens"
        self.tokens: EntraTokens | None = None
        if config.auth == "entra":
            self.tokens = EntraTokens(
                credential if credential is not None else default_credential(),
                provider=provider_id,
                clock=clock,
            )

    def auth_headers(self) -> dict[str, str]:
        if self.tokens is not None:
            return {}
        key = self.config.api_key
        if not key:
            raise self.error(
                f"no api_key: set providers.{self.id}.api_key (e.g. ${{AZURE_OPENAI_API_KEY}}) "
                "or auth: entra",
                ErrorKind.AUTH,
            )
        return {"api-key": key.get()}

    async def request_headers(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        if self.tokens is None:
            return _NO_HEADERS
        return {"Authorization": f"Bearer {await self.tokens.token()}"}

    async def renew_credentials(self, sent: Mapping[str, str]) -> bool:
        if self.tokens is None:
            return False  # a key does not change while the process runs
        refused = sent.get("authorization", "").removeprefix("Bearer ")
        return await self.tokens.renewed(refused)

    def body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = super().body(request, stream=stream)
        body["model"] = self.deployment  # the v1 path routes by it; the deployment path ignores it
        return body

    async def check_credentials(self) -> None:
        """``GET /openai/models`` (free): checks endpoint, key or token and api_version.

        It lists the resource's models, not its deployments (Azure's data plane no longer
        offers a deployment look-up), so a wrong deployment name shows on the first call
        as ``DeploymentNotFound``.
        """
        data = await self.request_json("GET", self._models_url)
        listed = data.get("data") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise self.error("model list has no 'data' array", ErrorKind.BAD_RESPONSE)

    async def aclose(self) -> None:
        await super().aclose()
        if self.tokens is not None:
            await self.tokens.aclose()
