"""The keys of a ``type: bedrock`` provider (Amazon Bedrock's Converse API)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from rolecall._secrets import redact
from rolecall.config.provider_models import ProviderConfig

__all__ = ["REGION_PATTERN", "BedrockConfig"]

# us-east-1, eu-central-2, us-gov-west-1, ap-southeast-5: it lands in a host name.
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


class BedrockConfig(ProviderConfig):
    """Amazon Bedrock: a model (id, inference profile id or ARN) in an AWS region.

    Credentials come from the AWS chain (``profile`` picks a named profile), or from a
    Bedrock API key in ``api_key`` or ``AWS_BEARER_TOKEN_BEDROCK``. ``endpoint``
    replaces ``https://bedrock-runtime.{region}.amazonaws.com`` (a VPC endpoint).
    """

    type: Literal["bedrock"]
    model: str = Field(
        min_length=1,
        description="model id, inference profile id or ARN",
        examples=["us.anthropic.claude-sonnet-4-5-20250929-v1:0"],
    )
    region: str | None = Field(
        default=None,
        description="AWS region; default AWS_REGION, AWS_DEFAULT_REGION or the profile's",
        examples=["us-east-1"],
        json_schema_extra={"pattern": f"^{REGION_PATTERN.pattern}$"},
    )
    profile: str | None = Field(
        default=None,
        description="AWS named profile (~/.aws/config); default AWS_PROFILE, else 'default'",
    )

    @field_validator("region")
    @classmethod
    def _region_word(cls, value: str | None) -> str | None:
        if value is not None and not REGION_PATTERN.fullmatch(value):
            shown = redact(value)[:40]  # redacted first: a cut-off key would not be masked
            raise ValueError(f"{shown!r} is not an AWS region; use one such as us-east-1")
        return value

    @field_validator("profile")
    @classmethod
    def _profile_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("profile is empty; name an AWS profile or remove the key")
        return value
