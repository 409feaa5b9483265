"""The JSON Schema of the config file, for editors' YAML and JSON language servers.

pydantic's schema names only one spelling of an aliased key, knows nothing
of ``schema_version: 1`` being read as text, nor of top-level ``x-`` keys
that hold YAML anchors; all are added here so that every file the loader
accepts also passes the schema.
"""

from __future__ import annotations

import copy
from typing import Any

from rolecall.config._fields import iter_models
from rolecall.config.schema import RolecallConfig
from rolecall.config.validate import EXTENSION_PREFIX

__all__ = ["SCHEMA_DIALECT", "config_json_schema"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``rolecall.yaml``."""
    schema = RolecallConfig.model_json_schema(by_alias=True)
    definitions: dict[str, Any] = schema.get("$defs", {})
    for model in iter_models():
        target = schema if model is RolecallConfig else definitions.get(model.__name__)
        if target is None:
            continue
        properties: dict[str, Any] = target.get("properties", {})
        for name, info in model.model_fields.items():
            if info.alias and info.alias in properties and name not in properties:
                properties[name] = copy.deepcopy(properties[info.alias])
    version = schema["properties"]["schema_version"]
    version["anyOf"] = [{"enum": version.pop("enum", ["1", "1.0"])}, {"const": 1}]
    version.pop("type", None)
    schema["patternProperties"] = {f"^{EXTENSION_PREFIX}": {"description": "anchors for reuse"}}
    title = {
        "$schema": SCHEMA_DIALECT,
        "title": "rolecall configuration",
        "description": "rolecall.yaml: providers, roles, retry and metrics. "
        "Strings may hold ${VAR} or ${VAR:-default}.",
    }
    schema.pop("title", None)
    return {**title, **schema}
