"""``type: vertex``: Gemini on Vertex AI, reached through a Google Cloud project and location.

The address follows the location (``us-central1-aiplatform.googleapis.com``, the global
``aiplatform.googleapis.com``...) unless ``endpoint`` names another (Private Service
Connect, the sim). Credentials are Application Default Credentials, or the JSON file
``credentials_file`` names, or, for a quick try, an access token in ``api_key``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rolecall.config._values import SecretStr
from rolecall.config.provider_models import ProviderConfig

__all__ = ["DEFAULT_LOCATION", "VertexConfig", "vertex_root"]

DEFAULT_LOCATION = "us-central1"
# Served from aiplatform.{location}.rep.googleapis.com, as google-genai knows them.
_MULTI_REGIONS = frozenset({"us", "eu"})
_LOCATION = r"[a-z][a-z0-9-]*"


def vertex_root(location: str) -> str:
    """The Vertex AI host for ``location`` (``us-central1``, ``global``, ``eu``...)."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in _MULTI_REGIONS:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


class VertexConfig(ProviderConfig):
    """Gemini on Vertex AI: ``project`` and ``model`` required, ``location`` us-central1."""

    type: Literal["vertex"]
    model: str = Field(min_length=1, examples=["gemini-2.5-flash"])
    project: str = Field(
        min_length=1,
        pattern=r"^[^/\s]+$",
        description="the Google Cloud project id that is billed",
        examples=["my-project"],
    )
    location: str = Field(
        default=DEFAULT_LOCATION,
        description="the region (us-central1, europe-west4...), 'global', or 'us'/'eu'",
    )
    credentials_file: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "a service-account key or gcloud's application_default_credentials.json; "
            "without it, Application Default Credentials"
        ),
    )
    api_key: SecretStr | None = Field(
        default=None,
        description=(
            "an OAuth access token sent as is (gcloud auth print-access-token: it lasts an "
            "hour); without it, tokens come from the credentials and are renewed"
        ),
    )

    @field_validator("location")
    @classmethod
    def _location_word(cls, value: str) -> str:
        if not re.fullmatch(_LOCATION, value):
            raise ValueError(
                f"{value!r} is not a Google Cloud location; use one such as us-central1, "
                "europe-west4, global, us or eu"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _address_from_location(cls, data: Any) -> Any:
        # The host follows the location, so every reader of base_url (hints, vendors,
        # the adapter) sees where calls really go.
        if not isinstance(data, dict) or data.get("base_url") or data.get("endpoint"):
            return data
        location = data.get("location", DEFAULT_LOCATION)
        if isinstance(location, str) and location:
            return {**data, "base_url": vertex_root(location)}
        return data
