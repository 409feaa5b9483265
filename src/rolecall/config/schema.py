"""The config file's shape as pydantic models (the README's Configuration section).

Field-level checks live here; checks that look across the file (references,
chains, roles) live in ``validate``. Unknown keys are rejected everywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, SerializeAsAny, field_validator

from rolecall._secrets import Secret
from rolecall.config._values import (
    METRICS_URL_FIX,
    REDIS_URL_FIX,
    CapabilitiesConfig,
    ConfigModel,
    Duration,
    MetricsUrl,
    PricingConfig,
    RedisUrl,
    SecretStr,
    metrics_store_backend,
    parse_duration,
)
from rolecall.config.provider_models import ProviderConfig

__all__ = [
    "BUILTIN_ROLES",
    "METRICS_URL_FIX",
    "REDIS_URL_FIX",
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
    "metrics_store_backend",
    "parse_duration",
]

BUILTIN_ROLES = ("clarifier", "planner", "coder", "reviewer")
STRATEGIES = ("fallback", "round_robin", "weighted", "fastest")
PROVIDER_ID = r"^[a-z0-9][a-z0-9._-]*$"
# Keys that pick the provider itself; a role may only tune parameters.
CRITICAL_ROLE_KEYS = ("type", "model", "api_key", "base_url", "endpoint")


class RoleConfig(ConfigModel):
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


class RetryConfig(ConfigModel):
    max_attempts: int = Field(default=3, ge=1, le=20, description="calls per provider")
    initial_backoff: Duration = 1.0
    max_backoff: Duration = 30.0
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    jitter: bool = True


class MetricsConfig(ConfigModel):
    url: MetricsUrl = "sqlite:///.rolecall/rolecall.db"
    runs_dir: str = ".rolecall/runs"
    enabled: bool = True
    flush_interval: Duration = 0.5
    retention_days: int | None = Field(default=None, ge=1)


class GatewayConfig(ConfigModel):
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


class StateConfig(ConfigModel):
    """Where provider health lives: this process (default) or Redis, shared by processes."""

    redis_url: RedisUrl | None = None
    key_prefix: str = "rolecall"


class WorkflowReviewConfig(ConfigModel):
    other_vendor: bool = Field(
        default=True, description="review each file on another vendor than its writer's"
    )


class WorkflowConfig(ConfigModel):
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


class RolecallConfig(ConfigModel):
    schema_version: Literal["1", "1.0"] = "1"
    # Each value is its type's own model (provider_models), dumped with its own keys.
    providers: dict[str, SerializeAsAny[ProviderConfig]]
    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    default_provider: str | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)
    failover_within: Duration = 5.0
    # Call parameter names dropped without a word: unknown ones, and per provider the
    # ones it cannot take (instead of an error, a warning or skipping the provider).
    drop_params: list[str] = Field(default_factory=list)
    credential_check_timeout: Duration = Field(
        default=10.0, gt=0, description="for the startup check of every provider's key"
    )
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
