"""The config file's shape as pydantic models (the README's Configuration section).

Field-level checks live here; checks that look across the file (references,
chains, roles) live in ``validate``. Unknown keys are rejected everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
)

from rolecall._secrets import Secret, register_url_secrets

__all__ = [
    "BUILTIN_ROLES",
    "PROVIDER_TYPES",
    "CapabilitiesConfig",
    "Duration",
    "GatewayConfig",
    "MetricsConfig",
    "PricingConfig",
    "ProviderConfig",
    "RetryConfig",
    "RoleConfig",
    "RolecallConfig",
    "SecretStr",
    "StateConfig",
    "WorkflowConfig",
    "WorkflowReviewConfig",
    "parse_duration",
]

PROVIDER_TYPES = ("openai", "anthropic", "google", "openai-compatible", "local", "bedrock")
BUILTIN_ROLES = ("clarifier", "planner", "coder", "reviewer")
STRATEGIES = ("fallback", "round_robin", "weighted", "fastest")
PROVIDER_ID = r"^[a-z0-9][a-z0-9._-]*$"
# Keys that pick the provider itself; a role may only tune parameters.
CRITICAL_ROLE_KEYS = ("type", "model", "api_key", "base_url", "endpoint")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``500ms``, ``1s``, ``2m``, ``1h`` or a plain number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 1s, 2m or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(
            f"invalid duration {value!r}: use a number with ms, s, m or h (500ms, 1s, 2m)"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
            ],
            "description": "seconds, or a duration such as 500ms, 1s, 2m",
        }
    ),
]


def _to_secret(value: Any) -> Any:
    if isinstance(value, Secret) or value is None:
        return value
    if isinstance(value, str):
        return Secret(value)
    raise ValueError("expected a string (use ${VAR} to read it from the environment)")


SecretStr = Annotated[
    Secret,
    BeforeValidator(_to_secret),
    PlainSerializer(lambda s: str(s), return_type=str),
    WithJsonSchema({"type": "string", "description": "a key; write ${VAR} to read it from env"}),
]


# A URL that may carry credentials (user:password@, ?api_key=): they are masked from then on.
UrlStr = Annotated[str, AfterValidator(register_url_secrets)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, arbitrary_types_allowed=True, frozen=True
    )


class PricingConfig(_Model):
    input_per_mtok: float = Field(ge=0, description="USD per million input tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million output tokens")
    cache_read_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million cached input tokens read (default: input)"
    )
    cache_write_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million input tokens written to the cache"
    )

    def cost_usd(
        self, input_tokens: int, output_tokens: int, cached: int = 0, cache_creation: int = 0
    ) -> float:
        """USD for one call; ``input_tokens`` counts every input token, cached ones included."""
        read = self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        write = (
            self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        )
        uncached = max(input_tokens - cached - cache_creation, 0)
        return (
            uncached * self.input_per_mtok
            + cached * read
            + cache_creation * write
            + output_tokens * self.output_per_mtok
        ) / 1_000_000


class CapabilitiesConfig(_Model):
    """What a provider can take, over its type's defaults (``images: false`` for a text model)."""

    tools: bool | None = None
    images: bool | None = None
    json_schema: bool | None = None
    thinking: bool | None = None
    logprobs: bool | None = None
    n: bool | None = Field(default=None, description="n > 1 (several choices)")

    def overrides(self) -> dict[str, bool]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class ProviderConfig(_Model):
    type: Literal["openai", "anthropic", "google", "openai-compatible", "local", "bedrock"]
    model: str | None = None
    api_key: SecretStr | None = None
    base_url: UrlStr | None = Field(default=None, alias="endpoint")
    params: dict[str, Any] = Field(default_factory=dict, alias="parameters")
    timeout: Duration = 60.0
    max_concurrency: int = Field(default=8, ge=1, le=10_000)
    pricing: PricingConfig | None = None
    capabilities: CapabilitiesConfig | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # Embedded model options (type: local).
    model_path: str | None = None
    context_size: int | None = Field(default=None, ge=128)
    threads: int | None = Field(default=None, ge=1)
    runtime: Literal["mistralrs", "llama-cpp"] | None = None
    requantize: Literal["auto", "off", "q8_0", "q4_0", "q4k", "q6k"] = "auto"
    # Amazon Bedrock (type: bedrock); the registry's BedrockConfig holds them apart.
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
    profile: str | None = Field(default=None, min_length=1)

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("timeout must be greater than 0")
        return value

    def cost_usd(
        self, input_tokens: int, output_tokens: int, cached: int = 0, cache_creation: int = 0
    ) -> float | None:
        if self.pricing is None:
            return None
        return self.pricing.cost_usd(input_tokens, output_tokens, cached, cache_creation)


