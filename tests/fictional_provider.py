"""A provider type rolecall does not ship, as a plugin would add one: a config model, an
adapter and one registry row, nothing else.

``type: parrot`` speaks OpenAI's Chat Completions (so the sim's ``openai`` dialect serves
it) with a key of its own (``parrot_key``, sent as ``Authorization: Bearer``) and a
``voice`` it announces in a header of its own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rolecall.config.provider_models import ProviderConfig
from rolecall.config.registry import ProviderType
from rolecall.config.schema import SecretStr
from rolecall.providers.openai import OpenAIProvider


class ParrotConfig(ProviderConfig):
    type: Literal["parrot"]
    model: str = Field(min_length=1)
    parrot_key: SecretStr = Field(description="the parrot's own credential")
    voice: Literal["squawk", "whistle"] = "squawk"


class ParrotProvider(OpenAIProvider):
    def __init__(self, provider_id: str, config: ParrotConfig) -> None:
        super().__init__(provider_id, config)
        self.parrot = config

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.parrot.parrot_key.get()}",
            "x-parrot-voice": self.parrot.voice,
        }


PARROT = ProviderType(
    name="parrot",
    adapter="fictional_provider:ParrotProvider",
    config_model=ParrotConfig,
    default_base_url=None,
    key_env_vars=(),
    example_model="polly-1",
    genai_system="parrot",
    param_family="openai",
    capabilities={"tools": True, "json_schema": True},
    sim_dialect="openai",
    description="a fictional vendor that repeats OpenAI's wire format",
)
