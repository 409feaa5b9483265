"""The keys of a ``type: bedrock`` provider (Amazon Bedrock's Converse API)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rolecall.config.provider_models import ProviderConfig

__all__ = ["BedrockConfig"]


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
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$",
        description="AWS region; default AWS_REGION, AWS_DEFAULT_REGION or the profile's",
        examples=["us-east-1"],
    )
    profile: str | None = Field(default=None, min_length=1, description="AWS named profile")
