"""The JSON Schema of the config file, for editors' YAML and JSON language servers.

pydantic's schema names only one spelling of an aliased key, knows nothing
of ``schema_version: 1`` being read as text, nor of top-level ``x-`` keys
that hold YAML anchors; all are added here so that every file the loader
accepts also passes the schema. A provider entry is one of the registered
types' models, chosen by its ``type`` (``oneOf`` with a discriminator).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from rolecall.config._fields import iter_models
from rolecall.config.registry import provider_types
from rolecall.config.schema import ProviderConfig, RolecallConfig
from rolecall.config.validate import EXTENSION_PREFIX

__all__ = ["SCHEMA_DIALECT", "config_json_schema"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF = "#/$defs/{model}"


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``rolecall.yaml``."""
    schema = RolecallConfig.model_json_schema(by_alias=True, ref_template=_REF)
    definitions: dict[str, Any] = schema.setdefault("$defs", {})
    _provider_types(schema, definitions)
    for model in iter_models():
        target = schema if model is RolecallConfig else definitions.get(model.__name__)
        if target is not None:
            _both_spellings(model, target)
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


def _provider_types(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    """``providers`` values: one registered model per type, picked by ``type``."""
    names_by_model: dict[type[ProviderConfig], list[str]] = {}
    for name, row in provider_types().items():
        names_by_model.setdefault(row.config_model, []).append(name)
    if ProviderConfig not in names_by_model:
        definitions.pop(ProviderConfig.__name__, None)  # only its subclasses are referenced
    mapping: dict[str, str] = {}
    for model, names in names_by_model.items():
        own = model.model_json_schema(by_alias=True, ref_template=_REF)
        definitions.update(own.pop("$defs", {}))
        own["properties"]["type"] = {
            **({"const": names[0]} if len(names) == 1 else {"enum": names}),
            "description": "the provider type",
        }
        definitions[model.__name__] = own
        mapping.update(dict.fromkeys(names, _REF.format(model=model.__name__)))
    entry = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(mapping), "description": "the provider type"}},
        "oneOf": [{"$ref": ref} for ref in dict.fromkeys(mapping.values())],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    schema["properties"]["providers"]["additionalProperties"] = entry


def _both_spellings(model: type[BaseModel], target: dict[str, Any]) -> None:
    properties: dict[str, Any] = target.get("properties", {})
    required: list[str] = target.get("required", [])
    for name, info in model.model_fields.items():
        if info.alias and info.alias in properties and name not in properties:
            properties[name] = copy.deepcopy(properties[info.alias])
            if info.alias in required:  # required: either spelling will do
                required.remove(info.alias)
                either = [{"required": [name]}, {"required": [info.alias]}]
                target.setdefault("allOf", []).append({"oneOf": either})
