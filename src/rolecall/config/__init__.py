"""Configuration: schema, loading (YAML/JSON, ${VAR}, .env) and validation.

The models load eagerly; loading and validation (PyYAML, difflib) load on
first use, so code that only needs the models stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rolecall.config.schema import (
    BUILTIN_ROLES,
    GatewayConfig,
    MetricsConfig,
    PricingConfig,
    ProviderConfig,
    RetryConfig,
    RolecallConfig,
    RoleConfig,
    parse_duration,
)

if TYPE_CHECKING:
    from rolecall.config.json_schema import config_json_schema
    from rolecall.config.load import (
        ConfigReport,
        find_config_path,
        inspect_config,
        inspect_config_text,
        load_config,
        load_config_text,
        load_config_with_warnings,
    )
    from rolecall.config.validate import validate_document

__all__ = [
    "BUILTIN_ROLES",
    "PROVIDER_TYPES",
    "ConfigReport",
    "GatewayConfig",
    "MetricsConfig",
    "PricingConfig",
    "ProviderConfig",
    "RetryConfig",
    "RoleConfig",
    "RolecallConfig",
    "config_json_schema",
    "find_config_path",
    "inspect_config",
    "inspect_config_text",
    "load_config",
    "load_config_text",
    "load_config_with_warnings",
    "parse_duration",
    "validate_document",
]

_LAZY = {
    "ConfigReport": "rolecall.config.load",
    "find_config_path": "rolecall.config.load",
    "inspect_config": "rolecall.config.load",
    "inspect_config_text": "rolecall.config.load",
    "load_config": "rolecall.config.load",
    "load_config_text": "rolecall.config.load",
    "load_config_with_warnings": "rolecall.config.load",
    "validate_document": "rolecall.config.validate",
    "config_json_schema": "rolecall.config.json_schema",
}


def __getattr__(name: str) -> Any:
    if name == "PROVIDER_TYPES":  # follows the registry: never cached
        from rolecall.config.provider_models import type_names

        return type_names()
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rolecall.config' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
