"""Which schema model describes a config path, and the key names each model accepts.

A provider entry is described by its type's own model (``providers.gpt`` with
``type: local`` -> LocalProviderConfig), so the path walk reads the entry's ``type``.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from rolecall.config._locations import ConfigPath
from rolecall.config.provider_models import ProviderConfig, config_model_for
from rolecall.config.schema import RolecallConfig


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type that holds the value."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def key_names(model: type[BaseModel]) -> dict[str, str]:
    """Every key the model accepts (names and aliases) -> the field name."""
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        names[name] = name
        if info.alias:
            names[info.alias] = name
    return names


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _for_entry(model: Any, node: Any) -> Any:
    """The registered model of a provider entry's type, where it narrows ``model``."""
    if _is_model(model) and issubclass(model, ProviderConfig) and isinstance(node, dict):
        own = config_model_for(node.get("type"))
        if own is not None and issubclass(own, model):
            return own
    return model


def model_at(
    path: ConfigPath, root: type[BaseModel] = RolecallConfig, data: Any = None
) -> type[BaseModel] | None:
    """The model whose fields sit at ``path`` (``('providers', 'gpt')`` -> ProviderConfig).

    With ``data`` (the document), a provider entry gives its own type's model.
    """
    current: Any = root
    node: Any = data
    for part in path:
        current = _for_entry(_unwrap(current), node)
        node = _child(node, part)
        if _is_model(current):
            field = key_names(current).get(str(part))
            if field is None:
                return None
            current = current.model_fields[field].annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return None
    current = _for_entry(_unwrap(current), node)
    return current if _is_model(current) else None


def iter_models(root: type[BaseModel] = RolecallConfig) -> Iterator[type[BaseModel]]:
    """``root`` and every model nested in it, each once (every provider type's model)."""
    from rolecall.config.registry import provider_types

    seen: set[type[BaseModel]] = set()
    pending: list[Any] = [root, *(row.config_model for row in provider_types().values())]
    while pending:
        annotation = _unwrap(pending.pop())
        if _is_model(annotation):
            if annotation in seen:
                continue
            seen.add(annotation)
            yield annotation
            pending.extend(info.annotation for info in annotation.model_fields.values())
        elif get_origin(annotation) in (dict, list):
            pending.extend(get_args(annotation))
