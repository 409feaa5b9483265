"""Provider adapters: one module per wire protocol, imported only when configured.

:func:`build_provider` turns one ``providers.<id>`` config entry into a
:class:`~rolecall.providers.base.Provider`, with the adapter its type's registry row
(:mod:`rolecall.config.registry`) names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rolecall.config.registry import ProviderType, provider_type
from rolecall.errors import MissingExtra
from rolecall.providers.base import Provider

if TYPE_CHECKING:
    from rolecall.config.schema import ProviderConfig

__all__ = ["Provider", "build_provider"]


def build_provider(provider_id: str, config: ProviderConfig) -> Provider:
    """The adapter for ``config.type``; no connection is opened until first use."""
    try:
        row = provider_type(config.type)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    module_name, _, class_name = row.adapter.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if _is_extra(row, exc.name, module_name):
            purpose = row.description or f"provider type {row.name}"
            raise MissingExtra(str(row.extra), row.extra_module or module_name, purpose) from None
        raise
    adapter: Provider = getattr(module, class_name)(provider_id, config)
    return adapter


def _is_extra(row: ProviderType, missing: str | None, adapter_module: str) -> bool:
    """Whether the module that failed to import is the adapter of a type that comes with
    an extra, or (part of) the extra's module."""
    wanted = row.extra_module
    if row.extra is None or not missing:
        return False
    if missing == adapter_module:
        return True
    if wanted is None:
        return False
    return missing == wanted or wanted.startswith(f"{missing}.") or missing.startswith(f"{wanted}.")