class RoleConfig(_Model):
    provider: str | None = None
    fallback: list[str] = Field(default_factory=list)
    providers: list[str] = Field(default_factory=list)
    strategy: Literal["fallback", "round_robin", "weighted", "fastest"] = "fallback"
    weights: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict, alias="parameters")

    def assigned(self) -> list[str]:
        """Providers named by the role, in order: primary, then the rest."""
        chain: list[str] = []
        if self.provider:
            chain.append(self.provider)
        chain.extend(self.providers)
        chain.extend(self.fallback)
        return chain


class RetryConfig(_Model):
    max_attempts: int = Field(default=3, ge=1, le=20, description="calls per provider")
    initial_backoff: Duration = 1.0
    max_backoff: Duration = 30.0
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    jitter: bool = True


class MetricsConfig(_Model):
    url: UrlStr = "sqlite:///.rolecall/rolecall.db"
    runs_dir: str = ".rolecall/runs"
    enabled: bool = True
    flush_interval: Duration = 0.5
    retention_days: int | None = Field(default=None, ge=1)


class GatewayConfig(_Model):
    keys: list[SecretStr] = Field(default_factory=list)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, description="request line + headers")
    header_timeout: Duration = Field(default=10.0, gt=0, description="to receive all headers")
    body_timeout: Duration = Field(default=10.0, gt=0, description="to receive the whole body")
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="request bodies held at once"
    )
    # The model names agents send by default, mapped to a role or a provider id
    # (claude-sonnet-4-5: coder); a request's x-rolecall-role header still wins.
    model_aliases: dict[str, str] = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _real_keys(cls, keys: list[Secret]) -> list[Secret]:
        # An empty or blank entry (an empty ${VAR}) is no key: kept, it would count as
        # one and let the gateway listen beyond loopback with auth in fact off.
        # Validation warns about each such entry.
        return [Secret(key.get().strip()) for key in keys if key.get().strip()]


class StateConfig(_Model):
    """Where provider health lives: this process (default) or Redis, shared by processes."""

    redis_url: UrlStr | None = None
    key_prefix: str = "rolecall"


class WorkflowReviewConfig(_Model):
    other_vendor: bool = Field(
        default=True, description="review each file on another vendor than its writer's"
    )


class WorkflowConfig(_Model):
    """``rolecall run``: the checks run on the output, and the fix rounds they may start."""

    # None: detected from the plan (byte-compile, pytest); []: no checks.
    verify: list[str] | None = None
    verify_timeout: Duration = 120.0
    max_fix_rounds: int = Field(default=2, ge=0, le=20)
    review: WorkflowReviewConfig = Field(default_factory=WorkflowReviewConfig)

    @field_validator("verify_timeout")
    @classmethod
    def _positive_verify_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("verify_timeout must be greater than 0")
        return value


class RolecallConfig(_Model):
    schema_version: Literal["1", "1.0"] = "1"
    providers: dict[str, ProviderConfig]
    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    default_provider: str | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)
    failover_within: Duration = 5.0
    # Call parameter names dropped without a word: unknown ones, and per provider the
    # ones it cannot take (instead of an error, a warning or skipping the provider).
    drop_params: list[str] = Field(default_factory=list)
    credential_check_timeout: Duration = 10.0
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    workflow: WorkflowConfig = Field(default_factory=WorkflowConfig)
    # provider id -> the environment variable its api_key came from (filled by the loader),
    # so errors can say "OPENAI_API_KEY was rejected" instead of showing the key.
    _key_env_vars: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("schema_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value == 1:
            return "1"
        return value

    def chain(self, role: str) -> list[str]:
        """The role's providers in call order, ending with ``default_provider``."""
        role_config = self.roles.get(role)
        chain = role_config.assigned() if role_config else []
        if self.default_provider and self.default_provider not in chain:
            chain.append(self.default_provider)
        return chain

    def key_env_var(self, provider_id: str) -> str | None:
        return self._key_env_vars.get(provider_id)

    def set_key_env_vars(self, mapping: dict[str, str]) -> None:
        self._key_env_vars = dict(mapping)

    def role_params(self, role: str) -> dict[str, Any]:
        role_config = self.roles.get(role)
        return dict(role_config.params) if role_config else {}
