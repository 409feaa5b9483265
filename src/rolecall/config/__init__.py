"""Configuration: schema, loading (YAML/JSON, ${VAR}, .env) and validation."""

from rolecall.config.schema import (
    BUILTIN_ROLES,
    PROVIDER_TYPES,
    GatewayConfig,
    MetricsConfig,
    PricingConfig,
    ProviderConfig,
    RetryConfig,
    RoleConfig,
    RolecallConfig,
    parse_duration,
)

__all__ = [
    "BUILTIN_ROLES",
    "PROVIDER_TYPES",
    "GatewayConfig",
    "MetricsConfig",
    "PricingConfig",
    "ProviderConfig",
    "RetryConfig",
    "RoleConfig",
    "RolecallConfig",
    "parse_duration",
]
