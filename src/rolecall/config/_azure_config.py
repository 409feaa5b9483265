"""``type: azure-openai``: a deployment on an Azure OpenAI resource.

Two ways to reach it: the deployment URL with a dated ``api_version`` (the default, the
latest GA version), or ``api_version: v1`` for the version-less ``/openai/v1`` path. The
deployment's name is ``deployment`` (``model`` when that is left out, as the openai SDK
takes it); ``auth: entra`` signs in with Microsoft Entra ID instead of ``api_key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from rolecall.config._values import UrlStr
from rolecall.config.provider_models import ProviderConfig

__all__ = ["DEFAULT_API_VERSION", "V1", "AzureOpenAIConfig"]

DEFAULT_API_VERSION = "2024-10-21"  # the latest GA data-plane inference version
V1 = "v1"  # api_version naming the version-less /openai/v1 path


class AzureOpenAIConfig(ProviderConfig):
    """A deployment on an Azure OpenAI resource (see the module docstring)."""

    type: Literal["azure-openai"]
    base_url: UrlStr = Field(
        alias="endpoint",
        min_length=1,
        description="the resource endpoint, without /openai",
        examples=["https://contoso.openai.azure.com"],
    )
    deployment: str | None = Field(
        default=None,
        min_length=1,
        description="the deployment's name in Azure (default: model)",
    )
    api_version: str = Field(
        default=DEFAULT_API_VERSION,
        pattern=r"^(v1|\d{4}-\d{2}-\d{2}(-preview)?)$",
        description="a dated version (YYYY-MM-DD or YYYY-MM-DD-preview), or v1 for /openai/v1",
    )
    auth: Literal["api-key", "entra"] = Field(
        default="api-key",
        description="api-key: api_key in the api-key header; entra: Microsoft Entra ID tokens "
        "from azure-identity's DefaultAzureCredential (pip install 'rolecall[azure]')",
    )

    @model_validator(mode="before")
    @classmethod
    def _model_names_the_deployment(cls, data: Any) -> Any:
        # One name is enough: records and the body use the deployment's name when no model.
        if isinstance(data, dict) and not data.get("model") and data.get("deployment"):
            return {**data, "model": data["deployment"]}
        return data

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if not self.model:
            raise ValueError("set deployment (the deployment's name in Azure) or model")
        if self.auth == "entra" and self.api_key is not None:
            raise ValueError("auth: entra signs in without api_key; remove api_key or auth")
        return self

    @classmethod
    def signs_in_without_key(cls, spec: Mapping[str, Any]) -> bool:
        return spec.get("auth") == "entra"

    @property
    def deployment_name(self) -> str:
        """What the deployment path and the v1 body's ``model`` name."""
        return self.deployment or self.model or ""
