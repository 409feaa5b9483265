"""Where each vendor is reached when a provider's config gives no ``base_url``.

One table, read by the adapters (the URL they call), validation (the example in a
base_url fix) and the failure hints (the URL they name).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DEFAULT_BASE_URLS"]

DEFAULT_BASE_URLS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "https://api.openai.com/v1",
        "anthropic": "https://api.anthropic.com",
        "google": "https://generativelanguage.googleapis.com",
    }
)
