"""One config model per provider type, chosen by the entry's ``type:``.

:class:`ProviderConfig` holds the keys every type shares. Each type's model (its row in
:mod:`rolecall.config.registry` names it) adds its own keys and declares which are
required, so a type validates only its own keys: ``model_path`` belongs to ``local``
alone, and an ``openai`` entry that names it is told so.

``ProviderConfig.model_validate({"type": "local", ...})``, ``ProviderConfig(type="local",
...)`` and ``RolecallConfig.providers`` all give the registered model's instance: the
dispatch goes through the registry at validation time, so a type registered at run time
(a plugin, a test) needs no change here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, ModelWrapValidatorHandler, field_validator, model_validator
from pydantic_core import PydanticCustomError

from rolecall.config._values import (
    CapabilitiesConfig,
    ConfigModel,
    CredentialHeaders,
    Duration,
    PricingConfig,
    SecretStr,
    UrlStr,
)

if TYPE_CHECKING:
    from rolecall.config.registry import ProviderType

__all__ = [
    "LocalProviderConfig",
    "OpenAICompatibleConfig",
    "ProviderConfig",
    "VendorAPIConfig",
    "config_model_for",
    "type_names",
]


def _registered(name: object) -> ProviderType | None:
    # Imported here: the registry's built-in rows name the models of this module.
    from rolecall.config.registry import provider_types

    return provider_types().get(name) if isinstance(name, str) else None


def type_names() -> tuple[str, ...]:
    """Every registered type name, in the registry's order."""
    from rolecall.config.registry import provider_types

    return tuple(provider_types())


def config_model_for(name: object) -> type[ProviderConfig] | None:
    """The model that validates an entry of type ``name``; None for an unknown type."""
    row = _registered(name)
    return row.config_model if row is not None else None


class ProviderConfig(ConfigModel):
    """The keys every provider type takes; the base of each type's own model."""

    type: str = Field(description="the provider type (rolecall's registry lists them)")
    model: str | None = None
    api_key: SecretStr | None = None
    base_url: UrlStr | None = Field(default=None, alias="endpoint")
    params: dict[str, Any] = Field(default_factory=dict, alias="parameters")
    timeout: Duration = 60.0
    max_concurrency: int = Field(default=8, ge=1, le=10_000)
    pricing: PricingConfig | None = None
    capabilities: CapabilitiesConfig | None = None
    headers: CredentialHeaders = Field(default_factory=dict)

    def __new__(cls, *args: Any, **data: Any) -> Self:
        # ProviderConfig(type="local", ...) builds the model registered for "local".
        model = config_model_for(data.get("type"))
        target = model if model is not None and issubclass(model, cls) else cls
        return super().__new__(target)

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_type(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if not isinstance(data, dict):
            return handler(data)
        model = config_model_for(data.get("type"))
        if model is not None and model is not cls and issubclass(model, cls):
            return model.model_validate(data)
        if model is None:
            # An unknown or missing type: report it, and the keys no type takes, but not
            # the keys of some other type (model_path under a misspelt "locl").
            return handler(_without_other_types_keys(cls, data))
        return handler(data)

    @field_validator("type")
    @classmethod
    def _registered_type(cls, value: str) -> str:
        names = type_names()
        if value not in names:
            expected = ", ".join(repr(name) for name in names)
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": expected}
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("timeout must be greater than 0")
        return value

    @classmethod
    def signs_in_without_key(cls, spec: Mapping[str, Any]) -> bool:
        """Whether an entry with these raw keys needs no ``api_key`` (another credential
        signs its calls), so that a missing key is not worth a warning."""
        return False

    def cost_usd(
        self, input_tokens: int, output_tokens: int, cached: int = 0, cache_creation: int = 0
    ) -> float | None:
        if self.pricing is None:
            return None
        return self.pricing.cost_usd(input_tokens, output_tokens, cached, cache_creation)


def _keys(model: type[ProviderConfig]) -> set[str]:
    names = set(model.model_fields)
    names.update(info.alias for info in model.model_fields.values() if info.alias)
    return names


def _without_other_types_keys(model: type[ProviderConfig], data: dict[str, Any]) -> dict[str, Any]:
    from rolecall.config.registry import provider_types

    own = _keys(model)
    others = set().union(*(_keys(row.config_model) for row in provider_types().values()))
    return {key: value for key, value in data.items() if key in own or key not in others}


class VendorAPIConfig(ProviderConfig):
    """A vendor's own API (``openai``, ``anthropic``, ``google``): a model must be named."""

    type: Literal["openai", "anthropic", "google"]
    model: str = Field(min_length=1)


class OpenAICompatibleConfig(ProviderConfig):
    """A server speaking OpenAI's Chat Completions (Ollama, vLLM, llama.cpp, Groq...):
    it has no default address, so ``base_url`` is required."""

    type: Literal["openai-compatible"]
    base_url: UrlStr = Field(
        alias="endpoint",
        min_length=1,
        description="the server's URL including /v1",
        examples=["http://localhost:11434/v1"],
    )


_MAX_THREADS = 1024


class LocalProviderConfig(ProviderConfig):
    """The embedded model (``type: local``): a GGUF file run in this process."""

    type: Literal["local"]
    model_path: str | None = None
    context_size: int | None = Field(default=None, ge=128)
    # Each is an OS thread started at load: a billion would exhaust the machine.
    threads: int | None = Field(default=None, ge=1, le=_MAX_THREADS)
    runtime: Literal["mistralrs", "llama-cpp"] | None = None
    requantize: Literal["auto", "off", "q8_0", "q4_0", "q4k", "q6k"] = "auto"

    @field_validator("requantize", mode="before")
    @classmethod
    def _off_read_as_false(cls, value: Any) -> Any:
        # YAML reads an unquoted `off` (or `no`) as false: `requantize: off` means off.
        return "off" if value is False else value
