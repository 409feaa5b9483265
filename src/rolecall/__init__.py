"""rolecall: each LLM task to the provider assigned to its role, with fallback and metrics.

Heavy modules (the router, adapters, storage) load on first use so that
``import rolecall`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rolecall.errors import (
    AllProvidersFailed,
    ConfigError,
    ConfigIssue,
    CredentialsError,
    ErrorKind,
    MissingExtra,
    NoProviderForRole,
    ProviderError,
    RolecallError,
    RouterClosed,
    StreamInterrupted,
    UnknownParameter,
)
from rolecall.types import Attempt, ChatRequest, Chunk, Completion, Message, Reply, Usage

if TYPE_CHECKING:
    from rolecall.config.load import load_config
    from rolecall.providers.base import Provider
    from rolecall.routing.router import ReplyStream, Router

__version__ = "0.1.0"

__all__ = [
    "AllProvidersFailed",
    "Attempt",
    "ChatRequest",
    "Chunk",
    "Completion",
    "ConfigError",
    "ConfigIssue",
    "CredentialsError",
    "ErrorKind",
    "Message",
    "MissingExtra",
    "NoProviderForRole",
    "Provider",
    "ProviderError",
    "Reply",
    "ReplyStream",
    "RolecallError",
    "Router",
    "RouterClosed",
    "StreamInterrupted",
    "UnknownParameter",
    "Usage",
    "__version__",
    "load_config",
]

_LAZY = {
    "Provider": "rolecall.providers.base",
    "ReplyStream": "rolecall.routing.router",
    "Router": "rolecall.routing.router",
    "load_config": "rolecall.config.load",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rolecall' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
