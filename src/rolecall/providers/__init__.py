"""Provider adapters: one module per wire protocol, imported only when configured.

:func:`build_provider` turns one ``providers.<id>`` config entry into a
:class:`~rolecall.providers.base.Provider`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rolecall.errors import MissingExtra
from rolecall.providers.base import Provider

if TYPE_CHECKING:
    from rolecall.config.schema import ProviderConfig

__all__ = ["Provider", "build_provider"]

# type -> (module, class); modules load lazily so `import rolecall` stays light.
_ADAPTERS = {
    "openai": ("rolecall.providers.openai", "OpenAIProvider"),
    "openai-compatible": ("rolecall.providers.openai", "OpenAIProvider"),
    "anthropic": ("rolecall.providers.anthropic", "AnthropicProvider"),
    "google": ("rolecall.providers.google", "GoogleProvider"),
    "local": ("rolecall.providers.local", "LocalProvider"),
    "bedrock": ("rolecall.providers.bedrock", "BedrockProvider"),
}


def build_provider(provider_id: str, config: ProviderConfig) -> Provider:
    """The adapter for ``config.type``; no connection is opened until first use."""
    try:
        module_name, class_name = _ADAPTERS[config.type]
    except KeyError:
        raise ValueError(f"unknown provider type {config.type!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if config.type == "local" and exc.name in (module_name, "mistralrs"):
            raise MissingExtra("local", "mistralrs", "the embedded local model") from None
        raise
    adapter: Provider = getattr(module, class_name)(provider_id, config)
    return adapter
